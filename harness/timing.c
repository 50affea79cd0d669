/* timing.c — see timing.h. */
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include "timing.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double fx_sorted_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fx_time_case(fx_timed_fn fn, void *ctx, const fx_timing_policy *p, fx_timing *out, fx_err *e)
{
    double start = fx_wall_seconds(), t;
    *out = (fx_timing){0};
    if (fn(ctx, 1, &t, e))
        return -1;
    out->first = t;
    long iters = t > 0 ? (long)ceil(p->rep_time / t) : p->max_iters;
    iters = iters < 1 ? 1 : iters > p->max_iters ? p->max_iters : iters;
    out->iters_per_rep = iters;
    if (iters > 1 && fn(ctx, iters, &t, e)) /* a GPU graph for this count is built here */
        return -1;
    double *samples = malloc((size_t)p->max_reps * sizeof *samples);
    double *cpu = malloc((size_t)p->max_reps * sizeof *cpu);
    if (!samples || !cpu) {
        free(samples);
        free(cpu);
        return fx_fail(e, "out of memory");
    }
    double spent = 0;
    int n = 0, min_reps = out->first > FX_LONG_ITERATION && p->min_reps > FX_MIN_REPS_LONG ? FX_MIN_REPS_LONG : p->min_reps;
    while (n < p->max_reps && (n < min_reps || spent < p->min_time)) {
        if (n > 0 && fx_wall_seconds() - start > p->budget)
            break;
        double c0 = process_cpu_seconds();
        if (fn(ctx, iters, &t, e)) {
            free(samples);
            free(cpu);
            return -1;
        }
        cpu[n] = (process_cpu_seconds() - c0) / (double)iters;
        samples[n++] = t / (double)iters;
        spent += t;
    }
    out->reps = n;
    out->median = fx_sorted_median(samples, n);
    out->min = samples[0];
    out->max = samples[n - 1];
    out->cpu_median = fx_sorted_median(cpu, n);
    out->wall = fx_wall_seconds() - start;
    free(samples);
    free(cpu);
    return 0;
}
