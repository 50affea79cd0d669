/* common.c — small pieces of the interface shared by every backend. */
#include <stdarg.h>
#include <stdio.h>
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
