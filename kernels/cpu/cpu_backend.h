/* cpu_backend.h — the training loop of step.c, as the backend tables of backend.c call it. */
#ifndef FIFTYX_CPU_BACKEND_H
#define FIFTYX_CPU_BACKEND_H
#include "cpu.h"

typedef struct fx_cpu_state fx_cpu_state;

int fx_cpu_create(const fx_cpu_isa *isa, const fx_problem *p, const fx_tensors *init, void **state,
                  fx_err *e);
int fx_cpu_run(void *state, int steps, double *losses, double *seconds, fx_err *e);
int fx_cpu_read_weights(void *state, float *w1, float *w2, fx_err *e);
void fx_cpu_destroy(void *state);
#endif
