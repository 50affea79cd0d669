/* reference.h — the oracle: naive loops in double, the shared RNG, .npy I/O.
 * Everything a backend is compared with comes from here. */
#ifndef FIFTYX_REFERENCE_H
#define FIFTYX_REFERENCE_H

#include <stdint.h>
#include "../kernels/fiftyx.h"

/* ---- RNG ----------------------------------------------------------------------------
 * xoshiro256** (Blackman & Vigna) seeded through splitmix64 from a 64-bit seed.
 * fx_rng_uniform: 53 random bits → a double in [0, 1).
 * fx_rng_normal:  Box–Muller on two uniforms, u1 in (0, 1]; returns r·cos(2π·u2) and
 *                 discards the sine, so every normal costs exactly two draws.
 * The same seed gives the same stream on every machine: all backends start identical. */
typedef struct {
    uint64_t s[4];
} fx_rng;

void fx_rng_seed(fx_rng *r, uint64_t seed);
uint64_t fx_rng_next(fx_rng *r);
double fx_rng_uniform(fx_rng *r);
double fx_rng_normal(fx_rng *r);
void fx_rng_fill_normal(fx_rng *r, float *dst, size_t n);

/* Owned initial tensors (x, y, w1, w2) of a problem. */
typedef struct {
    fx_size size;
    float *x, *y, *w1, *w2;
} fx_init;

/* Standard normal x, y, w1, w2 — drawn in that order, like the tutorial's torch.randn calls. */
int fx_init_random(fx_init *t, fx_size s, uint64_t seed, fx_err *e);
/* Reads DIR/{x,y,w1,w2}.npy; their shapes define the size (they must agree). */
int fx_init_load(fx_init *t, const char *dir, fx_err *e);
void fx_init_free(fx_init *t);
fx_tensors fx_init_view(const fx_init *t);

/* ---- .npy ---------------------------------------------------------------------------
 * Versions 1.0, 2.0 and 3.0 headers; dtype '<f4' or '<f8'; C order only. Anything else is an
 * error with a reason. Loaded data is always returned as float32 (f8 is rounded). */
typedef struct {
    int ndim;
    long shape[8];
    float *data; /* malloc'd */
} fx_npy;

int fx_npy_load(const char *path, fx_npy *out, fx_err *e);
/* Writes float32 data ('<f4', version 1.0) atomically: a temporary file, then rename. */
int fx_npy_save(const char *path, const float *data, int ndim, const long *shape, fx_err *e);
/* n float32 arrays into n files, all written or (short of a failed rename) none. */
int fx_npy_save_set(int n, const char *const *paths, const float *const *data, const int *ndim,
                    const long *const *shape, fx_err *e);
/* Writes float64 data ('<f8', version 1.0), for tests and for saving the reference. */
int fx_npy_save_f64(const char *path, const double *data, int ndim, const long *shape, fx_err *e);
void fx_npy_free(fx_npy *a);

/* ---- the reference loop -------------------------------------------------------------
 * Double precision, naive loops, line by line the tutorial. */
typedef struct fx_ref fx_ref;

int fx_ref_create(fx_ref **r, fx_size s, double lr, const fx_tensors *init, fx_err *e);
double fx_ref_step(fx_ref *r); /* returns the loss computed before the update */
/* How far a correct float32 step from the same weights may land from the reference's by
 * rounding alone, as spreads (λ standard deviations of a probabilistic model, see ref_loop.c):
 * the loss (absolute), and w1's and w2's updates (Frobenius norm of the difference). */
typedef struct {
    double loss, w1, w2;
} fx_ref_spread;
/* The same step, also giving those spreads at the step's starting weights (all -1 when out of
 * memory). Costs a step and a half more than a step. */
double fx_ref_step_spread(fx_ref *r, double lambda, fx_ref_spread *spread);
fx_size fx_ref_size(const fx_ref *r);
const double *fx_ref_w1(const fx_ref *r);
const double *fx_ref_w2(const fx_ref *r);
void fx_ref_destroy(fx_ref *r);

/* ---- the reference GEMM (the kernel oracle) -----------------------------------------
 * acc = op(A)·op(B) in double; absacc = op(|A|)·op(|B|), the scale that bounds float error. */
void fx_ref_gemm(fx_op op, long m, long n, long k, const float *a, const float *b, double *acc,
                 double *absacc);
/* One element (i, j) of the same, for sampling large products. */
void fx_ref_gemm_at(fx_op op, long m, long n, long k, const float *a, const float *b, long i, long j,
                    double *acc, double *absacc);

#endif
