/* sparse_avx512.c — the weight update with A's zeros skipped (fx_cpu_sparse, cpu.h), AVX-512.
 * Compiled with -mavx512f/vl/bw/dq -mfma (the file name says so); called only after CPUID.
 *
 * The step's w1ᵀ update, w1ᵀ[j] −= lr · Σ_n ghᵀ[j][n] · x[n], has ghᵀ = 0 wherever h < 0: about
 * half of its terms are zero, and a dense GEMM computes them all. Here each row j of A keeps the
 * list of its non-zeros (n, value), and row j of C is the sum of a row of B per entry, scaled by
 * its value: the FLOPs the mask leaves, and no branch per element.
 *
 * Per list entry the kernel broadcasts the value and streams NV ≤ 8 vectors of the B row into NV
 * accumulators. Two rows of C go together, each with its own accumulators (16 independent FMA
 * chains cover the FMA latency, 4 cycles, at two FMAs a cycle). Where both rows have an entry
 * for the same row of B (at the tutorial's density, about a fifth of the pair's columns: half of
 * its FMAs), each vector of that row is loaded once for both FMAs; elsewhere each FMA loads its
 * own vector, as its memory operand. On the Xeon core of the dev box a vector load costs FMA
 * throughput even when nothing waits for it (`make load-cost`: one load per FMA 63–67% of the
 * FMA peak, one per two FMAs 78–82%), so the shared entries are the cheap ones (NOTES.md,
 * entry 32). B is read in blocks of FX_SPARSE_KB rows × FX_SPARSE_NB columns (64 × 128 floats =
 * 32 KiB) that stay in L1 while every row of C passes. */
#include <immintrin.h>
#include "cpu.h"

#define VL 16
#define NVMAX (FX_SPARSE_NB / VL)
_Static_assert(FX_SPARSE_NB % VL == 0 && NVMAX >= 1 && NVMAX <= 8, "FX_SPARSE_NB: 1 to 8 whole vectors");
_Static_assert(FX_SPARSE_KB % VL == 0, "FX_SPARSE_KB: whole vectors (the compaction marks block starts per vector)");
#define INLINE static inline __attribute__((always_inline))

/* The lanes of vector kk of a row of A that are non-zero (the vector itself in *v): unordered,
 * so a NaN is a non-zero and reaches C as the dense product would take it. */
INLINE __mmask16 nonzero(const float *row, long kk, long k, __m512 *v)
{
    __mmask16 lm = k - kk >= VL ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - kk)) - 1);
    *v = _mm512_maskz_loadu_ps(lm, row + kk);
    return _mm512_mask_cmp_ps_mask(lm, *v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
}

/* Append the lanes `keep` of v and their column numbers to a list at *c (whole vectors stored:
 * *c ≤ k, within the row's ld = k rounded up plus one vector). */
INLINE void append(float *vl, int32_t *ix, long *c, __mmask16 keep, __m512 v, long kk)
{
    const __m512i col = _mm512_add_epi32(_mm512_set1_epi32((int)kk),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    _mm512_storeu_ps(vl + *c, _mm512_maskz_compress_ps(keep, v));
    if (ix)
        _mm512_storeu_si512(ix + *c, _mm512_maskz_compress_epi32(keep, col));
    *c += __builtin_popcount(keep);
}

/* Rows j and j + 1 (TWO = 0: row j alone), block by block of k: first the columns where both are
 * non-zero (idx kept in row j's list only: row j + 1 reads them there), then each row's own. */
INLINE long compact_rows(const fx_cpu_sparse *s, long j, const int TWO, long kb, long sld)
{
    const float *r0 = s->a + j * s->lda, *r1 = TWO ? r0 + s->lda : r0;
    int32_t *ix0 = s->idx + j * s->ld, *ix1 = ix0 + s->ld;
    float *vl0 = s->val + j * s->ld, *vl1 = vl0 + s->ld;
    int32_t *st0 = s->starts + j * sld, *st1 = st0 + sld, *shared = st0 + kb + 1;
    long c0 = 0, c1 = 0;
    for (long kc = 0; kc < kb; kc++) {
        const long k0 = kc * FX_SPARSE_KB, k1 = k0 + FX_SPARSE_KB < s->k ? k0 + FX_SPARSE_KB : s->k;
        st0[kc] = (int32_t)c0;
        if (TWO) {
            st1[kc] = (int32_t)c1;
            long b0 = c0, b1 = c1;
            for (long kk = k0; kk < k1; kk += VL) {
                __m512 v0, v1;
                __mmask16 both = nonzero(r0, kk, s->k, &v0) & nonzero(r1, kk, s->k, &v1);
                append(vl0, ix0, &b0, both, v0, kk);
                append(vl1, NULL, &b1, both, v1, kk);
            }
            shared[kc] = (int32_t)(b0 - c0);
            c0 = b0;
            c1 = b1;
        }
        for (long kk = k0; kk < k1; kk += VL) {
            __m512 v0, v1;
            __mmask16 n0 = nonzero(r0, kk, s->k, &v0);
            if (!TWO) {
                append(vl0, ix0, &c0, n0, v0, kk);
                continue;
            }
            __mmask16 n1 = nonzero(r1, kk, s->k, &v1);
            append(vl0, ix0, &c0, n0 & ~n1, v0, kk);
            append(vl1, ix1, &c1, n1 & ~n0, v1, kk);
        }
    }
    st0[kb] = (int32_t)c0;
    if (TWO)
        st1[kb] = (int32_t)c1;
    return c0 + c1;
}

long fx_cpu_sparse_compact_avx512(const fx_cpu_sparse *s)
{
    const long kb = fx_cpu_sparse_kblocks(s->k), sld = fx_cpu_sparse_sld(s->k);
    long nnz = 0, j = 0;
    for (; j + 1 < s->m; j += 2)
        nnz += compact_rows(s, j, 1, kb, sld);
    if (j < s->m)
        nnz += compact_rows(s, j, 0, kb, sld);
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
    /* row j's entries of k block kc, and row j + 1's: the first `sh` of each shared */
    const long sld = fx_cpu_sparse_sld(s->k);
    const int32_t *s0 = s->starts + j * sld + kc, *s1 = TWO ? s0 + sld : s0;
    const long sh = TWO ? s->starts[j * sld + kb + 1 + kc] : 0;
    const int32_t *x0 = s->idx + j * s->ld + s0[0], *x1 = s->idx + (j + TWO) * s->ld + s1[0];
    const float *v0 = s->val + j * s->ld + s0[0], *v1 = s->val + (j + TWO) * s->ld + s1[0];
    const long c0 = s0[1] - s0[0], c1 = TWO ? s1[1] - s1[0] : 0;
    const float *b = s->b + i0;
    const long ldb = s->ldb;
#define LOADB(r, v) (EDGE && (v) == NV - 1 ? _mm512_maskz_loadu_ps(tail, (r) + (v) * VL) : _mm512_loadu_ps((r) + (v) * VL))
    /* shared entries: each vector of B's row loaded once for the two rows' FMAs (the empty asm
     * keeps it in a register: GCC would otherwise fold the load into both FMAs, two loads) */
    for (long t = 0; t < sh; t++) {
        const float *r = b + x0[t] * ldb;
        __m512 g0 = _mm512_set1_ps(v0[t]), g1 = _mm512_set1_ps(v1[t]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            __m512 x = LOADB(r, v);
            __asm__("" : "+v"(x));
            a0[v] = _mm512_fmadd_ps(g0, x, a0[v]);
            a1[v] = _mm512_fmadd_ps(g1, x, a1[v]);
        }
    }
    /* each row's own entries (after the shared ones in both lists), the two interleaved while
     * both last */
    const int32_t *o0 = x0 + sh, *o1 = x1 + sh;
    const float *w0 = v0 + sh, *w1 = v1 + sh;
    const long n0 = c0 - sh, n1 = c1 - sh, cm = n0 < n1 ? n0 : n1;
    long t = 0;
    for (; t < cm; t++) {
        const float *r0 = b + o0[t] * ldb, *r1 = b + o1[t] * ldb;
        __m512 g0 = _mm512_set1_ps(w0[t]), g1 = _mm512_set1_ps(w1[t]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            a0[v] = _mm512_fmadd_ps(g0, LOADB(r0, v), a0[v]);
            a1[v] = _mm512_fmadd_ps(g1, LOADB(r1, v), a1[v]);
        }
    }
#undef LOADB
    /* the longer list's rest: one row, 8 chains */
    rest(a0, b, ldb, o0, w0, t, n0, NV, EDGE, tail);
    if (TWO)
        rest(a1, b, ldb, o1, w1, t, n1, NV, EDGE, tail);
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
