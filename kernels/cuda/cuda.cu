// cuda.cu — the `cuda` backend: the tutorial's step on our own kernels (sgemm.cuh with fused
// epilogues, the fixed-order loss kernel), data resident on the GPU, steps replayed as CUDA graphs.
//
// One step, five GEMMs and one small kernel (w2 is read by the NT GEMM before the TN GEMM updates it;
// the w1 update needs only gh, so it runs on a second stream beside the w2 update):
//   h_relu, mask = relu(x·w1)          NN  RELU_MASK   N×H, K = D_in   (split-K at tutorial size)
//   y_pred       = h_relu·w2           NN  STORE       N×D_out, K = H
//   g, loss[t]   = 2(y_pred − y), Σ(y_pred − y)²        loss_grad_kernel
//   gh           = (g·w2ᵀ) ⊙ mask      NT  MASK        N×H, K = D_out
//   w2          −= lr·h_reluᵀ·g        TN  SGD         H×D_out, K = N     ┐ in parallel
//   w1          −= lr·xᵀ·gh            TN  SGD         D_in×H, K = N      ┘
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include "fx_cuda.h"

static const int STEPS_PER_GRAPH = 20;

static const char *cuda_unavailable(void) { return fx_cuda_unavailable(); }

// Device bytes the step needs (without split-K workspaces, which are small where they are used).
static double step_bytes(fx_size s)
{
    double n = s.n, din = s.d_in, h = s.h, dout = s.d_out;
    return 4.0 * (n * din + n * dout + din * h + h * dout + 2 * n * h + 2 * n * dout) + n * h;
}

static const char *cuda_unsupported(const fx_problem *p)
{
    static char why[200];
    const char *u = fx_cuda_unavailable();
    if (u)
        return u;
    fx_size s = p->size;
    const long max_dim = 1L << 30;
    if (s.n > max_dim || s.d_in > max_dim || s.h > max_dim || s.d_out > max_dim) {
        snprintf(why, sizeof why, "a dimension exceeds 2^30 (the kernels index tiles with int)");
        return why;
    }
    double need = step_bytes(s), have = (double)fx_cuda_dev()->global_mem;
    if (need > 0.9 * have) {
        snprintf(why, sizeof why, "needs %.1f GiB of device memory; the GPU has %.1f GiB", need / (1 << 30),
                 have / (1 << 30));
        return why;
    }
    return NULL;
}

// ---- kernels table (host memory in and out) -----------------------------------------------------

static int cuda_gemm(const fx_gemm_args *g, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    const size_t na = (size_t)(g->m * g->k), nb = (size_t)(g->k * g->n), nc = (size_t)(g->m * g->n);
    const bool has_mask = g->epi == FX_EPI_RELU_MASK || g->epi == FX_EPI_MASK;
    fx_dev_buf<float> a, b, c;
    fx_dev_buf<uint8_t> mask;
    FX_TRY(a.upload(g->a, na, e));
    FX_TRY(b.upload(g->b, nb, e));
    FX_TRY(c.upload(g->c, nc, e)); // the caller's C (poisoned, or the weights for SGD) goes in
    if (has_mask)
        FX_TRY(mask.upload(g->mask, nc, e));
    fx_gemm_args d = *g;
    d.a = a.p, d.b = b.p, d.c = c.p, d.mask = has_mask ? mask.p : nullptr;
    fx_gemm_site site;
    FX_TRY(site.prepare(d, e));
    FX_TRY(site.run(d, 0, e));
    FX_CU(cudaMemcpy(g->c, c.p, nc * sizeof(float), cudaMemcpyDeviceToHost));
    if (g->epi == FX_EPI_RELU_MASK)
        FX_CU(cudaMemcpy(g->mask, mask.p, nc, cudaMemcpyDeviceToHost));
    return 0;
}

static const fx_kernels cuda_kernels = {cuda_gemm, fx_cuda_host_loss_grad, fx_cuda_host_sgd};

// ---- the loop -------------------------------------------------------------------------------------

enum { G_H, G_YPRED, G_GH, G_W2, G_W1, NGEMM };

struct cuda_state {
    fx_size s;
    fx_dev_buf<float> x, y, w1, w2, h_relu, y_pred, g, gh;
    fx_dev_buf<uint8_t> mask;
    fx_loss_scratch loss_scratch;
    fx_gemm_args args[NGEMM];
    fx_gemm_site site[NGEMM];
    fx_graph_stepper graphs;
    int sync_every_step;
};

static int enqueue_step(void *ctx, cudaStream_t s0, cudaStream_t s1, cudaEvent_t fork, cudaEvent_t join, fx_err *e)
{
    cuda_state *st = (cuda_state *)ctx;
    const long ne = st->s.n * st->s.d_out;
    FX_TRY(st->site[G_H].run(st->args[G_H], s0, e));
    FX_TRY(st->site[G_YPRED].run(st->args[G_YPRED], s0, e));
    FX_TRY(fx_launch_loss_grad(ne, st->y_pred.p, st->y.p, st->g.p, st->graphs.losses.p, st->graphs.step.p,
                               st->loss_scratch, s0, e));
    FX_TRY(st->site[G_GH].run(st->args[G_GH], s0, e));
    FX_CU(cudaEventRecord(fork, s0));
    FX_CU(cudaStreamWaitEvent(s1, fork, 0));
    FX_TRY(st->site[G_W1].run(st->args[G_W1], s1, e));
    FX_TRY(st->site[G_W2].run(st->args[G_W2], s0, e));
    FX_CU(cudaEventRecord(join, s1));
    FX_CU(cudaStreamWaitEvent(s0, join, 0));
    return 0;
}

static void cuda_destroy(void *p) { delete (cuda_state *)p; }

static int create_state(cuda_state *st, const fx_problem *p, const fx_tensors *init, fx_err *e)
{
    const fx_size s = p->size;
    const size_t N = (size_t)s.n, Din = (size_t)s.d_in, H = (size_t)s.h, Dout = (size_t)s.d_out;
    st->s = s;
    st->sync_every_step = p->sync_every_step;
    FX_TRY(st->x.upload(init->x, N * Din, e));
    FX_TRY(st->y.upload(init->y, N * Dout, e));
    FX_TRY(st->w1.upload(init->w1, Din * H, e));
    FX_TRY(st->w2.upload(init->w2, H * Dout, e));
    FX_TRY(st->h_relu.alloc(N * H, e));
    FX_TRY(st->gh.alloc(N * H, e));
    FX_TRY(st->y_pred.alloc(N * Dout, e));
    FX_TRY(st->g.alloc(N * Dout, e));
    FX_TRY(st->mask.alloc(N * H, e));
    FX_TRY(st->loss_scratch.alloc(s.n * s.d_out, e));
    const float lr = p->lr;
    st->args[G_H] = {FX_NN, FX_EPI_RELU_MASK, s.n, s.h, s.d_in, st->x.p, st->w1.p, st->h_relu.p, st->mask.p, 0};
    st->args[G_YPRED] = {FX_NN, FX_EPI_STORE, s.n, s.d_out, s.h, st->h_relu.p, st->w2.p, st->y_pred.p, nullptr, 0};
    st->args[G_GH] = {FX_NT, FX_EPI_MASK, s.n, s.h, s.d_out, st->g.p, st->w2.p, st->gh.p, st->mask.p, 0};
    st->args[G_W2] = {FX_TN, FX_EPI_SGD, s.h, s.d_out, s.n, st->h_relu.p, st->g.p, st->w2.p, nullptr, lr};
    st->args[G_W1] = {FX_TN, FX_EPI_SGD, s.d_in, s.h, s.n, st->x.p, st->gh.p, st->w1.p, nullptr, lr};
    for (int i = 0; i < NGEMM; i++)
        FX_TRY(st->site[i].prepare(st->args[i], e));
    FX_TRY(st->graphs.init(e));
    FX_TRY(st->graphs.capture(enqueue_step, st, STEPS_PER_GRAPH, e));
    // The zeroing memsets ran on the legacy stream, which the non-blocking streams do not wait for.
    FX_CU(cudaDeviceSynchronize());
    return 0;
}

static int cuda_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    if (const char *why = cuda_unsupported(p))
        return fx_fail(e, "%s", why);
    cuda_state *st = new (std::nothrow) cuda_state();
    if (!st)
        return fx_fail(e, "out of memory");
    if (create_state(st, p, init, e)) {
        delete st;
        return -1;
    }
    *state = st;
    return 0;
}

static int cuda_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    cuda_state *st = (cuda_state *)state;
    return st->graphs.run(steps, st->sync_every_step, losses, seconds, e);
}

static int cuda_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    cuda_state *st = (cuda_state *)state;
    FX_CU(cudaMemcpy(w1, st->w1.p, (size_t)(st->s.d_in * st->s.h) * sizeof(float), cudaMemcpyDeviceToHost));
    FX_CU(cudaMemcpy(w2, st->w2.p, (size_t)(st->s.h * st->s.d_out) * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

// ---- GEMM benchmark hooks -------------------------------------------------------------------------

struct cuda_gb {
    fx_op op;
    long m, n, k;
    int nsets;
    fx_dev_buf<float> *a = nullptr, *b = nullptr, *c = nullptr;
    fx_gemm_site site;
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    ~cuda_gb()
    {
        delete[] a;
        delete[] b;
        delete[] c;
        if (t0)
            cudaEventDestroy(t0);
        if (t1)
            cudaEventDestroy(t1);
    }
    fx_gemm_args args(int set) const
    {
        return {op, FX_EPI_STORE, m, n, k, a[set].p, b[set].p, c[set].p, nullptr, 0};
    }
};

static void cuda_gb_destroy(void *h) { delete (cuda_gb *)h; }

static int gb_init(cuda_gb *g, const float *const *a, const float *const *b, fx_err *e)
{
    g->a = new (std::nothrow) fx_dev_buf<float>[g->nsets];
    g->b = new (std::nothrow) fx_dev_buf<float>[g->nsets];
    g->c = new (std::nothrow) fx_dev_buf<float>[g->nsets];
    if (!g->a || !g->b || !g->c)
        return fx_fail(e, "out of memory");
    for (int s = 0; s < g->nsets; s++) {
        FX_TRY(g->a[s].upload(a[s], (size_t)(g->m * g->k), e));
        FX_TRY(g->b[s].upload(b[s], (size_t)(g->k * g->n), e));
        FX_TRY(g->c[s].alloc((size_t)(g->m * g->n), e));
    }
    FX_TRY(g->site.prepare(g->args(0), e)); // every set has the same alignment (cudaMalloc)
    FX_CU(cudaEventCreate(&g->t0));
    FX_CU(cudaEventCreate(&g->t1));
    return 0;
}

static int cuda_gb_create(fx_op op, long m, long n, long k, int nsets, const float *const *a, const float *const *b,
                          void **handle, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    if (nsets < 1)
        return fx_fail(e, "gemm bench: nsets %d < 1", nsets);
    cuda_gb *g = new (std::nothrow) cuda_gb();
    if (!g)
        return fx_fail(e, "out of memory");
    g->op = op, g->m = m, g->n = n, g->k = k, g->nsets = nsets;
    if (gb_init(g, a, b, e)) {
        delete g;
        return -1;
    }
    *handle = g;
    return 0;
}

static int cuda_gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    cuda_gb *g = (cuda_gb *)h;
    FX_CU(cudaEventRecord(g->t0, 0));
    for (long i = 0; i < iters; i++)
        FX_TRY(g->site.run(g->args((int)(i % g->nsets)), 0, e));
    FX_CU(cudaEventRecord(g->t1, 0));
    return fx_event_seconds(g->t0, g->t1, seconds, e);
}

static int cuda_gb_result(void *h, int set, float *c, fx_err *e)
{
    cuda_gb *g = (cuda_gb *)h;
    FX_CU(cudaMemcpy(c, g->c[set].p, (size_t)(g->m * g->n) * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

static const fx_gemm_bench cuda_gemm_bench = {cuda_gb_create, cuda_gb_run, cuda_gb_result, cuda_gb_destroy};

// ---- description ------------------------------------------------------------------------------------

static const char *cuda_describe(void)
{
    static char buf[600];
    const fx_cuda_device *d = fx_cuda_dev();
    if (!d)
        return "no CUDA device";
    if (buf[0])
        return buf;
    // The plans the heuristic makes for the tutorial's five GEMMs.
    static const struct {
        const char *what;
        fx_op op;
        long m, n, k;
    } tut[] = {{"x·w1", FX_NN, 64, 100, 1000},  {"h·w2", FX_NN, 64, 10, 100}, {"g·w2ᵀ", FX_NT, 64, 100, 10},
               {"hᵀ·g", FX_TN, 100, 10, 64}, {"xᵀ·gh", FX_TN, 1000, 100, 64}};
    int len = snprintf(buf, sizeof buf,
                       "%s, %d SMs; FP32 FFMA SGEMM, register-staged double buffer, tiles 128x128/256t, "
                       "64x64/128t, 32x32/64t; step as CUDA graph of %d steps; tutorial plans:",
                       d->name, d->sms, STEPS_PER_GRAPH);
    for (size_t i = 0; i < sizeof tut / sizeof tut[0] && len < (int)sizeof buf; i++) {
        fx::SgemmPlan p;
        fx_err e;
        char t[64] = "?";
        if (fx_sgemm_plan(tut[i].op, tut[i].m, tut[i].n, tut[i].k, nullptr, nullptr, nullptr, nullptr, &p, &e) == 0)
            fx_sgemm_plan_text(p, t, sizeof t);
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%s %s %s", i ? "," : "", tut[i].what, t);
    }
    return buf;
}

extern "C" const fx_backend fx_backend_cuda = {
    .name = "cuda",
    .device = FX_GPU,
    .summary = "hand-written CUDA: FP32 SGEMM with fused epilogues, split-K, fixed-order loss; CUDA graphs",
    .unavailable = cuda_unavailable,
    .unsupported = cuda_unsupported,
    .create = cuda_create,
    .run = cuda_run,
    .read_weights = cuda_read_weights,
    .destroy = cuda_destroy,
    .kernels = &cuda_kernels,
    .gemm_bench = &cuda_gemm_bench,
    .describe = cuda_describe,
    .hidden = 0,
};
