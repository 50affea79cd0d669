/* common.c — small pieces of the interface shared by every backend. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fiftyx.h"

int fx_fail(fx_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

double fx_step_flops(fx_size s)
{
    double n = (double)s.n, din = (double)s.d_in, h = (double)s.h, dout = (double)s.d_out;
    /* forward x·w1, h·w2; backward hᵀ·g, g·w2ᵀ, xᵀ·gh: 2 FLOPs per multiply-add */
    return 2.0 * (2.0 * n * din * h + 3.0 * n * h * dout);
}

static int g_threads;
void fx_set_threads(int threads) { g_threads = threads; }
int fx_threads(void) { return g_threads; }

#include <time.h>
double fx_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fx_host_gemm_destroy(void *handle)
{
    fx_host_gemm *g = handle;
    if (!g)
        return;
    if (g->c)
        for (int s = 0; s < g->nsets; s++)
            free(g->c[s]);
    free(g->c);
    free(g);
}

int fx_host_gemm_create(const void *ctx, fx_op op, long m, long n, long k, int nsets, const float *const *a,
                        const float *const *b, void **handle, fx_err *e)
{
    fx_host_gemm *g = calloc(1, sizeof *g);
    if (!g)
        return fx_fail(e, "out of memory");
    *g = (fx_host_gemm){op, m, n, k, nsets, a, b, calloc((size_t)nsets, sizeof(float *)), ctx};
    size_t bytes = ((size_t)m * (size_t)n * sizeof(float) + 63) / 64 * 64;
    for (int s = 0; g->c && s < nsets; s++)
        if (!(g->c[s] = aligned_alloc(64, bytes)))
            break;
    if (!g->c || !g->c[nsets - 1]) {
        fx_host_gemm_destroy(g);
        return fx_fail(e, "out of memory for %d GEMM outputs of %ldx%ld", nsets, m, n);
    }
    *handle = g;
    return 0;
}

int fx_host_gemm_result(void *handle, int set, float *c, fx_err *e)
{
    const fx_host_gemm *g = handle;
    if (set < 0 || set >= g->nsets)
        return fx_fail(e, "no operand set %d", set);
    memcpy(c, g->c[set], (size_t)g->m * (size_t)g->n * sizeof(float));
    return 0;
}
