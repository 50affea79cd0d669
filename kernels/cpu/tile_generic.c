/* tile_generic.c — the portable micro-kernel (4×8) and element-wise kernels in plain C.
 * For a CPU without AVX2: the compiler vectorises the full tile for whatever the baseline ISA
 * has (SSE2 on x86-64: 8 accumulator registers of 4 floats); edges take bounded loops. */
#include "cpu.h"

#define MR 4
#define NR 8

void fx_cpu_tile_generic(const fx_cpu_tile *t)
{
    float acc[MR][NR] = {{0}};
    const float *a = t->a, *b = t->b;
    const long rs = t->a_rs, cs = t->a_cs, brs = t->b_rs;
    if ((t->a_packed || t->mr == MR) && t->nr == NR) {
        for (long k = 0; k < t->kc; k++, a += cs, b += brs)
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < NR; j++)
                    acc[r][j] += a[r * rs] * b[j];
    } else {
        for (long k = 0; k < t->kc; k++, a += cs, b += brs)
            for (int r = 0; r < t->mr; r++)
                for (int j = 0; j < t->nr; j++)
                    acc[r][j] += a[r * rs] * b[j];
    }
    for (int r = 0; r < t->mr; r++)
        for (int j = 0; j < t->nr; j++)
            fx_cpu_epilogue1(t, r * t->ldc + j, r * t->ldp + j, acc[r][j]);
}

double fx_cpu_loss_grad_generic(long n, const float *yp, const float *y, float *g)
{
    double sum = 0.0;
    for (long i = 0; i < n; i++) {
        float d = yp[i] - y[i];
        g[i] = 2.0f * d;
        sum += (double)d * d;
    }
    return sum;
}

void fx_cpu_sgd_generic(long n, float *w, const float *g, float lr)
{
    for (long i = 0; i < n; i++)
        w[i] -= lr * g[i];
}
