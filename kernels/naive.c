/* naive.c — the `naive` backend: float32, one thread, the tutorial's lines as plain C loops.
 * This is what an unoptimised C port does; it is the floor every speedup is measured from. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "fiftyx.h"

/* c[m×n] = a·b with a(i,p) = a[i*a_row + p*a_col] and b(p,j) = b[p*b_row + j*b_col]. */
static void matmul(long m, long n, long k, const float *a, long a_row, long a_col, const float *b,
                   long b_row, long b_col, float *c)
{
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float acc = 0.0f;
            for (long p = 0; p < k; p++)
                acc += a[i * a_row + p * a_col] * b[p * b_row + j * b_col];
            c[i * n + j] = acc;
        }
}

/* ---- kernels (each a plain loop; epilogues as separate passes) ---- */

static int naive_gemm(const fx_gemm_args *g, fx_err *e)
{
    long m = g->m, n = g->n, k = g->k;
    long ar = g->op == FX_TN ? 1 : k, ac = g->op == FX_TN ? m : 1;
    long br = g->op == FX_NT ? 1 : n, bc = g->op == FX_NT ? k : 1;
    float *acc = g->c;
    if (g->epi == FX_EPI_SGD && !(acc = malloc((size_t)m * (size_t)n * sizeof *acc)))
        return fx_fail(e, "out of memory");
    matmul(m, n, k, g->a, ar, ac, g->b, br, bc, acc);
    for (long i = 0; i < m * n; i++) {
        switch (g->epi) {
        case FX_EPI_STORE:
            break;
        case FX_EPI_RELU_MASK:
            g->mask[i] = acc[i] >= 0.0f;
            g->c[i] = acc[i] > 0.0f ? acc[i] : 0.0f;
            break;
        case FX_EPI_MASK:
            if (!g->mask[i])
                g->c[i] = 0.0f;
            break;
        case FX_EPI_SGD:
            g->c[i] -= g->lr * acc[i];
            break;
        }
    }
    if (acc != g->c)
        free(acc);
    return 0;
}

static int naive_loss_grad(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e)
{
    (void)e;
    float sum = 0.0f;
    for (long i = 0; i < n; i++) {
        float d = yp[i] - y[i];
        sum += d * d;
        g[i] = 2.0f * d;
    }
    *loss = sum;
    return 0;
}

static int naive_sgd(long n, float *w, const float *g, float lr, fx_err *e)
{
    (void)e;
    for (long i = 0; i < n; i++)
        w[i] -= lr * g[i];
    return 0;
}

static const fx_kernels naive_kernels = {naive_gemm, naive_loss_grad, naive_sgd};

/* ---- the loop ---- */

typedef struct {
    fx_size s;
    float lr;
    float *x, *y, *w1, *w2, *h, *h_relu, *y_pred, *grad_y_pred, *grad_w2, *grad_h, *grad_w1;
} naive_state;

static void naive_destroy(void *p)
{
    naive_state *st = p;
    if (!st)
        return;
    float *bufs[] = {st->x, st->y, st->w1, st->w2, st->h, st->h_relu, st->y_pred, st->grad_y_pred,
                     st->grad_w2, st->grad_h, st->grad_w1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(st);
}

static int naive_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    naive_state *st = calloc(1, sizeof *st);
    if (!st)
        return fx_fail(e, "out of memory");
    fx_size s = p->size;
    size_t N = (size_t)s.n, Din = (size_t)s.d_in, H = (size_t)s.h, Dout = (size_t)s.d_out;
    st->s = s;
    st->lr = p->lr;
    st->x = fx_floats_dup(init->x, N * Din);
    st->y = fx_floats_dup(init->y, N * Dout);
    st->w1 = fx_floats_dup(init->w1, Din * H);
    st->w2 = fx_floats_dup(init->w2, H * Dout);
    st->h = fx_floats_dup(NULL, N * H);
    st->h_relu = fx_floats_dup(NULL, N * H);
    st->y_pred = fx_floats_dup(NULL, N * Dout);
    st->grad_y_pred = fx_floats_dup(NULL, N * Dout);
    st->grad_w2 = fx_floats_dup(NULL, H * Dout);
    st->grad_h = fx_floats_dup(NULL, N * H);
    st->grad_w1 = fx_floats_dup(NULL, Din * H);
    if (!st->x || !st->y || !st->w1 || !st->w2 || !st->h || !st->h_relu || !st->y_pred ||
        !st->grad_y_pred || !st->grad_w2 || !st->grad_h || !st->grad_w1) {
        naive_destroy(st);
        return fx_fail(e, "out of memory for %ldx%ldx%ldx%ld", s.n, s.d_in, s.h, s.d_out);
    }
    *state = st;
    return 0;
}

static float naive_step(naive_state *st)
{
    long N = st->s.n, Din = st->s.d_in, H = st->s.h, Dout = st->s.d_out;
    matmul(N, H, Din, st->x, Din, 1, st->w1, H, 1, st->h);
    for (long i = 0; i < N * H; i++)
        st->h_relu[i] = st->h[i] > 0.0f ? st->h[i] : 0.0f;
    matmul(N, Dout, H, st->h_relu, H, 1, st->w2, Dout, 1, st->y_pred);
    float loss = 0.0f;
    for (long i = 0; i < N * Dout; i++) {
        float d = st->y_pred[i] - st->y[i];
        loss += d * d;
    }
    for (long i = 0; i < N * Dout; i++)
        st->grad_y_pred[i] = 2.0f * (st->y_pred[i] - st->y[i]);
    matmul(H, Dout, N, st->h_relu, 1, H, st->grad_y_pred, Dout, 1, st->grad_w2);
    matmul(N, H, Dout, st->grad_y_pred, Dout, 1, st->w2, 1, Dout, st->grad_h);
    for (long i = 0; i < N * H; i++)
        if (st->h[i] < 0.0f)
            st->grad_h[i] = 0.0f;
    matmul(Din, H, N, st->x, 1, Din, st->grad_h, H, 1, st->grad_w1);
    for (long i = 0; i < Din * H; i++)
        st->w1[i] -= st->lr * st->grad_w1[i];
    for (long i = 0; i < H * Dout; i++)
        st->w2[i] -= st->lr * st->grad_w2[i];
    return loss;
}

static int naive_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    (void)e;
    double t0 = fx_wall_seconds();
    for (int t = 0; t < steps; t++)
        losses[t] = naive_step(state);
    if (seconds)
        *seconds = fx_wall_seconds() - t0;
    return 0;
}

static int naive_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    (void)e;
    naive_state *st = state;
    memcpy(w1, st->w1, (size_t)st->s.d_in * (size_t)st->s.h * sizeof(float));
    memcpy(w2, st->w2, (size_t)st->s.h * (size_t)st->s.d_out * sizeof(float));
    return 0;
}

/* GEMM benchmark: the same naive kernel, timed on the CPU clock. */
static int naive_gb_create(fx_op op, long m, long n, long k, int nsets, const float *const *a,
                           const float *const *b, void **handle, fx_err *e)
{
    return fx_host_gemm_create(NULL, op, m, n, k, nsets, a, b, handle, e);
}

static int naive_gb_run(void *h, long iters, double *seconds, fx_err *e)
{
    fx_host_gemm *g = h;
    double t0 = fx_wall_seconds();
    for (long i = 0; i < iters; i++) {
        int s = fx_host_gemm_next_set(g);
        fx_gemm_args args = {g->op, FX_EPI_STORE, g->m, g->n, g->k, g->a[s], g->b[s], g->c[s], NULL, 0};
        if (naive_gemm(&args, e))
            return -1;
    }
    *seconds = fx_wall_seconds() - t0;
    return 0;
}

static const fx_gemm_bench naive_gemm_bench_ops = {naive_gb_create, naive_gb_run, fx_host_gemm_result,
                                                   fx_host_gemm_destroy};

const fx_backend fx_backend_naive = {
    .name = "naive",
    .device = FX_CPU,
    .summary = "float32 plain loops, one thread: an unoptimised C port of the tutorial",
    .create = naive_create,
    .run = naive_run,
    .read_weights = naive_read_weights,
    .destroy = naive_destroy,
    .kernels = &naive_kernels,
    .gemm_bench = &naive_gemm_bench_ops,
};
