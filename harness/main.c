/* main.c — the fiftyx command line: one binary, a subcommand each. */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../kernels/baselines/openblas_kernel.h"
#include "cli.h"
#include "harness.h"
#include "topo.h"

#ifndef FX_SOURCE_DIR
#define FX_SOURCE_DIR "."
#endif

/* The source tree (tutorial tensors, tools/): FIFTYX_SOURCE_DIR if set; else the tree the running
 * binary sits in (build/fiftyx, build/san/fiftyx, build/gpu/fiftyx: up to three levels above it),
 * so that a build carried to another machine finds its data wherever the tree lands there; else
 * the directory it was built in. A candidate counts only if it holds the tutorial tensors. */
static int is_source_dir(const char *dir)
{
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/reference/data/tutorial/x.npy", dir);
    return access(probe, R_OK) == 0;
}

const char *fx_source_dir(void)
{
    static char dir[4096];
    if (dir[0])
        return dir;
    const char *env = getenv("FIFTYX_SOURCE_DIR");
    if (env && *env && strlen(env) < sizeof dir) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash || slash == exe)
                break;
            *slash = 0;
            if (is_source_dir(exe)) {
                snprintf(dir, sizeof dir, "%s", exe);
                return dir;
            }
        }
    }
    snprintf(dir, sizeof dir, "%s", FX_SOURCE_DIR);
    return dir;
}

int fx_setup_threads(int threads, char *binding, size_t binding_len)
{
    if (threads <= 0)
        threads = fx_core_count();
    omp_set_num_threads(threads);
    fx_set_threads(threads);
    return fx_pin_threads(threads, binding, binding_len);
}

static const char usage[] =
    "usage: fiftyx <command> [options]\n"
    "  train   run the tutorial's training loop on one backend, printing 't loss' per step\n"
    "  check   validate every kernel and backend against the double-precision reference\n"
    "  bench   time the backends across sizes and give the verdict on \"50x\"\n"
    "  info    the machine: hwloc topology, caches, ISA, GPU, backends\n"
    "Each command takes --help.\n";

/* OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when it loads, before main; the dev box
 * sets them to force an AVX2 kernel. A fair baseline lets OpenBLAS choose for itself, so fiftyx
 * restarts itself without them (FIFTYX_KEEP_OPENBLAS_ENV=1 keeps them, to study their effect).
 * The one OPENBLAS_CORETYPE kept is the one fiftyx set itself (openblas_kernel.h). */
static void drop_openblas_env(char **argv)
{
    const char *ours = getenv(FX_OPENBLAS_SET), *ct = getenv("OPENBLAS_CORETYPE");
    if (getenv("FIFTYX_KEEP_OPENBLAS_ENV") || (!ct && !getenv("OPENBLAS_L2_SIZE")) ||
        (ours && ct && !strcmp(ours, ct) && !getenv("OPENBLAS_L2_SIZE")))
        return;
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("OPENBLAS_L2_SIZE");
    unsetenv(FX_OPENBLAS_SET);
    unsetenv(FX_OPENBLAS_CHOSE);
    execv("/proc/self/exe", argv);
    /* if re-exec fails, carry on: the results record the kernel OpenBLAS chose */
}

/* openblas.c's, where the openblas backend is built in (a weak reference: NULL where not) */
extern void fx_openblas_fix_kernel(char **argv) __attribute__((weak));

int fx_source_dir_ok(void) { return is_source_dir(fx_source_dir()); }

/* Output that never arrived (stdout on a full disk, a closed pipe) is a failure, not a success. */
static int finish(int rc)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "fiftyx: writing the output failed: %s\n", errno ? strerror(errno) : "write error");
        return rc ? rc : 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    drop_openblas_env(argv);
    if (fx_openblas_fix_kernel)
        fx_openblas_fix_kernel(argv);
    const char *src = getenv("FIFTYX_SOURCE_DIR");
    if (src && *src && !is_source_dir(src))
        fx_bad_input("FIFTYX_SOURCE_DIR=%s: no reference/data/tutorial/x.npy there (it names the fiftyx source tree)", src);
    if (argc < 2)
        fx_bad_input("no command given (train, check, bench, info; see fiftyx --help)");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return finish(0);
    }
    if (!strcmp(cmd, "train"))
        return finish(fx_cmd_train(argc, argv));
    if (!strcmp(cmd, "check"))
        return finish(fx_cmd_check(argc, argv));
    if (!strcmp(cmd, "info"))
        return finish(fx_cmd_info(argc, argv));
    if (!strcmp(cmd, "bench"))
        return finish(fx_cmd_bench(argc, argv));
    fx_bad_input("unknown command '%s' (train, check, bench, info; see fiftyx --help)", cmd);
}
