/* check_sparse.c — the cpu backend's sparse weight update (fx_cpu_sparse, kernels/cpu/cpu.h),
 * called directly on every ISA here that has one, against a double reference.
 *
 * The loop checks run it inside the step (the cpu backend takes it where a thread has at most
 * 128 hidden units and ghᵀ's slice is at most 60% non-zero: cpu.h), where the operands have no
 * gaps: here each operand has one, and the lists start poisoned. A's rows run on past k into
 * columns holding non-zeros and a NaN, B has NaN rows past k, and C's gap columns hold a
 * sentinel: reading A past k, listing a column ≥ k, reading a row of B past k, or writing C past
 * n with anything but its own value fails. (B's NaN columns past n
 * reach only lanes that are never stored: a tail load of B without its mask passes here.)
 * Shapes cross every edge of the kernel: one row and odd rows (the pairs' last row alone), n
 * within one vector, at a block's edge and past it (FX_SPARSE_NB = 128), k under 16, between,
 * at and past FX_SPARSE_KB = 64 (partial sums), densities 0 (C untouched), 0.5 (rows of a pair
 * sharing some columns), 1 (sharing all) and rows alternating (sharing none), and a NaN in A's
 * first and last rows (the first of a pair; the odd row where m is odd), which must reach those
 * rows of C as the dense product takes it. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/cpu/cpu.h"
#include "check.h"

static const long shapes[][3] = {
    {1, 1, 1},    {1, 16, 16},  {2, 17, 15},   {3, 127, 63},  {5, 128, 64},   {7, 129, 65},
    {12, 200, 37}, {9, 257, 130}, {4, 33, 600}, {61, 203, 37}, {100, 1000, 64},
};
/* ALTERNATE: row i non-zero exactly where row i ± 1 is zero (the pairs share no column, and
 * neither row's list is empty) */
#define ALTERNATE (-1.0)
static const double densities[] = {0.0, 0.5, 1.0, ALTERNATE};

/* One case; 0 when right, else -1 with why filled. */
static int sparse_case(const fx_cpu_isa *isa, long m, long n, long k, double density, int with_nan,
                       uint64_t seed, double *worst, char *why, size_t why_len)
{
    const long lda = k + 5, ldb = n + 3, ldc = n + 7, ld = fx_cpu_sparse_ld(k);
    const long sld = fx_cpu_sparse_sld(k);
    float *a = malloc((size_t)(m * lda) * sizeof *a), *b = malloc((size_t)((k + 16) * ldb) * sizeof *b);
    float *c = malloc((size_t)(m * ldc) * sizeof *c), *c0 = malloc((size_t)(m * ldc) * sizeof *c0);
    int32_t *idx = malloc((size_t)(m * ld) * sizeof *idx), *starts = malloc((size_t)(m * sld) * sizeof *starts);
    float *val = malloc((size_t)(m * ld) * sizeof *val), *part = malloc((size_t)(m * FX_SPARSE_NB) * sizeof *part);
    int rc = -1;
    if (!a || !b || !c || !c0 || !idx || !starts || !val || !part) {
        snprintf(why, why_len, "out of memory");
        goto done;
    }
    fx_rng r;
    fx_rng_seed(&r, seed);
    long nnz_want = 0;
    for (long i = 0; i < m; i++)
        for (long p = 0; p < lda; p++) {
            float v = (float)fx_rng_normal(&r);
            int keep = p >= k || (density == ALTERNATE ? (p + i) % 2 == 0 : fx_rng_uniform(&r) < density);
            a[i * lda + p] = keep ? (p == k + 1 ? NAN : v) : 0.0f; /* past k: non-zeros and a NaN */
            nnz_want += keep && p < k;
        }
    /* a NaN in A's first and last rows (the first of a pair and, where m is odd, the odd row):
     * those rows of C must turn NaN in every column */
    long nan_row0 = -1, nan_row1 = -1;
    if (with_nan) {
        nan_row0 = 0;
        nan_row1 = m - 1;
        for (long i = 0; i < m; i += m - 1 > 0 ? m - 1 : 1) {
            long p = fx_rng_next(&r) % (uint64_t)k;
            if (a[i * lda + p] == 0.0f)
                nnz_want++;
            a[i * lda + p] = NAN;
        }
    }
    for (long p = 0; p < k + 16; p++)
        for (long j = 0; j < ldb; j++)
            b[p * ldb + j] = p < k && j < n ? (float)fx_rng_normal(&r) : NAN;
    for (long i = 0; i < m * ldc; i++)
        c[i] = c0[i] = (i % ldc) < n ? (float)fx_rng_normal(&r) : 12345.0f;
    const float lr = 0.5f;
    fx_cpu_sparse s = {.m = m, .n = n, .k = k, .a = a, .lda = lda, .b = b, .ldb = ldb, .c = c, .ldc = ldc,
                       .lr = lr, .ld = ld, .idx = idx, .val = val, .starts = starts, .part = part};
    /* lists poisoned: an entry read that the compaction never wrote (row j + 1's slots of the
     * columns its pair shares, the odd row's shared counts) takes a column far out of B (a crash)
     * or a NaN value, not a leftover that happens to be right */
    for (long i = 0; i < m * ld; i++) {
        idx[i] = 0x3fffffff;
        val[i] = NAN;
    }
    for (long i = 0; i < m * sld; i++)
        starts[i] = -1;
    long nnz = isa->sparse_compact(&s);
    if (nnz != nnz_want) {
        snprintf(why, why_len, "%ld non-zeros listed, A has %ld", nnz, nnz_want);
        goto done;
    }
    isa->sparse_sgd(&s);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (j >= n) {
                if (got != 12345.0f) {
                    snprintf(why, why_len, "C[%ld,%ld] past n = %g: written", i, j, got);
                    goto done;
                }
                continue;
            }
            if (i == nan_row0 || i == nan_row1) {
                if (!isnan(got)) {
                    snprintf(why, why_len, "C[%ld,%ld] = %g: A's NaN in row %ld lost", i, j, got, i);
                    goto done;
                }
                continue;
            }
            double acc = 0.0, abs = 0.0;
            for (long p = 0; p < k; p++) {
                double t = (double)a[i * lda + p] * (double)b[p * ldb + j];
                acc += t;
                abs += fabs(t);
            }
            if (fx_gemm_elem_check(FX_EPI_SGD, acc, (double)k * FLT_EPSILON * abs, c0[i * ldc + j], lr, got,
                                   0, 1, 0, worst, why, why_len, i, j))
                goto done;
        }
    rc = 0;
done:
    free(a);
    free(b);
    free(c);
    free(c0);
    free(idx);
    free(starts);
    free(val);
    free(part);
    return rc;
}

void fx_check_sparse(fx_check *c)
{
    static const fx_cpu_isa *const isas[] = {&fx_cpu_isa_avx512, &fx_cpu_isa_avx2, &fx_cpu_isa_generic};
    for (size_t q = 0; q < sizeof isas / sizeof isas[0]; q++) {
        const fx_cpu_isa *isa = isas[q];
        char name[96];
        snprintf(name, sizeof name, "cpu/sparse_update_%s", isa->name);
        if (!isa->sparse_compact || !isa->sparse_sgd)
            continue; /* this ISA has none: the step takes the dense GEMM */
        if (!isa->supported()) {
            fx_report(c, FX_SKIP, name, "this CPU lacks %s", isa->name);
            continue;
        }
        double worst = 0;
        char why[200] = "";
        int cases = 0, bad = 0;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && !bad; i++)
            for (size_t d = 0; d < sizeof densities / sizeof densities[0] && !bad; d++)
                for (int with_nan = 0; with_nan < 2 && !bad; with_nan++) { /* a NaN in A even at density 0 */
                    const long *sh = shapes[i];
                    if (sparse_case(isa, sh[0], sh[1], sh[2], densities[d], with_nan, 1000 + i * 7 + d * 2 + (size_t)with_nan,
                                    &worst, why, sizeof why)) {
                        char dens[24];
                        if (densities[d] == ALTERNATE)
                            snprintf(dens, sizeof dens, "rows alternating");
                        else
                            snprintf(dens, sizeof dens, "density %.1f", densities[d]);
                        fx_report(c, FX_FAIL, name, "%ldx%ldx%ld, %s%s: %s", sh[0], sh[1], sh[2], dens,
                                  with_nan ? ", a NaN in A" : "", why);
                        bad = 1;
                    }
                    cases++;
                }
        if (!bad)
            fx_report(c, FX_PASS, name, "%d cases, worst error %.2f of tolerance", cases, worst);
    }
}
