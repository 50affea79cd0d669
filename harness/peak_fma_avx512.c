/* peak_fma_avx512.c — 12 independent chains of 512-bit FMAs. Zen 5 and Xeon have two FMA pipes
 * of latency 4: 8 chains saturate them, 12 leave slack. Distinct starting values keep the
 * compiler from merging chains. */
#include <immintrin.h>
#include "peaks.h"

float fx_fma_loop_avx512(long iters, float mul, float add)
{
    __m512 a[12];
    for (int k = 0; k < 12; k++)
        a[k] = _mm512_set1_ps(1.0f + 0.01f * (float)k);
    const __m512 m = _mm512_set1_ps(mul), c = _mm512_set1_ps(add);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            a[k] = _mm512_fmadd_ps(a[k], m, c);
    }
    __m512 s = a[0];
    for (int k = 1; k < 12; k++)
        s = _mm512_add_ps(s, a[k]);
    return _mm512_reduce_add_ps(s);
}
