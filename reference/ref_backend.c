/* ref_backend.c — the reference loop as a backend, so that `train` and the benchmarks can run it. */
#include <stdlib.h>
#include "reference.h"

static int ref_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    fx_ref *r;
    if (fx_ref_create(&r, p->size, p->lr, init, e))
        return -1;
    *state = r;
    return 0;
}

static int ref_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    (void)e;
    double t0 = fx_wall_seconds();
    for (int t = 0; t < steps; t++)
        losses[t] = fx_ref_step(state);
    if (seconds)
        *seconds = fx_wall_seconds() - t0;
    return 0;
}

static int ref_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    (void)e;
    const fx_ref *r = state;
    fx_size s = fx_ref_size(r);
    const double *d1 = fx_ref_w1(r), *d2 = fx_ref_w2(r);
    for (long i = 0; i < s.d_in * s.h; i++)
        w1[i] = (float)d1[i];
    for (long i = 0; i < s.h * s.d_out; i++)
        w2[i] = (float)d2[i];
    return 0;
}

static void ref_destroy(void *state) { fx_ref_destroy(state); }

const fx_backend fx_backend_reference = {
    .name = "reference",
    .device = FX_CPU,
    .summary = "the oracle: double precision, naive loops, one thread",
    .create = ref_create,
    .run = ref_run,
    .read_weights = ref_read_weights,
    .destroy = ref_destroy,
};
