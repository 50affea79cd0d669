/* cli.h — argument parsing shared by the subcommands. Every parse error is bad input:
 * one line on stderr ("fiftyx: ...") and exit status 2. */
#ifndef FIFTYX_CLI_H
#define FIFTYX_CLI_H
#include <stdint.h>
#include "../kernels/fiftyx.h"

#define FX_EXIT_BAD_INPUT 2
#define FX_MAX_DIM (1L << 24)        /* any one dimension */
#define FX_MAX_ELEMS (1L << 32)      /* any one tensor (16 GiB of float32) */

_Noreturn void fx_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define fx_bad_input(...) fx_die(FX_EXIT_BAD_INPUT, __VA_ARGS__)

/* "NxD_inxHxD_out", each in [1, FX_MAX_DIM], each tensor within FX_MAX_ELEMS. */
int fx_parse_size(const char *s, fx_size *out, fx_err *e);
/* The same limits for a size from anywhere (tensors read with --init). */
int fx_size_check(fx_size z, fx_err *e);
/* The most memory this process may use, in bytes: physical memory, or a smaller RLIMIT_AS or
 * RLIMIT_DATA (0 if none is known); *what names which. */
double fx_memory_limit(const char **what);
/* 0 if `need` bytes fit fx_memory_limit, else -1 and "its <of> alone need X GiB; <limit> is Y GiB". */
int fx_memory_check(double need, const char *of, fx_err *e);
/* A comma-separated list of sizes (step) or GEMM shapes MxNxK / a single edge "2048". */
int fx_parse_long(const char *s, long lo, long hi, long *out);
int fx_parse_u64(const char *s, uint64_t *out);
int fx_parse_double(const char *s, double *out); /* finite, plain decimal (no space, no hex) */

/* Option scanning: `--name value` or `--name=value`. Returns the value or NULL when argv[*i]
 * is not this option; moves *i past what it consumed; a missing value, or the option given a
 * second time in the same argv, is bad input. */
const char *fx_opt(int argc, char **argv, int *i, const char *name);
int fx_flag(char **argv, int i, const char *name);

/* Splits a comma-separated list in place; returns the count, or -1 when the list is empty, has
 * an empty item or more than max items. */
int fx_split_list(char *s, char **items, int max);
/* Backend names, comma-separated: all must be known (else bad input naming option opt). */
int fx_parse_backend_list(const char *opt, const char *list, const fx_backend **out, int max);

/* Resolves a backend name that must be usable here (else bad input with the reason). */
const fx_backend *fx_backend_usable(const char *name);
#endif
