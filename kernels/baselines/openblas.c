/* openblas.c — the `openblas` backend: the step as a user with a BLAS writes it, the CPU
 * baseline. Five cblas_sgemm calls and plain loops for ReLU, loss + gradient and the mask;
 * the weight updates ride on sgemm's alpha and beta (w −= lr·xᵀ·gh is alpha = −lr, beta = 1),
 * as a BLAS user who knows the interface would write them. OpenBLAS picks its own kernel
 * (fiftyx re-executes itself without OPENBLAS_CORETYPE), unless it fell back to one without AVX2
 * on a CPU it does not know (fx_openblas_fix_kernel), and runs fx_threads() threads. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "../cpu/cpu.h"
#include "../fiftyx.h"
#include "openblas_kernel.h"

#define ROW CblasRowMajor
#define N_ CblasNoTrans
#define T_ CblasTrans

/* Before every path that calls OpenBLAS: its thread pool is separate from OpenMP's. */
static void use_threads(void)
{
    if (fx_threads() > 0)
        openblas_set_num_threads(fx_threads());
}

/* ---- kernels: cblas_sgemm + an epilogue loop, validated like every other backend ---- */

static void sgemm_op(fx_op op, long m, long n, long k, float alpha, const float *a, const float *b,
                     float beta, float *c)
{
    cblas_sgemm(ROW, op == FX_TN ? T_ : N_, op == FX_NT ? T_ : N_, (int)m, (int)n, (int)k, alpha, a,
                op == FX_TN ? (int)m : (int)k, b, op == FX_NT ? (int)k : (int)n, beta, c, (int)n);
}

static int ob_gemm(const fx_gemm_args *g, fx_err *e)
{
    if (g->m < 1 || g->n < 1 || g->k < 1)
        return fx_fail(e, "GEMM dimensions must be at least 1 (got %ldx%ldx%ld)", g->m, g->n, g->k);
    if (g->m > 0x7fffffffL || g->n > 0x7fffffffL || g->k > 0x7fffffffL)
        return fx_fail(e, "dimension too large for a 32-bit BLAS");
    use_threads();
    long mn = g->m * g->n;
    if (g->epi == FX_EPI_SGD) {
        sgemm_op(g->op, g->m, g->n, g->k, -g->lr, g->a, g->b, 1.0f, g->c);
        return 0;
    }
    sgemm_op(g->op, g->m, g->n, g->k, 1.0f, g->a, g->b, 0.0f, g->c);
    if (g->epi == FX_EPI_RELU_MASK)
        for (long i = 0; i < mn; i++) {
            g->mask[i] = g->c[i] >= 0.0f;
            g->c[i] = g->c[i] > 0.0f ? g->c[i] : 0.0f;
        }
    else if (g->epi == FX_EPI_MASK)
        for (long i = 0; i < mn; i++)
            if (!g->mask[i])
                g->c[i] = 0.0f;
    return 0;
}

static double loss_grad_loop(long n, const float *yp, const float *y, float *g)
{
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        float d = yp[i] - y[i];
        g[i] = 2.0f * d;
        sum += (double)d * d;
    }
    return sum;
}

static int ob_loss_grad(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e)
{
    (void)e;
    *loss = loss_grad_loop(n, yp, y, g);
    return 0;
}

static int ob_sgd(long n, float *w, const float *g, float lr, fx_err *e)
{
    (void)e;
    use_threads();
    cblas_saxpy((int)n, -lr, g, 1, w, 1);
    return 0;
}

static const fx_kernels ob_kernels = {ob_gemm, ob_loss_grad, ob_sgd};

/* ---- the loop ---- */

typedef struct {
    fx_size s;
    float lr;
    float *x, *y, *w1, *w2, *h, *h_relu, *y_pred, *grad_y_pred, *grad_h;
} ob_state;

static void ob_destroy(void *p)
{
    ob_state *st = p;
    if (!st)
        return;
    float *bufs[] = {st->x, st->y, st->w1, st->w2, st->h, st->h_relu, st->y_pred, st->grad_y_pred, st->grad_h};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(st);
}

static const char *ob_unsupported(const fx_problem *p)
{
    const fx_size s = p->size;
    return s.n > 0x7fffffffL || s.d_in > 0x7fffffffL || s.h > 0x7fffffffL || s.d_out > 0x7fffffffL
               ? "a dimension exceeds the 32-bit BLAS interface"
               : NULL;
}

static int ob_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    ob_state *st = calloc(1, sizeof *st);
    if (!st)
        return fx_fail(e, "out of memory");
    fx_size s = p->size;
    size_t N = (size_t)s.n, D = (size_t)s.d_in, H = (size_t)s.h, O = (size_t)s.d_out;
    st->s = s;
    st->lr = p->lr;
    st->x = fx_floats_dup(init->x, N * D);
    st->y = fx_floats_dup(init->y, N * O);
    st->w1 = fx_floats_dup(init->w1, D * H);
    st->w2 = fx_floats_dup(init->w2, H * O);
    st->h = fx_floats_dup(NULL, N * H);
    st->h_relu = fx_floats_dup(NULL, N * H);
    st->y_pred = fx_floats_dup(NULL, N * O);
    st->grad_y_pred = fx_floats_dup(NULL, N * O);
    st->grad_h = fx_floats_dup(NULL, N * H);
    if (!st->x || !st->y || !st->w1 || !st->w2 || !st->h || !st->h_relu || !st->y_pred ||
        !st->grad_y_pred || !st->grad_h) {
        ob_destroy(st);
        return fx_fail(e, "out of memory for %ldx%ldx%ldx%ld", s.n, s.d_in, s.h, s.d_out);
    }
    *state = st;
    return 0;
}

static double ob_step(ob_state *st)
{
    const int N = (int)st->s.n, D = (int)st->s.d_in, H = (int)st->s.h, O = (int)st->s.d_out;
    const long NH = (long)N * H;
    /* h = x·w1, h_relu = max(h, 0) */
    cblas_sgemm(ROW, N_, N_, N, H, D, 1.0f, st->x, D, st->w1, H, 0.0f, st->h, H);
    for (long i = 0; i < NH; i++)
        st->h_relu[i] = st->h[i] > 0.0f ? st->h[i] : 0.0f;
    /* y_pred = h_relu·w2; loss and grad_y_pred = 2(y_pred − y) */
    cblas_sgemm(ROW, N_, N_, N, O, H, 1.0f, st->h_relu, H, st->w2, O, 0.0f, st->y_pred, O);
    double loss = loss_grad_loop((long)N * O, st->y_pred, st->y, st->grad_y_pred);
    /* grad_h = grad_y_pred·w2ᵀ, zero where h < 0 (w2 before its update) */
    cblas_sgemm(ROW, N_, T_, N, H, O, 1.0f, st->grad_y_pred, O, st->w2, O, 0.0f, st->grad_h, H);
    for (long i = 0; i < NH; i++)
        if (st->h[i] < 0.0f)
            st->grad_h[i] = 0.0f;
    /* w2 −= lr·h_reluᵀ·grad_y_pred; w1 −= lr·xᵀ·grad_h */
    cblas_sgemm(ROW, T_, N_, H, O, N, -st->lr, st->h_relu, H, st->grad_y_pred, O, 1.0f, st->w2, O);
    cblas_sgemm(ROW, T_, N_, D, H, N, -st->lr, st->x, D, st->grad_h, H, 1.0f, st->w1, H);
    return loss;
}

static int ob_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    (void)e;
    use_threads();
    double t0 = fx_wall_seconds();
    for (int t = 0; t < steps; t++)
        losses[t] = ob_step(state);
    if (seconds)
        *seconds = fx_wall_seconds() - t0;
    return 0;
}

static int ob_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    (void)e;
    ob_state *st = state;
    memcpy(w1, st->w1, (size_t)st->s.d_in * (size_t)st->s.h * sizeof(float));
    memcpy(w2, st->w2, (size_t)st->s.h * (size_t)st->s.d_out * sizeof(float));
    return 0;
}

/* ---- GEMM benchmark: cblas_sgemm on the CPU clock ---- */

static int ob_gb_create(fx_op op, long m, long n, long k, int nsets, const float *const *a,
                        const float *const *b, void **handle, fx_err *e)
{
    if (m > 0x7fffffffL || n > 0x7fffffffL || k > 0x7fffffffL)
        return fx_fail(e, "dimension too large for a 32-bit BLAS");
    return fx_host_gemm_create(NULL, op, m, n, k, nsets, a, b, handle, e);
}

static int ob_gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    (void)e;
    fx_host_gemm *g = h;
    use_threads();
    double t0 = fx_wall_seconds();
    for (long i = 0; i < iters; i++) {
        int s = fx_host_gemm_next_set(g);
        sgemm_op(g->op, g->m, g->n, g->k, 1.0f, g->a[s], g->b[s], 0.0f, g->c[s]);
    }
    *seconds = fx_wall_seconds() - t0;
    return 0;
}

static const fx_gemm_bench ob_gemm_bench_ops = {ob_gb_create, ob_gb_run, fx_host_gemm_result, fx_host_gemm_destroy};

/* ---- the kernel OpenBLAS runs ---------------------------------------------------------- */

/* OpenBLAS's kernels without AVX2 (its x86 targets of older cores): where DYNAMIC_ARCH does not
 * recognise a CPU it falls back to Prescott, whatever the CPU can do. */
static const char *const no_avx2[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge",
                                      "Katmai", "Coppermine", "Northwood", "Banias", "Opteron", "Opteron_SSE3",
                                      "Barcelona", "Bobcat", "Bulldozer", "Piledriver", "Steamroller", "Nano",
                                      "Unknown"};

const char *fx_openblas_kernel_for(const char *chosen, int avx2_fma, int avx512)
{
    if (!chosen || !avx2_fma)
        return NULL;
    for (size_t i = 0; i < sizeof no_avx2 / sizeof *no_avx2; i++)
        if (!strcasecmp(chosen, no_avx2[i]))
            return avx512 ? "SkylakeX" : "Haswell";
    return NULL;
}

void fx_openblas_fix_kernel(char **argv)
{
    const char *set = getenv(FX_OPENBLAS_SET), *ct = getenv("OPENBLAS_CORETYPE");
    if (getenv("FIFTYX_KEEP_OPENBLAS_ENV") || (set && ct && !strcmp(set, ct)))
        return; /* the user's choice, or fiftyx's own already made */
    unsetenv(FX_OPENBLAS_SET); /* markers without the setting they mark: stray, not ours */
    unsetenv(FX_OPENBLAS_CHOSE);
    /* the ISAs as the cpu backend's dispatch tells them (kernels/cpu/isa.c) */
    const char *chosen = openblas_get_corename(),
               *fix = fx_openblas_kernel_for(chosen, fx_cpu_isa_avx2.supported(), fx_cpu_isa_avx512.supported());
    if (!fix)
        return;
    setenv(FX_OPENBLAS_CHOSE, chosen, 1);
    setenv(FX_OPENBLAS_SET, fix, 1);
    setenv("OPENBLAS_CORETYPE", fix, 1);
    execv("/proc/self/exe", argv);
    /* if re-exec fails, carry on with OpenBLAS's choice: describe() records it */
    unsetenv(FX_OPENBLAS_CHOSE);
    unsetenv(FX_OPENBLAS_SET);
    unsetenv("OPENBLAS_CORETYPE");
}

static const char *ob_describe(void)
{
    static char buf[480];
    use_threads();
    const char *config = openblas_get_config();
    int t = openblas_get_num_threads();
    /* fiftyx pins OpenMP's threads; OpenBLAS's workers are its own pool, made at load time */
    snprintf(buf, sizeof buf, "%s; kernel %s; %d thread%s%s", config, openblas_get_corename(), t, t == 1 ? "" : "s",
             t == 1                             ? " (the calling thread, pinned by fiftyx)"
             : strstr(config, "USE_OPENMP")  ? " (OpenMP threads, pinned by fiftyx)"
             : strstr(config, "NO_AFFINITY") ? " (the calling thread pinned by fiftyx; OpenBLAS's own workers "
                                               "unpinned, placed by the OS)"
                                             : " (the calling thread pinned by fiftyx; OpenBLAS's own workers "
                                               "bound by OpenBLAS)");
    const char *chose = getenv(FX_OPENBLAS_CHOSE), *set = getenv(FX_OPENBLAS_SET);
    if (chose && set && !strcasecmp(set, openblas_get_corename())) { /* fiftyx's setting, and taken */
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "; OPENBLAS_CORETYPE=%s set by fiftyx: OpenBLAS's own choice on this CPU "
                 "was %.40s, a kernel without AVX2", set, chose);
    }
    return buf;
}

const fx_backend fx_backend_openblas = {
    .name = "openblas",
    .device = FX_CPU,
    .summary = "OpenBLAS sgemm calls and plain loops: the step as a BLAS user writes it",
    .unsupported = ob_unsupported,
    .create = ob_create,
    .run = ob_run,
    .read_weights = ob_read_weights,
    .destroy = ob_destroy,
    .kernels = &ob_kernels,
    .gemm_bench = &ob_gemm_bench_ops,
    .describe = ob_describe,
};
