/* train.c — `fiftyx train`: the tutorial's loop on one backend, printing "t loss" per step. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "atomic_file.h"
#include "cli.h"
#include "harness.h"

static const char usage[] =
    "usage: fiftyx train --backend B [--size NxD_INxHxD_OUT] [--steps S] [--lr LR] [--seed S]\n"
    "                    [--init DIR] [--save DIR] [--threads T] [--sync-every-step]\n"
    "  Runs the tutorial's two-layer ReLU net with manual backward and SGD, printing one\n"
    "  't loss' line per step (the loss before that step's update, 9 significant digits).\n"
    "  --size      default 64x1000x100x10 (the tutorial); taken from the files with --init\n"
    "  --steps     default 500          --lr    default 1e-6      --seed  default 0\n"
    "  --init DIR  read DIR/{x,y,w1,w2}.npy instead of drawing them from the seeded RNG\n"
    "  --save DIR  write the final w1.npy and w2.npy into DIR (an existing directory)\n"
    "  --threads T threads for CPU backends (default: one per core)\n"
    "  --sync-every-step  GPU backends: copy the loss back after every step, like .item()\n";

int fx_cmd_train(int argc, char **argv)
{
    const char *backend = NULL, *init_dir = NULL, *save_dir = NULL, *v;
    fx_size size = FX_TUTORIAL_SIZE;
    int have_size = 0, sync_every = 0;
    long steps = FX_TUTORIAL_STEPS, threads = 0;
    double lr = FX_TUTORIAL_LR;
    uint64_t seed = 0;
    fx_err e = {{0}};

    for (int i = 2; i < argc; i++) {
        if (fx_flag(argv, i, "--help") || fx_flag(argv, i, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if ((v = fx_opt(argc, argv, &i, "--backend"))) {
            backend = v;
        } else if ((v = fx_opt(argc, argv, &i, "--size"))) {
            if (fx_parse_size(v, &size, &e))
                fx_bad_input("%s", e.msg);
            have_size = 1;
        } else if ((v = fx_opt(argc, argv, &i, "--steps"))) {
            if (fx_parse_long(v, 1, 100000000, &steps))
                fx_bad_input("--steps '%s': expected an integer from 1 to 100000000", v);
        } else if ((v = fx_opt(argc, argv, &i, "--lr"))) {
            /* the backends compute in float32: lr must be a normal float, not 0 or inf once rounded */
            if (fx_parse_double(v, &lr) || !(lr >= FLT_MIN && lr <= FLT_MAX))
                fx_bad_input("--lr '%s': expected a positive number from %g to %g (float32)", v, FLT_MIN, FLT_MAX);
        } else if ((v = fx_opt(argc, argv, &i, "--seed"))) {
            if (fx_parse_u64(v, &seed))
                fx_bad_input("--seed '%s': expected a non-negative integer", v);
        } else if ((v = fx_opt(argc, argv, &i, "--threads"))) {
            if (fx_parse_long(v, 1, 4096, &threads))
                fx_bad_input("--threads '%s': expected an integer from 1 to 4096", v);
        } else if ((v = fx_opt(argc, argv, &i, "--init"))) {
            init_dir = v;
        } else if ((v = fx_opt(argc, argv, &i, "--save"))) {
            save_dir = v;
        } else if (fx_flag(argv, i, "--sync-every-step")) {
            sync_every = 1;
        } else {
            fx_bad_input("train: unknown option '%s' (see fiftyx train --help)", argv[i]);
        }
    }
    if (!backend)
        fx_bad_input("train: --backend is required (see fiftyx train --help)");
    const fx_backend *b = fx_backend_usable(backend);
    char save_path[2][4200];
    if (save_dir) {
        struct stat st;
        if (stat(save_dir, &st) || !S_ISDIR(st.st_mode))
            fx_bad_input("--save '%s': not an existing directory", save_dir);
        for (int i = 0; i < 2; i++) { /* before training, not after: both files must be writable */
            snprintf(save_path[i], sizeof save_path[i], "%s/w%d.npy", save_dir, i + 1);
            if (fx_atomic_check(save_path[i], &e))
                fx_bad_input("--save: %s", e.msg);
        }
    }

    fx_init init;
    if (init_dir) {
        if (fx_init_load(&init, init_dir, &e))
            fx_bad_input("--init: %s", e.msg);
        if (have_size && memcmp(&size, &init.size, sizeof size))
            fx_bad_input("--size %ldx%ldx%ldx%ld disagrees with the tensors in %s (%ldx%ldx%ldx%ld)",
                         size.n, size.d_in, size.h, size.d_out, init_dir, init.size.n, init.size.d_in,
                         init.size.h, init.size.d_out);
        if (fx_size_check(init.size, &e))
            fx_bad_input("--init %s: %s", init_dir, e.msg);
        size = init.size;
    } else if (fx_init_random(&init, size, seed, &e)) {
        fx_die(1, "%s", e.msg);
    }

    fx_problem p = {size, (float)lr, sync_every};
    const char *why = b->unsupported ? b->unsupported(&p) : NULL;
    if (why)
        fx_bad_input("backend '%s' cannot run %ldx%ldx%ldx%ld: %s", b->name, size.n, size.d_in, size.h,
                     size.d_out, why);
    char binding[160];
    fx_setup_threads((int)threads, binding, sizeof binding);

    fx_tensors view = fx_init_view(&init);
    void *state;
    if (b->create(&p, &view, &state, &e))
        fx_die(1, "%s: %s", b->name, e.msg);
    /* CPU backends print as they go; a GPU backend runs the whole loop and returns all losses */
    int chunk = b->device == FX_GPU ? (int)steps : 1;
    double *losses = malloc((size_t)steps * sizeof *losses);
    if (!losses)
        fx_die(1, "out of memory");
    for (long t = 0; t < steps; t += chunk) {
        int n = (int)(steps - t < chunk ? steps - t : chunk);
        if (b->run(state, n, losses + t, NULL, &e))
            fx_die(1, "%s: step %ld: %s", b->name, t, e.msg);
        for (int k = 0; k < n; k++)
            printf("%ld %.9g\n", t + k, losses[t + k]);
    }
    fflush(stdout);

    int rc = 0;
    if (save_dir) {
        float *w1 = malloc((size_t)(size.d_in * size.h) * sizeof *w1);
        float *w2 = malloc((size_t)(size.h * size.d_out) * sizeof *w2);
        long s1[2] = {size.d_in, size.h}, s2[2] = {size.h, size.d_out};
        if (!w1 || !w2 || b->read_weights(state, w1, w2, &e)) {
            fprintf(stderr, "fiftyx: reading weights: %s\n", w1 && w2 ? e.msg : "out of memory");
            rc = 1;
        } else {
            const char *paths[2] = {save_path[0], save_path[1]};
            const float *data[2] = {w1, w2};
            const int ndim[2] = {2, 2};
            const long *shapes[2] = {s1, s2};
            if (fx_npy_save_set(2, paths, data, ndim, shapes, &e)) { /* both files or neither */
                fprintf(stderr, "fiftyx: %s\n", e.msg);
                rc = 1;
            }
        }
        free(w1);
        free(w2);
    }
    b->destroy(state);
    free(losses);
    fx_init_free(&init);
    return rc;
}
