/* tile_avx512.c — the AVX-512 micro-kernel (12×32) and element-wise kernels.
 * Compiled with -mavx512f/vl/bw/dq -mfma (the file name says so); called only after CPUID.
 *
 * Per k: two zmm rows of B (32 columns) and 12 broadcasts of A feed 24 FMAs into 24 zmm
 * accumulators (27 of the 32 registers). An FMA has a latency of 4 cycles and issues at one
 * zmm per cycle or more, so 24 independent chains keep the FMA pipes full. The epilogue is
 * applied to the accumulators on their way out, with lane masks for the last columns. */
#include <immintrin.h>
#include "cpu.h"

#define MR 12
#define VL 16
#define INLINE static inline __attribute__((always_inline))

INLINE void put(const fx_cpu_tile *t, __m512 x, long r, long j, __mmask16 lm)
{
    float *p = t->p + r * t->ldp + j;
    if (!t->first)
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(lm, p));
    if (!t->last) {
        _mm512_mask_storeu_ps(p, lm, x);
        return;
    }
    float *c = t->c + r * t->ldc + j;
    const __m512 zero = _mm512_setzero_ps();
    switch (t->epi) {
    case FX_EPI_STORE:
        _mm512_mask_storeu_ps(c, lm, x);
        break;
    case FX_EPI_RELU_MASK: {
        __mmask16 ge = _mm512_cmp_ps_mask(x, zero, _CMP_GE_OQ);
        _mm_mask_storeu_epi8(t->mask + r * t->ldc + j, lm, _mm_maskz_set1_epi8(ge, 1));
        _mm512_mask_storeu_ps(c, lm, _mm512_max_ps(x, zero));
        break;
    }
    case FX_EPI_MASK: {
        __m128i m = _mm_maskz_loadu_epi8(lm, t->mask + r * t->ldc + j);
        _mm512_mask_storeu_ps(c, lm, _mm512_maskz_mov_ps(_mm_test_epi8_mask(m, m), x));
        break;
    }
    case FX_EPI_SGD: /* w − lr·acc in one rounding */
        _mm512_mask_storeu_ps(c, lm, _mm512_fnmadd_ps(_mm512_set1_ps(t->lr), x, _mm512_maskz_loadu_ps(lm, c)));
        break;
    }
}

/* The tile for MRC rows and NV vectors of 16 columns, A read with strides (rs, cs): constants
 * at every call site, so each instance compiles to straight-line code with fixed registers.
 * EDGE: B's last vector is loaded under the lane mask (an unpacked B's right edge, where the
 * lanes past nr may not exist); packed B is padded with zeros and loads whole vectors. */
INLINE void tile(const fx_cpu_tile *t, const int MRC, const int NV, const int EDGE, const long rs,
                 const long cs)
{
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MRC; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm512_setzero_ps();

    int last_cols = t->nr - (NV - 1) * VL;
    __mmask16 tail = last_cols >= VL ? (__mmask16)0xFFFF : (__mmask16)((1u << last_cols) - 1);
    /* Row r of A is read at base[(r % 3)·rs], from one of four bases: with base + index·scale
     * addressing the 12 rows take 5 general registers. One pointer per row (a + r·rs) ran out of
     * them where rs is not a constant (A read in place), and GCC kept the overflow in vector
     * registers, moving it back with vmovq inside the k loop: 3.4% of the tutorial step (NOTES.md, 18). */
    const float *a0 = t->a, *a3 = MRC > 3 ? a0 + 3 * rs : a0, *a6 = MRC > 6 ? a0 + 6 * rs : a0,
                *a9 = MRC > 9 ? a0 + 9 * rs : a0, *b = t->b;
    const long brs = t->b_rs, kc = t->kc;
    /* the C rows (or partial sums) are needed at the end: start fetching them now */
    for (int r = 0; r < MRC; r++) {
        _mm_prefetch((const char *)(t->p + r * t->ldp), _MM_HINT_T0);
        _mm_prefetch((const char *)(t->p + r * t->ldp + t->nr - 1), _MM_HINT_T0);
    }
    /* A read in place by columns (TN: rows adjacent, k a long stride apart): every k step is on a
     * new line, too far apart for the hardware's stride prefetcher on Intel cores; the next row
     * panel's lines at the same k are fetched while this panel's tiles compute (NOTES.md, 21) */
    const int next_a = rs == 1 && cs >= 64;
#pragma GCC unroll 4
    for (long k = 0; k < kc; k++) {
        __m512 b0, b1;
        if (next_a) {
            _mm_prefetch((const char *)(a0 + MRC), _MM_HINT_T0);
            _mm_prefetch((const char *)(a0 + 2 * MRC - 1), _MM_HINT_T0);
        }
        if (NV == 2) {
            b0 = _mm512_loadu_ps(b);
            b1 = EDGE ? _mm512_maskz_loadu_ps(tail, b + VL) : _mm512_loadu_ps(b + VL);
        } else {
            b0 = b1 = EDGE ? _mm512_maskz_loadu_ps(tail, b) : _mm512_loadu_ps(b);
        }
#pragma GCC unroll 12
        for (int r = 0; r < MRC; r++) {
            const float *base = r < 3 ? a0 : r < 6 ? a3 : r < 9 ? a6 : a9;
            __m512 ar = _mm512_set1_ps(base[(r % 3) * rs]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            if (NV == 2)
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
        }
        a0 += cs;
        a3 += cs;
        a6 += cs;
        a9 += cs;
        b += brs;
    }

    const int rows = t->mr; /* packed A: rows past mr were zeros, computed but not stored */
#pragma GCC unroll 12
    for (int r = 0; r < MRC; r++) {
        if (r >= rows)
            break;
        if (NV == 2) {
            put(t, acc[r][0], r, 0, 0xFFFF);
            put(t, acc[r][1], r, VL, tail);
        } else {
            put(t, acc[r][0], r, 0, tail);
        }
    }
}

#define ROWS(m)                                                                                    \
    case m:                                                                                        \
        FX_CPU_TILE_VARIANTS(tile, t, m, nv, edge, t->a_rs, t->a_cs);                              \
        return;

void fx_cpu_tile_avx512(const fx_cpu_tile *t)
{
    int nv = t->nr > VL ? 2 : 1;
    int edge = !t->b_padded && t->nr != nv * VL;
    /* packed A in whole panels: the MR-row instance with constant strides; a thin last panel
     * (50 rows: 4 × 12 + 2) takes the instance for its row count instead of computing the
     * panel's zero rows (NOTES.md, 20) */
    if (t->a_packed && t->mr == MR) {
        FX_CPU_TILE_VARIANTS(tile, t, MR, nv, edge, 1, MR);
        return;
    }
    switch (t->mr) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12)
    }
}

double fx_cpu_loss_grad_avx512(long n, const float *yp, const float *y, float *g)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (long i = 0; i < n; i += VL) {
        __mmask16 lm = n - i >= VL ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(lm, yp + i), _mm512_maskz_loadu_ps(lm, y + i));
        _mm512_mask_storeu_ps(g + i, lm, _mm512_add_ps(d, d));
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
        __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

void fx_cpu_sgd_avx512(long n, float *w, const float *g, float lr)
{
    const __m512 l = _mm512_set1_ps(lr);
    for (long i = 0; i < n; i += VL) {
        __mmask16 lm = n - i >= VL ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 x = _mm512_fnmadd_ps(l, _mm512_maskz_loadu_ps(lm, g + i), _mm512_maskz_loadu_ps(lm, w + i));
        _mm512_mask_storeu_ps(w + i, lm, x);
    }
}
