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
// Where the middle four (y_pred, loss, gh, the w2 update) fit one block's shared memory
// (midstep.cuh: the tutorial's size), they run as one kernel and the step is three kernels in a
// row: x·w1, the middle, xᵀ·gh. FIFTYX_CUDA_FUSE=0 keeps the six (to measure what fusing gains).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "fx_cuda.h"
#include "midstep.cuh"

static const char *cuda_unavailable(void) { return fx_cuda_unavailable(); }

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
    // The step's tensors (without split-K workspaces, which are small where they are used).
    return fx_cuda_check_memory(fx_step_bytes(s), why, sizeof why);
}

// ---- kernels table (host memory in and out) -----------------------------------------------------

static int cuda_gemm(const fx_gemm_args *g, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    fx_dev_gemm_operands dev;
    fx_gemm_args d;
    FX_TRY(dev.upload(*g, &d, e));
    fx_gemm_site site;
    FX_TRY(site.prepare(d, e));
    FX_TRY(site.run(d, 0, e));
    return dev.download(*g, e);
}

static const fx_kernels cuda_kernels = {cuda_gemm, fx_cuda_host_loss_grad, fx_cuda_host_sgd};

// ---- the loop -------------------------------------------------------------------------------------

struct cuda_state {
    fx_gemm_site site[FX_NGEMM]; // before step: freed after the graphs that use them
    fx_step_state step;
    bool fused = false;      // the middle of the step as one kernel (midstep.cuh)
    fx::MidStepParams mid = {};
};

// FIFTYX_CUDA_FUSE: unset or 1, fuse where the size allows; 0, never. -1 (e set) if malformed.
static int fuse_setting(fx_err *e)
{
    const char *v = getenv("FIFTYX_CUDA_FUSE");
    if (!v || !*v || !strcmp(v, "1"))
        return 1;
    if (!strcmp(v, "0"))
        return 0;
    return fx_fail(e, "FIFTYX_CUDA_FUSE='%s': expected 0 or 1", v);
}

static int enqueue_mid(const cuda_state *st, cudaStream_t s0, fx_err *e)
{
    fx_cuda_clear_stale_error();
    const size_t smem = (size_t)st->mid.L.floats * sizeof(float);
    auto launch = [&](void (*k)(fx::MidStepParams)) { k<<<1, fx::FX_MID_THREADS, smem, s0>>>(st->mid); };
    if (!fx::mid_step_dispatch(st->mid.L.op, launch))
        return fx_fail(e, "mid_step_kernel: no instance for padded D_out %d", st->mid.L.op);
    FX_LAUNCHED("mid_step_kernel");
    return 0;
}

static int enqueue_step(void *ctx, cudaStream_t s0, cudaStream_t s1, cudaEvent_t fork, cudaEvent_t join, fx_err *e)
{
    cuda_state *st = (cuda_state *)ctx;
    const fx_gemm_site *site = st->site;
    const fx_gemm_args *args = st->step.args;
    if (st->fused) { // three kernels in a row; w2 is read and updated inside the middle one
        FX_TRY(site[FX_G_H].run(args[FX_G_H], s0, e));
        FX_TRY(enqueue_mid(st, s0, e));
        return site[FX_G_W1].run(args[FX_G_W1], s0, e);
    }
    FX_TRY(site[FX_G_H].run(args[FX_G_H], s0, e));
    FX_TRY(site[FX_G_YPRED].run(args[FX_G_YPRED], s0, e));
    FX_TRY(st->step.enqueue_loss(s0, e));
    FX_TRY(site[FX_G_GH].run(args[FX_G_GH], s0, e));
    FX_CU(cudaEventRecord(fork, s0));
    FX_CU(cudaStreamWaitEvent(s1, fork, 0));
    FX_TRY(site[FX_G_W1].run(args[FX_G_W1], s1, e));
    FX_TRY(site[FX_G_W2].run(args[FX_G_W2], s0, e));
    FX_CU(cudaEventRecord(join, s1));
    FX_CU(cudaStreamWaitEvent(s0, join, 0));
    return 0;
}

static void cuda_destroy(void *p) { delete (cuda_state *)p; }

static int create_state(cuda_state *st, const fx_problem *p, const fx_tensors *init, fx_err *e)
{
    const int fuse = fuse_setting(e);
    if (fuse < 0)
        return -1;
    const fx_size s = p->size;
    const fx_cuda_device *dev = fx_cuda_dev();
    if (!dev)
        return fx_fail(e, "%s", fx_cuda_unavailable());
    st->fused = fuse && fx::mid_step_fits(s.n, s.h, s.d_out, (long)dev->smem_optin);
    FX_TRY(st->step.init(p, init, e));
    for (int i = 0; i < FX_NGEMM; i++)
        if (!st->fused || i == FX_G_H || i == FX_G_W1)
            FX_TRY(st->site[i].prepare(st->step.args[i], e));
    FX_TRY(st->step.graphs.init(e));
    if (st->fused) {
        fx_step_state &t = st->step;
        fx::MidStepParams &m = st->mid;
        m.n = (int)s.n, m.h = (int)s.h, m.o = (int)s.d_out, m.lr = p->lr;
        m.h_relu = t.h_relu.p, m.y = t.y.p, m.mask = t.mask.p, m.w2 = t.w2.p, m.gh = t.gh.p;
        m.loss = t.graphs.losses.p, m.step = t.graphs.step.p;
        m.L = fx::mid_step_layout(s.n, s.h, s.d_out);
        // The attribute belongs to the kernel, not to this state: set to the limit mid_step_fits
        // allows (not this size), so that no later state can lower it under these graphs.
        cudaError_t err = cudaSuccess;
        const int limit = (int)fx::mid_step_smem_limit((long)dev->smem_optin);
        if (!fx::mid_step_dispatch(m.L.op, [&](void (*k)(fx::MidStepParams)) {
                err = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
            }))
            return fx_fail(e, "mid_step_kernel: no instance for padded D_out %d", m.L.op);
        if (err != cudaSuccess)
            return fx_cuda_fail(e, __FILE__, __LINE__, "cudaFuncSetAttribute(mid_step_kernel, max dynamic smem)", err);
    }
    return st->step.capture(enqueue_step, st, e);
}

static int cuda_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    if (const char *why = cuda_unsupported(p))
        return fx_fail(e, "%s", why);
    return fx_new<cuda_state>(state, [&](cuda_state *st) { return create_state(st, p, init, e); }, e);
}

static int cuda_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    return ((cuda_state *)state)->step.run(steps, losses, seconds, e);
}

static int cuda_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    return ((cuda_state *)state)->step.read_weights(w1, w2, e);
}

// ---- GEMM benchmark hooks -------------------------------------------------------------------------

struct cuda_gb {
    fx_gemm_site site; // before sets: freed after them
    fx_dev_gemm_sets sets;
};

static void cuda_gb_destroy(void *h) { delete (cuda_gb *)h; }

static int gb_init(cuda_gb *g, fx_op op, long m, long n, long k, int nsets, const float *const *a,
                   const float *const *b, fx_err *e)
{
    FX_TRY(g->sets.upload(op, m, n, k, nsets, a, b, e));
    FX_TRY(g->site.prepare(g->sets.args(0), e)); // every set has the same alignment (cudaMalloc)
    return g->sets.create_events(e);
}

static int cuda_gb_create(fx_op op, long m, long n, long k, int nsets, const float *const *a, const float *const *b,
                          void **handle, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    if (nsets < 1)
        return fx_fail(e, "gemm bench: nsets %d < 1", nsets);
    return fx_new<cuda_gb>(handle, [&](cuda_gb *g) { return gb_init(g, op, m, n, k, nsets, a, b, e); }, e);
}

static int cuda_gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    cuda_gb *g = (cuda_gb *)h;
    return g->sets.run(iters, [&](const fx_gemm_args &args) { return g->site.run(args, 0, e); }, seconds, e);
}

static int cuda_gb_result(void *h, int set, float *c, fx_err *e) { return ((cuda_gb *)h)->sets.result(set, c, e); }

static const fx_gemm_bench cuda_gemm_bench = {cuda_gb_create, cuda_gb_run, cuda_gb_result, cuda_gb_destroy};

// ---- kernel benchmark hooks -------------------------------------------------------------------------
// One kernel of the step alone (bench --suite kernels). At the tutorial's size the step itself runs
// y_pred, loss_grad, gh and the w2 update as one kernel (midstep.cuh); this times them one by one.

struct cuda_kb {
    fx_gemm_site site; // before call: freed after it
    fx_dev_kernel_call call;
};

static void cuda_kb_destroy(void *h) { delete (cuda_kb *)h; }

static int cuda_kb_create(const fx_backend *b, const fx_kernel_call *call, void **handle, fx_err *e)
{
    (void)b;
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    return fx_new<cuda_kb>(handle, [&](cuda_kb *k) {
        FX_TRY(k->call.init(call, e));
        return call->kind == FX_KERNEL_GEMM ? k->site.prepare(k->call.dev.gemm, e) : 0;
    }, e);
}

static int cuda_kb_run(void *h, long iters, double *seconds, fx_err *e)
{
    cuda_kb *k = (cuda_kb *)h;
    return k->call.run(iters, [&](const fx_gemm_args &g) { return k->site.run(g, 0, e); }, seconds, e);
}

static int cuda_kb_result(void *h, fx_err *e)
{
    cuda_kb *k = (cuda_kb *)h;
    return k->call.result([&](const fx_gemm_args &g) { return k->site.run(g, 0, e); }, e);
}

static const fx_kernel_bench cuda_kernel_bench = {cuda_kb_create, cuda_kb_run, cuda_kb_result, cuda_kb_destroy};

// ---- description ------------------------------------------------------------------------------------

static const char *cuda_describe(void)
{
    static char buf[800];
    const fx_cuda_device *d = fx_cuda_dev();
    if (!d)
        return "no CUDA device";
    if (buf[0])
        return buf;
    fx_err e0;
    // The plans the heuristic makes for the tutorial's five GEMMs.
    static const struct {
        const char *what;
        fx_op op;
        long m, n, k;
    } tut[] = {{"x·w1", FX_NN, 64, 100, 1000},  {"h·w2", FX_NN, 64, 10, 100}, {"g·w2ᵀ", FX_NT, 64, 100, 10},
               {"hᵀ·g", FX_TN, 100, 10, 64}, {"xᵀ·gh", FX_TN, 1000, 100, 64}};
    int len = snprintf(buf, sizeof buf,
                       "%s, %d SMs; FP32 FFMA SGEMM, register-staged double buffer, tiles 128x128/256t, "
                       "64x64/128t, 32x32/64t; step as CUDA graph of %d steps; y_pred, loss, gh and "
                       "the w2 update as one kernel where they fit one block%s; plans of the tutorial's GEMMs (fused: "
                       "only x·w1 and xᵀ·gh run):",
                       d->name, d->sms, FX_STEPS_PER_GRAPH,
                       fuse_setting(&e0) == 0 ? " (off: FIFTYX_CUDA_FUSE=0)" : "");
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
    .kernel_bench = &cuda_kernel_bench,
    // one family for validation by agreement: the three GPU backends share the loss and SGD
    // kernels of common.cu (and its device plumbing), so their agreement proves little
    .family = "cuda",
};
