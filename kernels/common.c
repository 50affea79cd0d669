/* common.c — small pieces of the interface shared by every backend. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fiftyx.h"

int fx_fail(fx_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

float *fx_floats_dup(const float *src, size_t n)
{
    float *d = malloc(n * sizeof *d);
    if (d && src)
        memcpy(d, src, n * sizeof *d);
    return d;
}

double fx_step_flops(fx_size s)
{
    double n = (double)s.n, din = (double)s.d_in, h = (double)s.h, dout = (double)s.d_out;
    /* forward x·w1, h·w2; backward hᵀ·g, g·w2ᵀ, xᵀ·gh: 2 FLOPs per multiply-add */
    return 2.0 * (2.0 * n * din * h + 3.0 * n * h * dout);
}

static int g_threads;
void fx_set_threads(int threads) { g_threads = threads; }
int fx_threads(void) { return g_threads; }

#include <time.h>
double fx_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fx_host_gemm_destroy(void *handle)
{
    fx_host_gemm *g = handle;
    if (!g)
        return;
    if (g->c)
        for (int s = 0; s < g->nsets; s++)
            free(g->c[s]);
    free(g->c);
    free(g);
}

int fx_host_gemm_create(const void *ctx, fx_op op, long m, long n, long k, int nsets, const float *const *a,
                        const float *const *b, void **handle, fx_err *e)
{
    fx_host_gemm *g = calloc(1, sizeof *g);
    if (!g)
        return fx_fail(e, "out of memory");
    *g = (fx_host_gemm){op, m, n, k, nsets, a, b, calloc((size_t)nsets, sizeof(float *)), ctx};
    size_t bytes = ((size_t)m * (size_t)n * sizeof(float) + 63) / 64 * 64;
    for (int s = 0; g->c && s < nsets; s++) {
        if (!(g->c[s] = aligned_alloc(64, bytes)))
            break;
        /* NaN: a set no product wrote fails validation. Filled by all threads (a static split of
         * the rows, roughly as the GEMMs' threads share C), not all first touched by one. */
        float *c = g->c[s];
        long mn = m * n;
#pragma omp parallel for schedule(static)
        for (long i = 0; i < mn; i++)
            c[i] = NAN;
    }
    if (!g->c || !g->c[nsets - 1]) {
        fx_host_gemm_destroy(g);
        return fx_fail(e, "out of memory for %d GEMM outputs of %ldx%ld", nsets, m, n);
    }
    *handle = g;
    return 0;
}

int fx_host_gemm_next_set(fx_host_gemm *g)
{
    int s = g->next;
    g->next = (s + 1) % g->nsets;
    return s;
}

int fx_host_gemm_result(void *handle, int set, float *c, fx_err *e)
{
    const fx_host_gemm *g = handle;
    if (set < 0 || set >= g->nsets)
        return fx_fail(e, "no operand set %d", set);
    memcpy(c, g->c[set], (size_t)g->m * (size_t)g->n * sizeof(float));
    return 0;
}

/* ---- fx_host_kernel_bench: a CPU backend's kernels table timed on host memory ---------------- */

typedef struct {
    const fx_kernels *k;
    fx_kernel_call call; /* the caller's: the inputs, and where result() writes the outputs */
    fx_kernel_call work; /* the same call on the handle's own output arrays */
    float *out;          /* GEMM: C; LOSS_GRAD: g; SGD: w */
    uint8_t *mask;       /* GEMM with a mask epilogue */
    double loss;
} host_kb;

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

static void host_kb_destroy(void *handle)
{
    host_kb *h = handle;
    if (!h)
        return;
    free(h->out);
    free(h->mask);
    free(h);
}

/* The call's inputs into the handle's arrays (C or w as given; the poison of outputs too). */
static void host_kb_restore(host_kb *h)
{
    const fx_kernel_call *c = &h->call;
    if (c->kind == FX_KERNEL_GEMM) {
        size_t mn = (size_t)c->gemm.m * (size_t)c->gemm.n;
        memcpy(h->out, c->gemm.c, mn * sizeof(float));
        if (h->mask)
            memcpy(h->mask, c->gemm.mask, mn);
    } else if (c->kind == FX_KERNEL_LOSS_GRAD) { /* g and the loss as given (poisoned) */
        memcpy(h->out, c->loss_grad.g, (size_t)c->loss_grad.n * sizeof(float));
        h->loss = *c->loss_grad.loss;
    } else {
        memcpy(h->out, c->sgd.w, (size_t)c->sgd.n * sizeof(float));
    }
}

static int host_kb_call(host_kb *h, fx_err *e)
{
    const fx_kernel_call *w = &h->work;
    switch (w->kind) {
    case FX_KERNEL_GEMM:
        return h->k->gemm(&w->gemm, e);
    case FX_KERNEL_LOSS_GRAD:
        return h->k->loss_grad(w->loss_grad.n, w->loss_grad.yp, w->loss_grad.y, w->loss_grad.g, w->loss_grad.loss, e);
    case FX_KERNEL_SGD:
        return h->k->sgd(w->sgd.n, w->sgd.w, w->sgd.g, w->sgd.lr, e);
    }
    return fx_fail(e, "unknown kernel kind %d", (int)w->kind);
}

static int host_kb_create(const struct fx_backend *b, const fx_kernel_call *call, void **handle, fx_err *e)
{
    if (!b->kernels)
        return fx_fail(e, "backend %s has no kernels table", b->name);
    if (call->kind != FX_KERNEL_GEMM && call->kind != FX_KERNEL_LOSS_GRAD && call->kind != FX_KERNEL_SGD)
        return fx_fail(e, "unknown kernel kind %d", (int)call->kind);
    host_kb *h = calloc(1, sizeof *h);
    if (!h)
        return fx_fail(e, "out of memory");
    h->k = b->kernels;
    h->call = h->work = *call;
    size_t n = call->kind == FX_KERNEL_GEMM ? (size_t)call->gemm.m * (size_t)call->gemm.n
               : call->kind == FX_KERNEL_LOSS_GRAD ? (size_t)call->loss_grad.n : (size_t)call->sgd.n;
    int has_mask = call->kind == FX_KERNEL_GEMM && call->gemm.mask;
    h->out = alloc64(n * sizeof(float));
    h->mask = has_mask ? alloc64(n) : NULL;
    if (!h->out || (has_mask && !h->mask)) {
        host_kb_destroy(h);
        return fx_fail(e, "out of memory for a kernel output of %zu elements", n);
    }
    if (call->kind == FX_KERNEL_GEMM) {
        h->work.gemm.c = h->out;
        h->work.gemm.mask = h->mask;
    } else if (call->kind == FX_KERNEL_LOSS_GRAD) {
        h->work.loss_grad.g = h->out;
        h->work.loss_grad.loss = &h->loss;
    } else {
        h->work.sgd.w = h->out;
    }
    host_kb_restore(h);
    *handle = h;
    return 0;
}

static int host_kb_run(void *handle, long iters, double *seconds, fx_err *e)
{
    host_kb *h = handle;
    double t0 = fx_wall_seconds();
    for (long i = 0; i < iters; i++)
        if (host_kb_call(h, e))
            return -1;
    *seconds = fx_wall_seconds() - t0;
    return 0;
}

static int host_kb_result(void *handle, fx_err *e)
{
    host_kb *h = handle;
    const fx_kernel_call *c = &h->call;
    host_kb_restore(h);
    if (host_kb_call(h, e))
        return -1;
    if (c->kind == FX_KERNEL_GEMM) {
        size_t mn = (size_t)c->gemm.m * (size_t)c->gemm.n;
        memcpy(c->gemm.c, h->out, mn * sizeof(float));
        if (h->mask && c->gemm.epi == FX_EPI_RELU_MASK)
            memcpy(c->gemm.mask, h->mask, mn);
    } else if (c->kind == FX_KERNEL_LOSS_GRAD) {
        memcpy(c->loss_grad.g, h->out, (size_t)c->loss_grad.n * sizeof(float));
        *c->loss_grad.loss = h->loss;
    } else {
        memcpy(c->sgd.w, h->out, (size_t)c->sgd.n * sizeof(float));
    }
    return 0;
}

const fx_kernel_bench fx_host_kernel_bench = {host_kb_create, host_kb_run, host_kb_result, host_kb_destroy};
