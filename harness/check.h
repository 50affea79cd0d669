/* check.h — the test runner behind `fiftyx check` and `make check`. */
#ifndef FIFTYX_CHECK_H
#define FIFTYX_CHECK_H
#include "../kernels/fiftyx.h"
#include "../reference/reference.h"

typedef enum { FX_PASS, FX_FAIL, FX_SKIP } fx_outcome;

typedef struct {
    int passed, failed, skipped;
    int quick;
    const char *self; /* path of this executable, for the command-line tests */
} fx_check;

/* Records one result: prints "PASS  name", "FAIL  name: why" or "SKIP  name: why". */
void fx_report(fx_check *c, fx_outcome o, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The suites. Backend suites are called once per selected backend. */
void fx_check_npy(fx_check *c);
void fx_check_rng(fx_check *c);
void fx_check_cli(fx_check *c);
void fx_check_kernels(fx_check *c, const fx_backend *b);
void fx_check_hand_step(fx_check *c, const fx_backend *b);
void fx_check_loop(fx_check *c, const fx_backend *b);
void fx_check_after_timing(fx_check *c, const fx_backend *b);
void fx_check_after_timing_faults(fx_check *c);
void fx_check_sparse(fx_check *c); /* the cpu backend's sparse weight update, per ISA */

/* One output element c of a GEMM with epilogue epi against the exact product r (tolerance tol on
 * the product; c0 the initial C and lr for SGD; mask as written, mask_in as given to MASK; exact:
 * integer inputs, where h == 0 must give mask 1). 0 when right; else -1 with why filled.
 * *worst keeps the largest |error| / tolerance seen. Shared by check and bench. */
int fx_gemm_elem_check(fx_epilogue epi, double r, double tol, float c0, float lr, float c, int mask, int mask_in,
                       int exact, double *worst, char *why, size_t why_len, long i, long j);

/* loss_grad's g and loss for inputs yp, y (float_sum: the naive backend's float accumulator, with
 * float summation's bound), and sgd's w for w0, g, lr; 0 when right, else -1 with why filled. */
int fx_loss_grad_check(long n, const float *yp, const float *y, const float *g, double loss, int float_sum, char *why,
                       size_t why_len);
int fx_sgd_check(long n, const float *w0, const float *g, float lr, const float *w, char *why, size_t why_len);

/* A fresh temporary directory (removed by fx_rmtree). */
int fx_mkdtemp(char *buf, size_t len);
void fx_rmtree(const char *dir);
#endif
