/* peak_fma_avx2.c — 12 independent chains of 256-bit FMAs (see peak_fma_avx512.c). */
#include <immintrin.h>
#include "peaks.h"

float fx_fma_loop_avx2(long iters, float mul, float add)
{
    __m256 a[12];
    for (int k = 0; k < 12; k++)
        a[k] = _mm256_set1_ps(1.0f + 0.01f * (float)k);
    const __m256 m = _mm256_set1_ps(mul), c = _mm256_set1_ps(add);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            a[k] = _mm256_fmadd_ps(a[k], m, c);
    }
    __m256 s = a[0];
    for (int k = 1; k < 12; k++)
        s = _mm256_add_ps(s, a[k]);
    float out[8], sum = 0;
    _mm256_storeu_ps(out, s);
    for (int k = 0; k < 8; k++)
        sum += out[k];
    return sum;
}
