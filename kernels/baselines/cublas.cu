// cublas.cu — the `cublas` baseline: the same step as `cuda`, with cublasSgemm for the five GEMMs
// (CUBLAS_DEFAULT_MATH: FP32, no TF32) and simple elementwise kernels for ReLU/mask; the step's
// tensors (fx_step_state), the loss kernel, the CUDA-graph loop, the host-memory kernels' operands
// and the GEMM benchmark's operand sets are the ones `cuda` uses (fx_cuda.h).
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
    return fx_cuda_check_memory(fx_step_bytes(s) + 2.0 * CUBLAS_WORKSPACE, why, sizeof why);
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
    fx_dev_gemm_operands dev;
    fx_gemm_args d;
    FX_TRY(dev.upload(*g, &d, e));
    cublas_ctx *ctx = nullptr;
    FX_TRY(kernels_ctx(&ctx, e));
    FX_TRY(cublas_gemm_dev(ctx->h, 0, d, e));
    return dev.download(*g, e);
}

static const fx_kernels cublas_kernels = {cublas_gemm, fx_cuda_host_loss_grad, fx_cuda_host_sgd};

// ---- the loop ------------------------------------------------------------------------------------

struct cublas_state {
    fx_step_state step; // declared before blas: handles are destroyed before the graphs' streams
    cublas_ctx blas[2]; // one per stream: a handle's workspace must not be shared by parallel work
};

static int enqueue_step(void *ctx, cudaStream_t s0, cudaStream_t s1, cudaEvent_t fork, cudaEvent_t join, fx_err *e)
{
    cublas_state *st = (cublas_state *)ctx;
    const fx_gemm_args *args = st->step.args;
    cublasHandle_t h0 = st->blas[0].h, h1 = st->blas[1].h;
    FX_TRY(cublas_gemm_dev(h0, s0, args[FX_G_H], e));
    FX_TRY(cublas_gemm_dev(h0, s0, args[FX_G_YPRED], e));
    FX_TRY(st->step.enqueue_loss(s0, e));
    FX_TRY(cublas_gemm_dev(h0, s0, args[FX_G_GH], e));
    FX_CU(cudaEventRecord(fork, s0));
    FX_CU(cudaStreamWaitEvent(s1, fork, 0));
    FX_TRY(cublas_gemm_dev(h1, s1, args[FX_G_W1], e));
    FX_TRY(cublas_gemm_dev(h0, s0, args[FX_G_W2], e));
    FX_CU(cudaEventRecord(join, s1));
    FX_CU(cudaStreamWaitEvent(s0, join, 0));
    return 0;
}

static void cublas_destroy(void *p) { delete (cublas_state *)p; }

static int create_state(cublas_state *st, const fx_problem *p, const fx_tensors *init, fx_err *e)
{
    FX_TRY(st->step.init(p, init, e));
    FX_TRY(st->step.graphs.init(e));
    FX_TRY(st->blas[0].init(st->step.graphs.s0, e));
    FX_TRY(st->blas[1].init(st->step.graphs.s1, e));
    return st->step.capture(enqueue_step, st, e);
}

static int cublas_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    if (const char *why = cublas_unsupported(p))
        return fx_fail(e, "%s", why);
    return fx_new<cublas_state>(state, [&](cublas_state *st) { return create_state(st, p, init, e); }, e);
}

static int cublas_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    return ((cublas_state *)state)->step.run(steps, losses, seconds, e);
}

static int cublas_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    return ((cublas_state *)state)->step.read_weights(w1, w2, e);
}

// ---- GEMM benchmark hooks ------------------------------------------------------------------------

struct cublas_gb {
    cublas_ctx blas; // before sets: destroyed after them
    fx_dev_gemm_sets sets;
};

static void cublas_gb_destroy(void *h) { delete (cublas_gb *)h; }

static int gb_init(cublas_gb *g, fx_op op, long m, long n, long k, int nsets, const float *const *a,
                   const float *const *b, fx_err *e)
{
    FX_TRY(g->sets.upload(op, m, n, k, nsets, a, b, e));
    FX_TRY(g->blas.init(0, e));
    return g->sets.create_events(e);
}

static int cublas_gb_create(fx_op op, long m, long n, long k, int nsets, const float *const *a,
                            const float *const *b, void **handle, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    if (nsets < 1 || m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return fx_fail(e, "gemm bench: bad arguments (nsets %d, %ldx%ldx%ld)", nsets, m, n, k);
    return fx_new<cublas_gb>(handle, [&](cublas_gb *g) { return gb_init(g, op, m, n, k, nsets, a, b, e); }, e);
}

static int cublas_gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    cublas_gb *g = (cublas_gb *)h;
    return g->sets.run(iters, [&](const fx_gemm_args &args) { return cublas_gemm_dev(g->blas.h, 0, args, e); },
                       seconds, e);
}

static int cublas_gb_result(void *h, int set, float *c, fx_err *e) { return ((cublas_gb *)h)->sets.result(set, c, e); }

static const fx_gemm_bench cublas_gemm_bench = {cublas_gb_create, cublas_gb_run, cublas_gb_result,
                                                cublas_gb_destroy};

// ---- kernel benchmark hooks -------------------------------------------------------------------------

struct cublas_kb {
    cublas_ctx blas; // before call: destroyed after it
    fx_dev_kernel_call call;
};

static void cublas_kb_destroy(void *h) { delete (cublas_kb *)h; }

static int cublas_kb_create(const fx_backend *b, const fx_kernel_call *call, void **handle, fx_err *e)
{
    (void)b;
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    const fx_gemm_args &g = call->gemm;
    if (call->kind == FX_KERNEL_GEMM && (g.m > INT_MAX || g.n > INT_MAX || g.k > INT_MAX))
        return fx_fail(e, "cublas: dimensions beyond int");
    return fx_new<cublas_kb>(handle, [&](cublas_kb *k) {
        FX_TRY(k->call.init(call, e));
        return k->blas.init(0, e);
    }, e);
}

static int cublas_kb_run(void *h, long iters, double *seconds, fx_err *e)
{
    cublas_kb *k = (cublas_kb *)h;
    return k->call.run(iters, [&](const fx_gemm_args &g) { return cublas_gemm_dev(k->blas.h, 0, g, e); }, seconds, e);
}

static int cublas_kb_result(void *h, fx_err *e)
{
    cublas_kb *k = (cublas_kb *)h;
    return k->call.result([&](const fx_gemm_args &g) { return cublas_gemm_dev(k->blas.h, 0, g, e); }, e);
}

static const fx_kernel_bench cublas_kernel_bench = {cublas_kb_create, cublas_kb_run, cublas_kb_result,
                                                    cublas_kb_destroy};

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
                 "step as CUDA graph of %d steps", d->name, d->sms, ma, mi, pa, FX_STEPS_PER_GRAPH);
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
    .kernel_bench = &cublas_kernel_bench,
    // one family for validation by agreement: the three GPU backends share the loss and SGD
    // kernels of common.cu (and its device plumbing), so their agreement proves little
    .family = "cuda",
};
