/* backend.c — the `cpu` backend (ISA chosen at run time; FIFTYX_ISA forces one) and one hidden
 * variant per ISA (cpu-avx512, cpu-avx2, cpu-generic) so that `fiftyx check` validates every
 * micro-kernel this CPU can run, and cpu-dense (the step without the sparse w1ᵀ update). All of
 * them share the loop nest, the step and these tables; they differ only in the fx_cpu_isa they
 * hand down. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "cpu_backend.h"

/* ---- kernels ---- */

static int do_gemm(const fx_cpu_isa *isa, const fx_gemm_args *a, fx_err *e)
{
    if (!isa)
        return fx_fail(e, "no usable instruction set");
    if (a->m < 1 || a->n < 1 || a->k < 1)
        return fx_fail(e, "GEMM dimensions must be at least 1 (got %ldx%ldx%ld)", a->m, a->n, a->k);
    fx_cpu_gemm g = fx_cpu_gemm_from_args(a);
    return fx_cpu_gemm_run(isa, &g, fx_cpu_threads(), e);
}

/* Element-wise kernels are bound by memory: a thread is worth it when its share, at least 2^15
 * floats (~2.5 µs on one core from L2), outlasts the fork and join (~1 µs on 2 threads). NOTES.md,
 * entry 27. */
static int elementwise_threads(long n)
{
    long t = n >> 15, most = fx_cpu_threads();
    return t < 1 ? 1 : t > most ? (int)most : (int)t;
}

static int do_loss_grad(const fx_cpu_isa *isa, long n, const float *yp, const float *y, float *g,
                        double *loss, fx_err *e)
{
    if (!isa)
        return fx_fail(e, "no usable instruction set");
    int T = elementwise_threads(n);
    double sum = 0.0;
#pragma omp parallel for num_threads(T) reduction(+ : sum) schedule(static)
    for (int c = 0; c < T; c++) {
        long i0 = n * c / T, i1 = n * (c + 1) / T;
        sum += isa->loss_grad(i1 - i0, yp + i0, y + i0, g + i0);
    }
    *loss = sum;
    return 0;
}

static int do_sgd(const fx_cpu_isa *isa, long n, float *w, const float *g, float lr, fx_err *e)
{
    if (!isa)
        return fx_fail(e, "no usable instruction set");
    int T = elementwise_threads(n);
#pragma omp parallel for num_threads(T) schedule(static)
    for (int c = 0; c < T; c++) {
        long i0 = n * c / T, i1 = n * (c + 1) / T;
        isa->sgd(i1 - i0, w + i0, g + i0, lr);
    }
    return 0;
}

/* ---- GEMM benchmark hooks: the kernels' GEMM (STORE epilogue), timed on the CPU clock ---- */

static int gb_create(const fx_cpu_isa *isa, fx_op op, long m, long n, long k, int nsets,
                     const float *const *a, const float *const *b, void **handle, fx_err *e)
{
    if (!isa)
        return fx_fail(e, "no usable instruction set");
    return fx_host_gemm_create(isa, op, m, n, k, nsets, a, b, handle, e);
}

static int gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    fx_host_gemm *g = h;
    const fx_cpu_isa *isa = g->ctx;
    int threads = fx_cpu_threads();
    double t0 = fx_wall_seconds();
    for (long i = 0; i < iters; i++) {
        int s = fx_host_gemm_next_set(g);
        fx_gemm_args args = {g->op, FX_EPI_STORE, g->m, g->n, g->k, g->a[s], g->b[s], g->c[s], NULL, 0};
        fx_cpu_gemm c = fx_cpu_gemm_from_args(&args);
        if (fx_cpu_gemm_run(isa, &c, threads, e))
            return -1;
    }
    *seconds = fx_wall_seconds() - t0;
    return 0;
}

/* ---- description and availability ---- */

static const char *describe(const fx_cpu_isa *isa, char *buf, size_t len)
{
    if (!isa)
        return "no usable instruction set";
    const char *forced = getenv("FIFTYX_ISA"), *blocks = getenv("FIFTYX_BLOCKS");
    char sparse[128] = "; step's w1 update: dense";
    if (isa->sparse_compact)
        snprintf(sparse, sizeof sparse, "; step's w1 update: sparse (gh's non-zeros) for <= %d hidden units a "
                 "thread, D_in >= %d, gh <= %.0f%% non-zero", FX_SPARSE_MAX_ROWS, FX_SPARSE_MIN_COLS,
                 100 * FX_SPARSE_MAX_DENSITY);
    snprintf(buf, len, "%s%s: micro-kernel %s; blocks KC %ld, NC %ld, MC %ld%s; operands over %ld KiB "
             "per thread packed%s; %d thread%s", isa->name, forced && *forced ? " (FIFTYX_ISA)" : "",
             isa->ukernel, isa->kc, isa->nc, isa->mc, blocks && *blocks ? " (FIFTYX_BLOCKS)" : "",
             isa->pack_bytes >> 10, sparse, fx_cpu_threads(),
             fx_cpu_threads() == 1 ? "" : "s");
    return buf;
}

static const char *selected_why_not(void)
{
    const char *why = NULL;
    return fx_cpu_isa_select(&why) ? NULL : why;
}

/* Why a forced variant cannot run: the CPU lacks its ISA, or FIFTYX_BLOCKS is malformed. */
static const char *forced_why_not(const fx_cpu_isa *isa)
{
    if (!isa->supported())
        return isa == &fx_cpu_isa_avx512 ? "this CPU lacks AVX-512 (F, VL, BW, DQ)"
                                         : "this CPU lacks AVX2 and FMA";
    const char *why = NULL;
    return fx_cpu_isa_with_blocks(isa, &why) ? NULL : why;
}

/* The selected ISA with the sparse w1ᵀ update switched off: the step's dense GEMM path, for
 * `fiftyx check` on a CPU whose ISA has the sparse one, and to time the two in one run. */
static const fx_cpu_isa *dense_isa(void)
{
    const fx_cpu_isa *isa = fx_cpu_isa_select(NULL);
    if (!isa)
        return NULL;
    static fx_cpu_isa dense; /* rewritten with the same values on every call */
    dense = *isa;
    dense.sparse_compact = NULL;
    dense.sparse_sgd = NULL;
    return &dense;
}

/* ---- one set of entry points per variant: the kernels table has no room for a context ---- */

#define CPU_VARIANT(id, ISA, ISA_NAME, WHY_NOT)                                                    \
    static const fx_cpu_isa *isa_##id(void) { return ISA; }                                       \
    static const char *unavailable_##id(void) { return WHY_NOT; }                                 \
    static int gemm_##id(const fx_gemm_args *a, fx_err *e) { return do_gemm(isa_##id(), a, e); }  \
    static int loss_grad_##id(long n, const float *yp, const float *y, float *g, double *l,       \
                              fx_err *e)                                                          \
    {                                                                                             \
        return do_loss_grad(isa_##id(), n, yp, y, g, l, e);                                       \
    }                                                                                             \
    static int sgd_##id(long n, float *w, const float *g, float lr, fx_err *e)                    \
    {                                                                                             \
        return do_sgd(isa_##id(), n, w, g, lr, e);                                                \
    }                                                                                             \
    static const fx_kernels kernels_##id = {gemm_##id, loss_grad_##id, sgd_##id};                 \
    static int create_##id(const fx_problem *p, const fx_tensors *t, void **s, fx_err *e)         \
    {                                                                                             \
        return fx_cpu_create(isa_##id(), p, t, s, e);                                             \
    }                                                                                             \
    static int gb_create_##id(fx_op op, long m, long n, long k, int nsets, const float *const *a, \
                              const float *const *b, void **h, fx_err *e)                         \
    {                                                                                             \
        return gb_create(isa_##id(), op, m, n, k, nsets, a, b, h, e);                             \
    }                                                                                             \
    static const fx_gemm_bench gemm_bench_##id = {gb_create_##id, gb_run, fx_host_gemm_result, fx_host_gemm_destroy}; \
    static const char *describe_##id(void)                                                        \
    {                                                                                             \
        static char buf[480];                                                                     \
        return describe(isa_##id(), buf, sizeof buf);                                             \
    }                                                                                             \
    static const char *isa_name_##id(void) { return ISA_NAME; }

/* The ISA name (for the row's peak) of a forced variant does not depend on FIFTYX_BLOCKS. */
CPU_VARIANT(cpu, fx_cpu_isa_select(NULL), isa_cpu() ? isa_cpu()->name : NULL, selected_why_not())
CPU_VARIANT(avx512, fx_cpu_isa_with_blocks(&fx_cpu_isa_avx512, NULL), fx_cpu_isa_avx512.name,
            forced_why_not(&fx_cpu_isa_avx512))
CPU_VARIANT(avx2, fx_cpu_isa_with_blocks(&fx_cpu_isa_avx2, NULL), fx_cpu_isa_avx2.name,
            forced_why_not(&fx_cpu_isa_avx2))
CPU_VARIANT(generic, fx_cpu_isa_with_blocks(&fx_cpu_isa_generic, NULL), fx_cpu_isa_generic.name,
            forced_why_not(&fx_cpu_isa_generic))
CPU_VARIANT(dense, dense_isa(), isa_dense() ? isa_dense()->name : NULL, selected_why_not())

#define CPU_BACKEND(id, NAME, SUMMARY, HIDDEN)                                                     \
    {                                                                                             \
        .name = NAME, .device = FX_CPU, .summary = SUMMARY, .unavailable = unavailable_##id,      \
        .create = create_##id, .run = fx_cpu_run, .read_weights = fx_cpu_read_weights,            \
        .destroy = fx_cpu_destroy, .kernels = &kernels_##id, .gemm_bench = &gemm_bench_##id,      \
        .describe = describe_##id, .hidden = HIDDEN, .isa = isa_name_##id,                        \
        .family = "cpu", /* the variants share step.c and gemm.c: one vote by agreement */       \
        .elementwise_threads = elementwise_threads,                                               \
    }

const fx_backend fx_backend_cpu = CPU_BACKEND(
    cpu, "cpu", "hand-optimised CPU: packed/blocked SGEMM with fused epilogues, OpenMP, best ISA here", 0);
const fx_backend fx_backend_cpu_avx512 =
    CPU_BACKEND(avx512, "cpu-avx512", "the cpu backend with its AVX-512 micro-kernel forced", 1);
const fx_backend fx_backend_cpu_avx2 =
    CPU_BACKEND(avx2, "cpu-avx2", "the cpu backend with its AVX2+FMA micro-kernel forced", 1);
const fx_backend fx_backend_cpu_generic =
    CPU_BACKEND(generic, "cpu-generic", "the cpu backend with its portable C micro-kernel forced", 1);
const fx_backend fx_backend_cpu_dense = CPU_BACKEND(
    dense, "cpu-dense", "the cpu backend with the w1 update as a dense GEMM (the mask's zeros not skipped)", 1);
