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

/* A fresh temporary directory (removed by fx_rmtree). */
int fx_mkdtemp(char *buf, size_t len);
void fx_rmtree(const char *dir);
#endif
