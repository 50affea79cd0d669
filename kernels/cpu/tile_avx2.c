/* tile_avx2.c — the AVX2+FMA micro-kernel (6×16) and element-wise kernels.
 * Compiled with -mavx2 -mfma (the file name says so); called only after CPUID.
 *
 * Per k: two ymm rows of B (16 columns) and 6 broadcasts of A feed 12 FMAs into 12 ymm
 * accumulators (15 of the 16 registers): BLIS's Haswell shape. Columns past the tile's edge
 * are handled with maskload/maskstore; the mask bytes of the epilogue go through a scalar path
 * for a partial vector. */
#include <immintrin.h>
#include <string.h>
#include "cpu.h"

#define MR 6
#define VL 8
#define INLINE static inline __attribute__((always_inline))

static const int32_t lane_ones[2 * VL] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* lanes [0, n) set, n in 0..8 */
INLINE __m256i lanes(int n) { return _mm256_loadu_si256((const __m256i *)(lane_ones + VL - n)); }

INLINE void put(const fx_cpu_tile *t, __m256 x, long r, long j, int cols)
{
    if (cols < VL) { /* the edge of C: element by element */
        float tmp[VL];
        _mm256_storeu_ps(tmp, x);
        for (int q = 0; q < cols; q++)
            fx_cpu_epilogue1(t, r * t->ldc + j + q, r * t->ldp + j + q, tmp[q]);
        return;
    }
    float *p = t->p + r * t->ldp + j;
    if (!t->first)
        x = _mm256_add_ps(x, _mm256_loadu_ps(p));
    if (!t->last) {
        _mm256_storeu_ps(p, x);
        return;
    }
    float *c = t->c + r * t->ldc + j;
    const __m256 zero = _mm256_setzero_ps();
    switch (t->epi) {
    case FX_EPI_STORE:
        _mm256_storeu_ps(c, x);
        break;
    case FX_EPI_RELU_MASK: {
        __m256i ge = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_GE_OQ)), _mm256_set1_epi32(1));
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(ge), _mm256_extracti128_si256(ge, 1));
        _mm_storel_epi64((__m128i *)(t->mask + r * t->ldc + j), _mm_packs_epi16(w, w));
        _mm256_storeu_ps(c, _mm256_max_ps(x, zero));
        break;
    }
    case FX_EPI_MASK: {
        __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(t->mask + r * t->ldc + j)));
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(m, _mm256_setzero_si256()));
        _mm256_storeu_ps(c, _mm256_and_ps(x, keep));
        break;
    }
    case FX_EPI_SGD:
        _mm256_storeu_ps(c, _mm256_fnmadd_ps(_mm256_set1_ps(t->lr), x, _mm256_loadu_ps(c)));
        break;
    }
}

/* EDGE: B's last vector is loaded under the lane mask (an unpacked B's right edge, where the
 * lanes past nr may not exist); packed B is padded with zeros, and a whole tile reads whole
 * vectors. */
INLINE void tile(const fx_cpu_tile *t, const int MRC, const int NV, const int EDGE, const long rs,
                 const long cs)
{
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MRC; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm256_setzero_ps();

    int last_cols = t->nr - (NV - 1) * VL;
    __m256i tail = lanes(last_cols < VL ? last_cols : VL);
    const float *a = t->a, *b = t->b;
    const long brs = t->b_rs, kc = t->kc;
    for (int r = 0; r < MRC; r++)
        _mm_prefetch((const char *)(t->p + r * t->ldp), _MM_HINT_T0);
    /* A in place by columns (TN): fetch the next row panel's lines, as tile_avx512.c does */
    const int next_a = rs == 1 && cs >= 64;
#pragma GCC unroll 4
    for (long k = 0; k < kc; k++) {
        __m256 b0, b1;
        if (next_a) {
            _mm_prefetch((const char *)(a + MRC), _MM_HINT_T0);
            _mm_prefetch((const char *)(a + 2 * MRC - 1), _MM_HINT_T0);
        }
        if (NV == 2) {
            b0 = _mm256_loadu_ps(b);
            b1 = EDGE ? _mm256_maskload_ps(b + VL, tail) : _mm256_loadu_ps(b + VL);
        } else {
            b0 = b1 = EDGE ? _mm256_maskload_ps(b, tail) : _mm256_loadu_ps(b);
        }
#pragma GCC unroll 6
        for (int r = 0; r < MRC; r++) {
            __m256 ar = _mm256_broadcast_ss(a + r * rs);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            if (NV == 2)
                acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
        }
        a += cs;
        b += brs;
    }

    const int rows = t->mr;
#pragma GCC unroll 6
    for (int r = 0; r < MRC; r++) {
        if (r >= rows)
            break;
        if (NV == 2) {
            put(t, acc[r][0], r, 0, VL);
            put(t, acc[r][1], r, VL, last_cols);
        } else {
            put(t, acc[r][0], r, 0, last_cols);
        }
    }
}

#define ROWS(m)                                                                                    \
    case m:                                                                                        \
        FX_CPU_TILE_VARIANTS(tile, t, m, nv, edge, t->a_rs, t->a_cs);                              \
        return;

void fx_cpu_tile_avx2(const fx_cpu_tile *t)
{
    int nv = t->nr > VL ? 2 : 1;
    int edge = !t->b_padded && t->nr != nv * VL;
    /* packed A in whole panels: the MR-row instance with constant strides; a thin last panel
     * (50 rows: 8 × 6 + 2) takes the instance for its row count instead of computing the
     * panel's zero rows (NOTES.md, 20) */
    if (t->a_packed && t->mr == MR) {
        FX_CPU_TILE_VARIANTS(tile, t, MR, nv, edge, 1, MR);
        return;
    }
    switch (t->mr) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6)
    }
}

double fx_cpu_loss_grad_avx2(long n, const float *yp, const float *y, float *g)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    long i = 0;
    for (; i + VL <= n; i += VL) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(yp + i), _mm256_loadu_ps(y + i));
        _mm256_storeu_ps(g + i, _mm256_add_ps(d, d));
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
        __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
        s0 = _mm256_fmadd_pd(lo, lo, s0);
        s1 = _mm256_fmadd_pd(hi, hi, s1);
    }
    double s[4];
    _mm256_storeu_pd(s, _mm256_add_pd(s0, s1));
    double sum = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; i++) {
        float d = yp[i] - y[i];
        g[i] = 2.0f * d;
        sum += (double)d * d;
    }
    return sum;
}

void fx_cpu_sgd_avx2(long n, float *w, const float *g, float lr)
{
    const __m256 l = _mm256_set1_ps(lr);
    long i = 0;
    for (; i + VL <= n; i += VL)
        _mm256_storeu_ps(w + i, _mm256_fnmadd_ps(l, _mm256_loadu_ps(g + i), _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
        w[i] = __builtin_fmaf(-lr, g[i], w[i]);
}
