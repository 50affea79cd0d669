/* sparse_avx512.c — the weight update with A's zeros skipped (fx_cpu_sparse, cpu.h), AVX-512.
 * Compiled with -mavx512f/vl/bw/dq -mfma (the file name says so); called only after CPUID.
 *
 * The step's w1ᵀ update, w1ᵀ[j] −= lr · Σ_n ghᵀ[j][n] · x[n], has ghᵀ = 0 wherever h < 0: about
 * half of its terms are zero, and a dense GEMM computes them all. Here each row j of A keeps the
 * list of its non-zeros (n, value), and row j of C is the sum of a row of B per entry, scaled by
 * its value: the FLOPs the mask leaves, and no branch per element.
 *
 * Per list entry the kernel broadcasts the value and streams NV ≤ 8 vectors of the B row into NV
 * accumulators: one load per FMA (the B row differs from entry to entry), folded into the FMA
 * as its memory operand. Two rows of C are interleaved, each with its own list, so that 16
 * independent FMA chains cover the FMA latency (4 cycles) at two FMAs a cycle; a load port
 * feeds each FMA, and the broadcasts take the rest. B is read in blocks of FX_SPARSE_KB rows ×
 * FX_SPARSE_NB columns (64 × 128 floats = 32 KiB) that stay in L1 while every row of C passes. */
#include <immintrin.h>
#include "cpu.h"

#define VL 16
#define NVMAX (FX_SPARSE_NB / VL)
_Static_assert(FX_SPARSE_NB % VL == 0 && NVMAX >= 1 && NVMAX <= 8, "FX_SPARSE_NB: 1 to 8 whole vectors");
_Static_assert(FX_SPARSE_KB % VL == 0, "FX_SPARSE_KB: whole vectors (the compaction marks block starts per vector)");
#define INLINE static inline __attribute__((always_inline))

long fx_cpu_sparse_compact_avx512(const fx_cpu_sparse *s)
{
    const long kb = fx_cpu_sparse_kblocks(s->k);
    long nnz = 0;
    for (long j = 0; j < s->m; j++) {
        const float *row = s->a + j * s->lda;
        int32_t *ix = s->idx + j * s->ld, *st = s->starts + j * (kb + 1);
        float *vl = s->val + j * s->ld;
        __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        long c = 0;
        for (long kk = 0; kk < s->k; kk += VL) {
            if (kk % FX_SPARSE_KB == 0)
                st[kk / FX_SPARSE_KB] = (int32_t)c;
            __mmask16 lm = s->k - kk >= VL ? (__mmask16)0xFFFF : (__mmask16)((1u << (s->k - kk)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(lm, row + kk);
            /* unordered: a NaN is a non-zero, and reaches C as the dense product would take it */
            __mmask16 nz = _mm512_mask_cmp_ps_mask(lm, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            /* whole vectors stored at c ≤ kk: within the row's ld = k rounded up to 16 */
            _mm512_storeu_ps(vl + c, _mm512_maskz_compress_ps(nz, v));
            _mm512_storeu_si512(ix + c, _mm512_maskz_compress_epi32(nz, iota));
            c += __builtin_popcount(nz);
            iota = _mm512_add_epi32(iota, _mm512_set1_epi32(VL));
        }
        st[kb] = (int32_t)c;
        nnz += c;
    }
    return nnz;
}

/* Entries u0..u1 of one row's list into its accumulators a. */
INLINE void rest(__m512 *a, const float *b, long ldb, const int32_t *x, const float *val, long u0, long u1,
                 const int NV, const int EDGE, __mmask16 tail)
{
    for (long u = u0; u < u1; u++) {
        const float *r = b + x[u] * ldb;
        __m512 g = _mm512_set1_ps(val[u]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            a[v] = _mm512_fmadd_ps(g, EDGE && v == NV - 1 ? _mm512_maskz_loadu_ps(tail, r + v * VL)
                                                         : _mm512_loadu_ps(r + v * VL), a[v]);
    }
}

/* Rows j and j + 1 of C (TWO = 0: row j alone) over k block kc, on NV vectors of columns from
 * i0; the last of them under the lane mask `tail`. */
INLINE void rows(const fx_cpu_sparse *s, long j, const int TWO, long i0, long kc, long kb, int first,
                 int last, const int NV, const int EDGE, __mmask16 tail)
{
    __m512 a0[NVMAX], a1[NVMAX];
    /* the partial sums' rows: part is NULL when k is one block (first and last every time) */
    float *p0 = first && last ? NULL : s->part + j * FX_SPARSE_NB, *p1 = p0 ? p0 + FX_SPARSE_NB : NULL;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
        a0[v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(p0 + v * VL);
        if (TWO)
            a1[v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(p1 + v * VL);
    }
    /* row j's entries of k block kc, and row j + 1's */
    const int32_t *s0 = s->starts + j * (kb + 1) + kc, *s1 = TWO ? s0 + (kb + 1) : s0;
    const int32_t *x0 = s->idx + j * s->ld + s0[0], *x1 = s->idx + (j + TWO) * s->ld + s1[0];
    const float *v0 = s->val + j * s->ld + s0[0], *v1 = s->val + (j + TWO) * s->ld + s1[0];
    const long c0 = s0[1] - s0[0], c1 = TWO ? s1[1] - s1[0] : 0, cm = c0 < c1 ? c0 : c1;
    const float *b = s->b + i0;
    const long ldb = s->ldb;
#define LOADB(r, v) (EDGE && (v) == NV - 1 ? _mm512_maskz_loadu_ps(tail, (r) + (v) * VL) : _mm512_loadu_ps((r) + (v) * VL))
    long t = 0;
    for (; t < cm; t++) {
        const float *r0 = b + x0[t] * ldb, *r1 = b + x1[t] * ldb;
        __m512 g0 = _mm512_set1_ps(v0[t]), g1 = _mm512_set1_ps(v1[t]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            a0[v] = _mm512_fmadd_ps(g0, LOADB(r0, v), a0[v]);
            a1[v] = _mm512_fmadd_ps(g1, LOADB(r1, v), a1[v]);
        }
    }
#undef LOADB
    /* the longer list's rest: one row, 8 chains */
    rest(a0, b, ldb, x0, v0, t, c0, NV, EDGE, tail);
    rest(a1, b, ldb, x1, v1, t, c1, NV, EDGE, tail);
    if (!last) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            _mm512_storeu_ps(p0 + v * VL, a0[v]);
            if (TWO)
                _mm512_storeu_ps(p1 + v * VL, a1[v]);
        }
        return;
    }
    const __m512 lr = _mm512_set1_ps(s->lr);
    float *c = s->c + j * s->ldc + i0;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) { /* w − lr·acc in one rounding, as the GEMM's SGD epilogue */
        __mmask16 lm = v == NV - 1 ? tail : (__mmask16)0xFFFF;
        float *cv = c + v * VL;
        _mm512_mask_storeu_ps(cv, lm, _mm512_fnmadd_ps(lr, a0[v], _mm512_maskz_loadu_ps(lm, cv)));
        if (TWO)
            _mm512_mask_storeu_ps(cv + s->ldc, lm,
                                  _mm512_fnmadd_ps(lr, a1[v], _mm512_maskz_loadu_ps(lm, cv + s->ldc)));
    }
}

INLINE void block(const fx_cpu_sparse *s, long i0, long kc, long kb, int first, int last, const int NV,
                  const int EDGE, __mmask16 tail)
{
    long j = 0;
    for (; j + 1 < s->m; j += 2)
        rows(s, j, 1, i0, kc, kb, first, last, NV, EDGE, tail);
    if (j < s->m)
        rows(s, j, 0, i0, kc, kb, first, last, NV, EDGE, tail);
}

/* every vector count, with and without a lane mask on the last: straight-line instances */
#define BLOCK(nvc)                                                                                 \
    case nvc:                                                                                      \
        if (edge)                                                                                  \
            block(s, i0, kc, kb, first, last, nvc, 1, tail);                                       \
        else                                                                                       \
            block(s, i0, kc, kb, first, last, nvc, 0, tail);                                       \
        break;

void fx_cpu_sparse_sgd_avx512(const fx_cpu_sparse *s)
{
    const long kb = fx_cpu_sparse_kblocks(s->k);
    for (long i0 = 0; i0 < s->n; i0 += FX_SPARSE_NB) {
        long w = s->n - i0 < FX_SPARSE_NB ? s->n - i0 : FX_SPARSE_NB;
        int nv = (int)((w + VL - 1) / VL), lanes = (int)(w - (nv - 1) * VL);
        int edge = lanes != VL;
        __mmask16 tail = edge ? (__mmask16)((1u << lanes) - 1) : (__mmask16)0xFFFF;
        for (long kc = 0; kc < kb; kc++) {
            int first = kc == 0, last = kc == kb - 1;
            switch (nv) {
                BLOCK(8) BLOCK(7) BLOCK(6) BLOCK(5) BLOCK(4) BLOCK(3) BLOCK(2) BLOCK(1)
            default:
                __builtin_trap(); /* nv is 1..NVMAX ≤ 8 (the static assertion above) */
            }
        }
    }
}
