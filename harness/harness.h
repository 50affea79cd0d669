/* harness.h — the subcommands, and what they share. */
#ifndef FIFTYX_HARNESS_H
#define FIFTYX_HARNESS_H
#include "../kernels/fiftyx.h"
#include "../reference/reference.h"

#define FX_TUTORIAL_SIZE ((fx_size){64, 1000, 100, 10})
#define FX_TUTORIAL_LR 1e-6
#define FX_TUTORIAL_STEPS 500

int fx_cmd_train(int argc, char **argv);
int fx_cmd_check(int argc, char **argv);
int fx_cmd_info(int argc, char **argv);
int fx_cmd_bench(int argc, char **argv);

/* Sets the thread count for CPU backends (OpenMP, and the registry's fx_threads) and pins
 * one thread per core; writes a description of the binding. threads <= 0: all cores. */
int fx_setup_threads(int threads, char *binding, size_t binding_len);

/* Where the source tree is (tutorial tensors, tools/): FIFTYX_SOURCE_DIR, else the tree the binary
 * sits in, else the build-time directory (main.c). */
const char *fx_source_dir(void);
int fx_source_dir_ok(void); /* whether it holds the tutorial tensors (reference/data/tutorial) */
#endif
