/* sparse_sweep.c — the sparse w1ᵀ update (fx_cpu_sparse) against the dense GEMM it replaces,
 * over a range of densities, on one thread: where cpu.h's FX_SPARSE_* limits
 * come from (NOTES.md, entry 31).
 *
 *   make sparse-sweep && build/sparse-sweep M N K [reps]
 *
 * M×N is the updated C (the step's w1ᵀ slice: hidden units × D_in), K the batch; A (ghᵀ) has the
 * given share of non-zeros at random places, B (x) rows at the step's stride (fx_cpu_x_stride).
 * Each time is the best of `reps` runs (default 200) of compaction + update, against the best of
 * as many dense fx_cpu_gemm_one SGD calls on the same operands, interleaved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include "cpu.h"
#include "../../harness/peaks.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The ceiling of a kernel that loads one vector per FMA: 16 chains of FMAs whose second operand
 * comes from L1 (each a fresh 64-byte vector, as the sparse update's rows of B), against the FMA
 * peak loop of `fiftyx info --peaks` (harness/peak_fma_avx512.c: chains on registers). AVX-512
 * only, after the ISA check. */
__attribute__((target("avx512f,fma"), noinline)) static void fma_ceiling(double *with_load, double *alone)
{
    static float buf[8192] __attribute__((aligned(64)));
    for (int i = 0; i < 8192; i++)
        buf[i] = 1e-7f * (float)i;
    __m512 acc[16];
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_setzero_ps();
    const __m512 g = _mm512_set1_ps(1e-9f), h = _mm512_set1_ps(2e-9f);
    const long iters = 4000000;
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        const float *p = buf + ((it * 128) & 8191), *q = buf + ((it * 128 + 4096) & 8191);
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            acc[v] = _mm512_fmadd_ps(g, _mm512_load_ps(p + 16 * v), acc[v]);
            acc[8 + v] = _mm512_fmadd_ps(h, _mm512_load_ps(q + 16 * v), acc[8 + v]);
        }
    }
    double t = now() - t0;
    __m512 sum = acc[0];
    for (int i = 1; i < 16; i++)
        sum = _mm512_add_ps(sum, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(sum);
    *with_load = (double)iters * 16 * 32 / t * 1e-9;
    const long peak_iters = 20000000; /* 12 chains an iteration */
    t0 = now();
    sink += fx_fma_loop_avx512(peak_iters, 1.0000001f, 1e-9f);
    *alone = (double)peak_iters * 12 * 32 / (now() - t0) * 1e-9;
    (void)sink;
}

int main(int argc, char **argv)
{
    long m = argc > 3 ? atol(argv[1]) : 0, n = argc > 3 ? atol(argv[2]) : 0, k = argc > 3 ? atol(argv[3]) : 0;
    int reps = argc > 4 ? atoi(argv[4]) : 200;
    if (argc < 4 || argc > 5 || m < 1 || n < 1 || k < 1 || m > 65536 || n > 65536 || k > 65536 || reps < 1) {
        fprintf(stderr, "usage: sparse-sweep M N K [reps]   (each of M, N, K in 1..65536)\n");
        return 2;
    }
    const char *why = NULL;
    const fx_cpu_isa *isa = fx_cpu_isa_select(&why);
    if (!isa || !isa->sparse_compact) {
        fprintf(stderr, "sparse-sweep: %s\n", isa ? "this ISA has no sparse update" : why);
        return 2;
    }
    const long ldb = fx_cpu_x_stride(n), ld = fx_cpu_sparse_ld(k), sld = fx_cpu_sparse_sld(k);
    float *a = malloc((size_t)(m * k) * sizeof *a), *b = aligned_alloc(64, (size_t)(k * ldb) * sizeof *b);
    float *c = malloc((size_t)(m * n) * sizeof *c), *work = malloc((size_t)(m * n) * sizeof *work);
    int32_t *idx = malloc((size_t)(m * ld) * sizeof *idx), *starts = malloc((size_t)(m * sld) * sizeof *starts);
    float *val = malloc((size_t)(m * ld) * sizeof *val), *part = malloc((size_t)(m * FX_SPARSE_NB) * sizeof *part);
    if (!a || !b || !c || !work || !idx || !starts || !val || !part) {
        fprintf(stderr, "sparse-sweep: out of memory\n");
        return 2;
    }
    fx_cpu_sparse s = {.m = m, .n = n, .k = k, .a = a, .lda = k, .b = b, .ldb = ldb, .c = c, .ldc = n,
                       .lr = 1e-6f, .ld = ld, .idx = idx, .val = val, .starts = starts, .part = part};
    fx_cpu_gemm g = {.m = m, .n = n, .k = k, .a = a, .a_rs = k, .a_cs = 1, .b = b, .b_rs = ldb, .b_cs = 1,
                     .epi = FX_EPI_SGD, .c = c, .ldc = n, .lr = 1e-6f, .work = work};
    srand(1);
    for (long i = 0; i < k * ldb; i++)
        b[i] = (float)(rand() % 100) * 1e-2f;
    for (long i = 0; i < m * n; i++)
        c[i] = 1.0f;
    static const double dens[] = {0.3, 0.45, 0.55, 0.6, 0.65, 0.7, 0.8, 1.0};
    printf("%s, %ldx%ldx%ld, 1 thread, best of %d\n", isa->name, m, n, k, reps);
    if (!strcmp(isa->name, "avx512")) {
        double with_load, alone;
        fma_ceiling(&with_load, &alone);
        printf("FMA chains, one 64-byte load from L1 per FMA: %.1f GFLOP/s; on registers: %.1f (%.0f%%)\n",
               with_load, alone, 100 * with_load / alone);
    }
    printf("%8s %12s %12s %14s\n", "density", "sparse us", "dense us", "sparse/dense");
    for (size_t d = 0; d < sizeof dens / sizeof dens[0]; d++) {
        for (long i = 0; i < m * k; i++)
            a[i] = (double)rand() / RAND_MAX < dens[d] ? 1e-3f * (float)(rand() % 7 + 1) : 0.0f;
        double bs = 1e30, bd = 1e30;
        long nnz = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            nnz = isa->sparse_compact(&s);
            isa->sparse_sgd(&s);
            double t1 = now();
            fx_cpu_gemm_one(isa, &g);
            double t2 = now();
            bs = t1 - t0 < bs ? t1 - t0 : bs;
            bd = t2 - t1 < bd ? t2 - t1 : bd;
        }
        printf("%8.3f %12.2f %12.2f %14.3f\n", (double)nnz / (double)(m * k), bs * 1e6, bd * 1e6, bs / bd);
    }
    return 0;
}
