/* timing.h — how every benchmark figure is taken.
 *
 * A case is a function that performs `iters` iterations and reports their elapsed seconds by
 * its backend's clock (CLOCK_MONOTONIC on a CPU, CUDA events on a GPU). The policy:
 *   1. warm-up: one iteration (first touch, JIT of graphs, clocks up), timed to size the reps;
 *   2. iters per repetition so that one repetition lasts about rep_time (capped at max_iters);
 *   3. one untimed repetition at that count, unless it is 1 (a GPU graph for it is built here);
 *   4. repetitions until min_time has been spent and min_reps done (at most max_reps), or
 *      until the case's budget runs out (then fewer, and the row says how many); where one
 *      iteration takes over FX_LONG_ITERATION seconds, FX_MIN_REPS_LONG repetitions suffice;
 *   5. median, min and max of the per-iteration time over the repetitions; beside them the
 *      median of the process's CPU time per iteration (CLOCK_PROCESS_CPUTIME_ID: all threads,
 *      as Google Benchmark's MeasureProcessCPUTime counts it; on a GPU, the host's waiting). */
#ifndef FIFTYX_TIMING_H
#define FIFTYX_TIMING_H
#include "../kernels/fiftyx.h"

#define FX_LONG_ITERATION 1.0
#define FX_MIN_REPS_LONG 3

typedef int (*fx_timed_fn)(void *ctx, long iters, double *seconds, fx_err *e);

typedef struct {
    double rep_time, min_time, budget;
    int min_reps, max_reps;
    long max_iters;
} fx_timing_policy;

typedef struct {
    long iters_per_rep;
    int reps;
    double median, min, max; /* seconds per iteration */
    double cpu_median;       /* process CPU seconds per iteration, median over the repetitions */
    double first;            /* the warm-up iteration's time */
    double wall;             /* wall time spent on the case */
} fx_timing;

int fx_time_case(fx_timed_fn fn, void *ctx, const fx_timing_policy *p, fx_timing *out, fx_err *e);
/* Sorts v[0..n) (n >= 1) and returns its median (the mean of the middle two when n is even). */
double fx_sorted_median(double *v, int n);
#endif
