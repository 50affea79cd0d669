/* check.c — `fiftyx check`: runs every suite and closes with "N passed, N failed, N skipped". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "cli.h"
#include "harness.h"

void fx_report(fx_check *c, fx_outcome o, const char *name, const char *fmt, ...)
{
    static const char *const tag[] = {"PASS", "FAIL", "SKIP"};
    printf("%s  %s", tag[o], name);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stdout);
        vprintf(fmt, ap);
        va_end(ap);
    }
    putchar('\n');
    fflush(stdout);
    if (o == FX_PASS)
        c->passed++;
    else if (o == FX_FAIL)
        c->failed++;
    else
        c->skipped++;
}

int fx_mkdtemp(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "%s/fiftyx-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

void fx_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        char path[4096];
        while ((ent = readdir(d)))
            if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
                struct stat st; /* lstat: a symbolic link is removed, never followed */
                if (!lstat(path, &st) && S_ISDIR(st.st_mode))
                    fx_rmtree(path);
                else
                    unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

static const char usage[] =
    "usage: fiftyx check [--backend B,...] [--quick] [--threads T]\n"
    "  Validates the .npy reader, the RNG, the command line's handling of bad input, and for each\n"
    "  backend its kernels (GEMM NN/NT/TN with every epilogue, loss+gradient, SGD) at many shapes\n"
    "  and its whole training loop against the double-precision reference.\n"
    "  --backend  only these backends (default: all built; those unusable here are skipped)\n"
    "  --quick    fewer kernel shapes\n"
    "  --threads  threads for the CPU backends (default: one per core); more threads than cores\n"
    "             checks another machine's thread grids here (slowly)\n"
    "  Closing line: N passed, N failed, N skipped. Exit status 1 if anything failed.\n";

int fx_cmd_check(int argc, char **argv)
{
    fx_check c = {0};
    c.self = argv[0];
    const char *only = NULL, *v;
    long threads = 0;
    for (int i = 2; i < argc; i++) {
        if (fx_flag(argv, i, "--help") || fx_flag(argv, i, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if ((v = fx_opt(argc, argv, &i, "--backend"))) {
            only = v;
        } else if (fx_flag(argv, i, "--quick")) {
            c.quick = 1;
        } else if ((v = fx_opt(argc, argv, &i, "--threads"))) {
            if (fx_parse_long(v, 1, 4096, &threads))
                fx_bad_input("--threads '%s': expected an integer from 1 to 4096", v);
        } else {
            fx_bad_input("check: unknown option '%s' (see fiftyx check --help)", argv[i]);
        }
    }
    size_t nb;
    const fx_backend *const *all = fx_backends(&nb);
    const fx_backend *sel[64];
    size_t nsel = 0;
    if (only) {
        nsel = (size_t)fx_parse_backend_list("--backend", only, sel, 64);
    } else {
        for (size_t i = 0; i < nb && nsel < 64; i++)
            sel[nsel++] = all[i];
    }
    char binding[160];
    fx_setup_threads((int)threads, binding, sizeof binding);

    fx_check_npy(&c);
    fx_check_rng(&c);
    fx_check_cli(&c);
    fx_check_after_timing_faults(&c);
    fx_check_sparse(&c);
    for (size_t i = 0; i < nsel; i++) {
        const fx_backend *b = sel[i];
        const char *why = b->unavailable ? b->unavailable() : NULL;
        if (why) {
            char name[96];
            snprintf(name, sizeof name, "backend/%s", b->name);
            fx_report(&c, FX_SKIP, name, "%s", why);
            continue;
        }
        fx_check_kernels(&c, b);
        fx_check_hand_step(&c, b);
        fx_check_loop(&c, b);
        fx_check_after_timing(&c, b);
    }
    if (!only) { /* the backends this build lacks are skipped too, each with the reason */
        const char *missing[16];
        size_t nm = fx_backends_not_built(missing, 16);
        for (size_t i = 0; i < nm; i++) {
            char name[96];
            snprintf(name, sizeof name, "backend/%s", missing[i]);
            fx_report(&c, FX_SKIP, name, "%s", fx_backend_not_built_why(missing[i]));
        }
    }
    printf("%d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped);
    return c.failed ? 1 : 0;
}
