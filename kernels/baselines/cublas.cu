// cublas.cu — the `cublas` baseline: the same step as `cuda`, with cublasSgemm for the five GEMMs
// (CUBLAS_DEFAULT_MATH: FP32, no TF32) and simple elementwise kernels for ReLU/mask; the loss
// kernel, the CUDA-graph loop and the host-memory loss_grad/sgd are the ones `cuda` uses.
//
// Row-major through the column-major API: a row-major X is the column-major Xᵀ, so
// C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ with the operands swapped.
// SGD is cuBLAS's own beta: C = −lr·acc + 1·C.
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <cublas_v2.h>
#include "../cuda/fx_cuda.h"

static const int STEPS_PER_GRAPH = 20;
static const size_t CUBLAS_WORKSPACE = 32u << 20; // recommended for Hopper; set so graphs never allocate

static int cublas_fail(fx_err *e, const char *file, int line, const char *what, cublasStatus_t s)
{
    const char *base = strrchr(file, '/');
    return fx_fail(e, "%s:%d: %s: %s: %s", base ? base + 1 : file, line, what, cublasGetStatusName(s),
                   cublasGetStatusString(s));
}

#define FX_CUBLAS(call)                                                                            \
    do {                                                                                           \
        cublasStatus_t fx_cb_st_ = (call);                                                         \
        if (fx_cb_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return cublas_fail(e, __FILE__, __LINE__, #call, fx_cb_st_);                           \
    } while (0)

// A handle on a stream with its own workspace (two of them for the step's two streams).
struct cublas_ctx {
    cublasHandle_t h = nullptr;
    fx_dev_buf<unsigned char> ws;
    ~cublas_ctx()
    {
        if (h)
            cublasDestroy(h);
    }
    int init(cudaStream_t st, fx_err *e)
    {
        FX_CUBLAS(cublasCreate(&h));
        FX_CUBLAS(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
        FX_TRY(ws.alloc(CUBLAS_WORKSPACE, e));
        FX_CUBLAS(cublasSetStream(h, st)); // first: cublasSetStream resets the workspace to the default pool
        FX_CUBLAS(cublasSetWorkspace(h, ws.p, CUBLAS_WORKSPACE));
        return 0;
    }
};

// C = op(A)·op(B) (beta 0) or C −= lr·op(A)·op(B) (SGD); ReLU/mask epilogues as separate kernels.
static int cublas_gemm_dev(cublasHandle_t h, cudaStream_t st, const fx_gemm_args &g, fx_err *e)
{
    const int m = (int)g.m, n = (int)g.n, k = (int)g.k;
    cublasOperation_t opa = CUBLAS_OP_N, opb = CUBLAS_OP_N;
    int lda = k, ldb = n;               // NN: A is M×K, B is K×N
    if (g.op == FX_NT)
        opb = CUBLAS_OP_T, ldb = k;     // B is N×K
    else if (g.op == FX_TN)
        opa = CUBLAS_OP_T, lda = m;     // A is K×M
    const float alpha = g.epi == FX_EPI_SGD ? -g.lr : 1.0f, beta = g.epi == FX_EPI_SGD ? 1.0f : 0.0f;
    FX_CUBLAS(cublasSgemm(h, opb, opa, n, m, k, &alpha, g.b, ldb, g.a, lda, &beta, g.c, n));
    const long mn = g.m * g.n;
    if (g.epi == FX_EPI_RELU_MASK)
        FX_TRY(fx_launch_relu_mask(mn, g.c, g.c, g.mask, st, e));
    else if (g.epi == FX_EPI_MASK)
        FX_TRY(fx_launch_apply_mask(mn, g.c, g.mask, st, e));
    return 0;
}

static const char *cublas_unavailable(void) { return fx_cuda_unavailable(); }

static const char *cublas_unsupported(const fx_problem *p)
{
    static char why[200];
    const char *u = fx_cuda_unavailable();
    if (u)
        return u;
    fx_size s = p->size;
    if (s.n > INT_MAX || s.d_in > INT_MAX || s.h > INT_MAX || s.d_out > INT_MAX) {
        snprintf(why, sizeof why, "a dimension exceeds 2^31 − 1 (cublasSgemm takes int)");
        return why;
    }
    double n = s.n, din = s.d_in, h = s.h, dout = s.d_out;
    double need = 4.0 * (n * din + n * dout + din * h + h * dout + 2 * n * h + 2 * n * dout) + n * h +
                  2.0 * CUBLAS_WORKSPACE;
    double have = (double)fx_cuda_dev()->global_mem;
    if (need > 0.9 * have) {
        snprintf(why, sizeof why, "needs %.1f GiB of device memory; the GPU has %.1f GiB", need / (1 << 30),
                 have / (1 << 30));
        return why;
    }
    return NULL;
}

// ---- kernels table -------------------------------------------------------------------------------

// The kernels table's handle (legacy stream): created once and kept for the life of the process
// (never destroyed: at exit the driver reclaims it). A handle and its 32 MiB workspace per call
// cost milliseconds each, and `fiftyx check` makes hundreds of calls (more under compute-sanitizer).
static int kernels_ctx(cublas_ctx **out, fx_err *e)
{
    static cublas_ctx *ctx;
    if (!ctx) {
        cublas_ctx *c = new (std::nothrow) cublas_ctx();
        if (!c)
            return fx_fail(e, "out of memory");
        if (c->init(0, e)) {
            delete c;
            return -1;
        }
        ctx = c;
    }
    *out = ctx;
    return 0;
}

static int cublas_gemm(const fx_gemm_args *g, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    if (g->m > INT_MAX || g->n > INT_MAX || g->k > INT_MAX)
        return fx_fail(e, "cublas: dimensions beyond int");
    const size_t na = (size_t)(g->m * g->k), nb = (size_t)(g->k * g->n), nc = (size_t)(g->m * g->n);
    const bool has_mask = g->epi == FX_EPI_RELU_MASK || g->epi == FX_EPI_MASK;
    fx_dev_buf<float> a, b, c;
    fx_dev_buf<uint8_t> mask;
    FX_TRY(a.upload(g->a, na, e));
    FX_TRY(b.upload(g->b, nb, e));
    FX_TRY(c.upload(g->c, nc, e));
    if (has_mask)
        FX_TRY(mask.upload(g->mask, nc, e));
    cublas_ctx *ctx = nullptr;
    FX_TRY(kernels_ctx(&ctx, e));
    fx_gemm_args d = *g;
    d.a = a.p, d.b = b.p, d.c = c.p, d.mask = has_mask ? mask.p : nullptr;
    FX_TRY(cublas_gemm_dev(ctx->h, 0, d, e));
    FX_CU(cudaMemcpy(g->c, c.p, nc * sizeof(float), cudaMemcpyDeviceToHost));
    if (g->epi == FX_EPI_RELU_MASK)
        FX_CU(cudaMemcpy(g->mask, mask.p, nc, cudaMemcpyDeviceToHost));
    return 0;
}

static const fx_kernels cublas_kernels = {cublas_gemm, fx_cuda_host_loss_grad, fx_cuda_host_sgd};

// ---- the loop ------------------------------------------------------------------------------------

enum { G_H, G_YPRED, G_GH, G_W2, G_W1, NGEMM };

struct cublas_state {
    fx_size s;
    fx_dev_buf<float> x, y, w1, w2, h_relu, y_pred, g, gh;
    fx_dev_buf<uint8_t> mask;
    fx_loss_scratch loss_scratch;
    fx_gemm_args args[NGEMM];
    fx_graph_stepper graphs; // declared before blas: handles are destroyed before their streams
    cublas_ctx blas[2];      // one per stream: a handle's workspace must not be shared by parallel work
    int sync_every_step;
};

static int enqueue_step(void *ctx, cudaStream_t s0, cudaStream_t s1, cudaEvent_t fork, cudaEvent_t join, fx_err *e)
{
    cublas_state *st = (cublas_state *)ctx;
    const long ne = st->s.n * st->s.d_out;
    cublasHandle_t h0 = st->blas[0].h, h1 = st->blas[1].h;
    FX_TRY(cublas_gemm_dev(h0, s0, st->args[G_H], e));
    FX_TRY(cublas_gemm_dev(h0, s0, st->args[G_YPRED], e));
    FX_TRY(fx_launch_loss_grad(ne, st->y_pred.p, st->y.p, st->g.p, st->graphs.losses.p, st->graphs.step.p,
                               st->loss_scratch, s0, e));
    FX_TRY(cublas_gemm_dev(h0, s0, st->args[G_GH], e));
    FX_CU(cudaEventRecord(fork, s0));
    FX_CU(cudaStreamWaitEvent(s1, fork, 0));
    FX_TRY(cublas_gemm_dev(h1, s1, st->args[G_W1], e));
    FX_TRY(cublas_gemm_dev(h0, s0, st->args[G_W2], e));
    FX_CU(cudaEventRecord(join, s1));
    FX_CU(cudaStreamWaitEvent(s0, join, 0));
    return 0;
}

static void cublas_destroy(void *p) { delete (cublas_state *)p; }

static int create_state(cublas_state *st, const fx_problem *p, const fx_tensors *init, fx_err *e)
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
    FX_TRY(st->graphs.init(e));
    FX_TRY(st->blas[0].init(st->graphs.s0, e));
    FX_TRY(st->blas[1].init(st->graphs.s1, e));
    FX_TRY(st->graphs.capture(enqueue_step, st, STEPS_PER_GRAPH, e));
    // The zeroing memsets ran on the legacy stream, which the non-blocking streams do not wait for.
    FX_CU(cudaDeviceSynchronize());
    return 0;
}

static int cublas_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    if (const char *why = cublas_unsupported(p))
        return fx_fail(e, "%s", why);
    cublas_state *st = new (std::nothrow) cublas_state();
    if (!st)
        return fx_fail(e, "out of memory");
    if (create_state(st, p, init, e)) {
        delete st;
        return -1;
    }
    *state = st;
    return 0;
}

static int cublas_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    cublas_state *st = (cublas_state *)state;
    return st->graphs.run(steps, st->sync_every_step, losses, seconds, e);
}

static int cublas_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    cublas_state *st = (cublas_state *)state;
    FX_CU(cudaMemcpy(w1, st->w1.p, (size_t)(st->s.d_in * st->s.h) * sizeof(float), cudaMemcpyDeviceToHost));
    FX_CU(cudaMemcpy(w2, st->w2.p, (size_t)(st->s.h * st->s.d_out) * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

// ---- GEMM benchmark hooks ------------------------------------------------------------------------

struct cublas_gb {
    fx_op op;
    long m, n, k;
    int nsets;
    fx_dev_buf<float> *a = nullptr, *b = nullptr, *c = nullptr;
    cublas_ctx blas;
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    ~cublas_gb()
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

static void cublas_gb_destroy(void *h) { delete (cublas_gb *)h; }

static int gb_init(cublas_gb *g, const float *const *a, const float *const *b, fx_err *e)
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
    FX_TRY(g->blas.init(0, e));
    FX_CU(cudaEventCreate(&g->t0));
    FX_CU(cudaEventCreate(&g->t1));
    return 0;
}

static int cublas_gb_create(fx_op op, long m, long n, long k, int nsets, const float *const *a,
                            const float *const *b, void **handle, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    if (nsets < 1 || m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return fx_fail(e, "gemm bench: bad arguments (nsets %d, %ldx%ldx%ld)", nsets, m, n, k);
    cublas_gb *g = new (std::nothrow) cublas_gb();
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

static int cublas_gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    cublas_gb *g = (cublas_gb *)h;
    FX_CU(cudaEventRecord(g->t0, 0));
    for (long i = 0; i < iters; i++)
        FX_TRY(cublas_gemm_dev(g->blas.h, 0, g->args((int)(i % g->nsets)), e));
    FX_CU(cudaEventRecord(g->t1, 0));
    return fx_event_seconds(g->t0, g->t1, seconds, e);
}

static int cublas_gb_result(void *h, int set, float *c, fx_err *e)
{
    cublas_gb *g = (cublas_gb *)h;
    FX_CU(cudaMemcpy(c, g->c[set].p, (size_t)(g->m * g->n) * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

static const fx_gemm_bench cublas_gemm_bench = {cublas_gb_create, cublas_gb_run, cublas_gb_result,
                                                cublas_gb_destroy};

static const char *cublas_describe(void)
{
    static char buf[420];
    const fx_cuda_device *d = fx_cuda_dev();
    if (!d)
        return "no CUDA device";
    if (!buf[0]) {
        int ma = 0, mi = 0, pa = 0;
        cublasGetProperty(MAJOR_VERSION, &ma);
        cublasGetProperty(MINOR_VERSION, &mi);
        cublasGetProperty(PATCH_LEVEL, &pa);
        snprintf(buf, sizeof buf, "%s, %d SMs; cuBLAS %d.%d.%d cublasSgemm, CUBLAS_DEFAULT_MATH (FP32, no TF32); "
                 "step as CUDA graph of %d steps", d->name, d->sms, ma, mi, pa, STEPS_PER_GRAPH);
    }
    return buf;
}

extern "C" const fx_backend fx_backend_cublas = {
    .name = "cublas",
    .device = FX_GPU,
    .summary = "cuBLAS baseline: cublasSgemm (FP32, no TF32) + elementwise kernels; CUDA graphs",
    .unavailable = cublas_unavailable,
    .unsupported = cublas_unsupported,
    .create = cublas_create,
    .run = cublas_run,
    .read_weights = cublas_read_weights,
    .destroy = cublas_destroy,
    .kernels = &cublas_kernels,
    .gemm_bench = &cublas_gemm_bench,
    .describe = cublas_describe,
    .hidden = 0,
};
