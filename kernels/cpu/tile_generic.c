/* tile_generic.c — the portable micro-kernel (4×8) and element-wise kernels in plain C.
 * For a CPU without AVX2: the full tile in GNU C vectors of 4 floats, which the compiler maps to
 * the baseline ISA (SSE2 on x86-64: 8 accumulator registers); edges take bounded loops. */
#include "cpu.h"

#define MR 4
#define NR 8

/* GNU C vectors of 4 floats (SSE2 on x86-64, the baseline ISA): left to itself, GCC 12
 * vectorised this loop nest along k, with strided loads of A and B, at 14% of the baseline
 * ISA's FMA rate. */
typedef float v4 __attribute__((vector_size(16)));

static inline v4 load4(const float *p)
{
    v4 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

void fx_cpu_tile_generic(const fx_cpu_tile *t)
{
    float acc[MR][NR] = {{0}};
    const float *a = t->a, *b = t->b;
    const long rs = t->a_rs, cs = t->a_cs, brs = t->b_rs;
    if ((t->a_packed || t->mr == MR) && t->nr == NR) {
        v4 c[MR][2] = {{{0}}};
        for (long k = 0; k < t->kc; k++, a += cs, b += brs) {
            v4 b0 = load4(b), b1 = load4(b + 4);
            for (int r = 0; r < MR; r++) {
                float ar = a[r * rs];
                c[r][0] += ar * b0;
                c[r][1] += ar * b1;
            }
        }
        for (int r = 0; r < MR; r++) {
            __builtin_memcpy(acc[r], &c[r][0], sizeof c[r][0]);
            __builtin_memcpy(acc[r] + 4, &c[r][1], sizeof c[r][1]);
        }
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
