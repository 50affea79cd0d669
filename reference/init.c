/* init.c — the initial tensors of a problem: drawn from the shared RNG or read from .npy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reference.h"

static int alloc_init(fx_init *t, fx_size s, fx_err *e)
{
    memset(t, 0, sizeof *t);
    t->size = s;
    t->x = malloc((size_t)s.n * (size_t)s.d_in * sizeof(float));
    t->y = malloc((size_t)s.n * (size_t)s.d_out * sizeof(float));
    t->w1 = malloc((size_t)s.d_in * (size_t)s.h * sizeof(float));
    t->w2 = malloc((size_t)s.h * (size_t)s.d_out * sizeof(float));
    if (!t->x || !t->y || !t->w1 || !t->w2) {
        fx_init_free(t);
        return fx_fail(e, "out of memory for tensors of %ldx%ldx%ldx%ld", s.n, s.d_in, s.h, s.d_out);
    }
    return 0;
}

int fx_init_random(fx_init *t, fx_size s, uint64_t seed, fx_err *e)
{
    if (alloc_init(t, s, e))
        return -1;
    fx_rng r;
    fx_rng_seed(&r, seed);
    fx_rng_fill_normal(&r, t->x, (size_t)s.n * (size_t)s.d_in);
    fx_rng_fill_normal(&r, t->y, (size_t)s.n * (size_t)s.d_out);
    fx_rng_fill_normal(&r, t->w1, (size_t)s.d_in * (size_t)s.h);
    fx_rng_fill_normal(&r, t->w2, (size_t)s.h * (size_t)s.d_out);
    return 0;
}

static int load_2d(const char *dir, const char *name, fx_npy *a, fx_err *e)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.npy", dir, name) >= (int)sizeof path)
        return fx_fail(e, "%s: path too long", dir);
    if (fx_npy_load(path, a, e))
        return -1;
    if (a->ndim != 2 || a->shape[0] < 1 || a->shape[1] < 1) {
        fx_npy_free(a);
        return fx_fail(e, "%s: expected a non-empty 2-D array", path);
    }
    /* a NaN or an infinity would not survive the loop the same way in every backend (ReLU's
     * max turns NaN into 0 in some, not in others): the tensors must be finite */
    size_t count = (size_t)a->shape[0] * (size_t)a->shape[1];
    for (size_t i = 0; i < count; i++)
        if (!isfinite(a->data[i])) {
            fx_npy_free(a);
            return fx_fail(e, "%s: element %zu is not finite", path, i);
        }
    return 0;
}

int fx_init_load(fx_init *t, const char *dir, fx_err *e)
{
    memset(t, 0, sizeof *t);
    if (!*dir)
        return fx_fail(e, "the tensors' directory name is empty");
    fx_npy x = {0}, y = {0}, w1 = {0}, w2 = {0};
    if (load_2d(dir, "x", &x, e) || load_2d(dir, "y", &y, e) || load_2d(dir, "w1", &w1, e) ||
        load_2d(dir, "w2", &w2, e))
        goto fail;
    fx_size s = {x.shape[0], x.shape[1], w1.shape[1], w2.shape[1]};
    if (y.shape[0] != s.n || w1.shape[0] != s.d_in || w2.shape[0] != s.h || y.shape[1] != s.d_out) {
        fx_fail(e,
                "%s: shapes disagree: x %ldx%ld, y %ldx%ld, w1 %ldx%ld, w2 %ldx%ld "
                "(need x NxD_in, y NxD_out, w1 D_inxH, w2 HxD_out)",
                dir, x.shape[0], x.shape[1], y.shape[0], y.shape[1], w1.shape[0], w1.shape[1],
                w2.shape[0], w2.shape[1]);
        goto fail;
    }
    t->size = s;
    t->x = x.data;
    t->y = y.data;
    t->w1 = w1.data;
    t->w2 = w2.data;
    return 0;
fail:
    fx_npy_free(&x);
    fx_npy_free(&y);
    fx_npy_free(&w1);
    fx_npy_free(&w2);
    return -1;
}

void fx_init_free(fx_init *t)
{
    free(t->x);
    free(t->y);
    free(t->w1);
    free(t->w2);
    t->x = t->y = t->w1 = t->w2 = NULL;
}

fx_tensors fx_init_view(const fx_init *t) { return (fx_tensors){t->x, t->y, t->w1, t->w2}; }
