/* ref_loop.c — the tutorial's training loop in double precision, naive loops.
 * Mirrors the tutorial line by line; nothing is fused, nothing is clever. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "reference.h"

struct fx_ref {
    fx_size s;
    double lr;
    double *x, *y, *w1, *w2;                 /* inputs and weights */
    double *h, *h_relu, *y_pred, *grad_y_pred; /* activations and gradients */
    double *grad_w2, *grad_h, *grad_w1;
};

/* c[m×n] = a[m×k]·b[k×n], each operand addressed through strides so that one loop nest
 * serves a·b, aᵀ·b and a·bᵀ (the reference is about clarity, not speed). The i-p-j order
 * keeps rows contiguous; every c(i,j) still sums its k products in order p = 0, 1, …, k−1. */
static void matmul(long m, long n, long k, const double *a, long a_row, long a_col,
                   const double *b, long b_row, long b_col, double *c)
{
    for (long i = 0; i < m; i++) {
        double *ci = c + i * n;
        for (long j = 0; j < n; j++)
            ci[j] = 0.0;
        for (long p = 0; p < k; p++) {
            double aip = a[i * a_row + p * a_col];
            for (long j = 0; j < n; j++)
                ci[j] += aip * b[p * b_row + j * b_col];
        }
    }
}

static double *dup_double(const float *src, size_t n)
{
    double *d = malloc(n * sizeof *d);
    if (d)
        for (size_t i = 0; i < n; i++)
            d[i] = src[i];
    return d;
}

int fx_ref_create(fx_ref **out, fx_size s, double lr, const fx_tensors *init, fx_err *e)
{
    fx_ref *r = calloc(1, sizeof *r);
    if (!r)
        return fx_fail(e, "out of memory");
    r->s = s;
    r->lr = lr;
    size_t n = (size_t)s.n, din = (size_t)s.d_in, h = (size_t)s.h, dout = (size_t)s.d_out;
    r->x = dup_double(init->x, n * din);
    r->y = dup_double(init->y, n * dout);
    r->w1 = dup_double(init->w1, din * h);
    r->w2 = dup_double(init->w2, h * dout);
    r->h = malloc(n * h * sizeof(double));
    r->h_relu = malloc(n * h * sizeof(double));
    r->y_pred = malloc(n * dout * sizeof(double));
    r->grad_y_pred = malloc(n * dout * sizeof(double));
    r->grad_w2 = malloc(h * dout * sizeof(double));
    r->grad_h = malloc(n * h * sizeof(double));
    r->grad_w1 = malloc(din * h * sizeof(double));
    if (!r->x || !r->y || !r->w1 || !r->w2 || !r->h || !r->h_relu || !r->y_pred ||
        !r->grad_y_pred || !r->grad_w2 || !r->grad_h || !r->grad_w1) {
        fx_ref_destroy(r);
        return fx_fail(e, "out of memory for the reference at %ldx%ldx%ldx%ld", s.n, s.d_in, s.h,
                       s.d_out);
    }
    *out = r;
    return 0;
}

/* The float32 rounding floor of the loss at the current weights, given the forward pass (h,
 * h_relu, y_pred) at them: an estimate of the spread of the rounding error, not a worst-case
 * bound (that one, λ√k·u·Σ|a||b| per inner product, is thousands of times the loss itself near
 * convergence). A float sum s = Σ_k t_k of k terms errs by Σ δ_k·s_k with |δ_k| ≤ u = 2⁻²⁴ over
 * the partial sums s_k; with rounding errors independent (Higham and Mary, "A new approach to
 * probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019) its spread is about
 * u·√(Σ s_k²), and Σ s_k² ≲ k·(s² + Σ t_k²) whether the terms' signs are random (the partial
 * sums wander like √k) or alike (they grow like k). Blocked and FMA sums err less. So
 *   σh[i,j]  = u·√D_in·(|h| + √((x²)·(w1²)))[i,j] / 2
 *   σyp[i,o] = √(own² + prop²): own = u·√H·(|yp| + √(h_relu²·w2²)) / 2 + u·(|yp| + |y|) / 2,
 *              prop = √((σh²)·(w2²)) over the units with h > −λσh (a mask flip near 0 moves
 *              h_relu by ≤ |δh|: covered; a unit further below 0 stays off and passes nothing)
 * and the loss Σr², r = yp − y, moves by 2Σr·δyp + Σδyp²: its spread is λ·(2√(Σr²σyp²) +
 * Σσyp²), plus λ·√(N·D_out)·u·loss for its own sum. Costs one more N×D_in×H product. -1 when
 * out of memory. */
static double loss_rounding(const fx_ref *r, double lambda, double loss)
{
    long N = r->s.n, Din = r->s.d_in, H = r->s.h, Dout = r->s.d_out;
    const double u = 0x1p-24;
    double *sx = malloc((size_t)(N * Din) * sizeof *sx), *sw1 = malloc((size_t)(Din * H) * sizeof *sw1);
    double *sh = malloc((size_t)(N * H) * sizeof *sh), *sw2 = malloc((size_t)(H * Dout) * sizeof *sw2);
    double *own = malloc((size_t)(N * Dout) * sizeof *own), *prop = malloc((size_t)(N * Dout) * sizeof *prop);
    double tol = -1;
    if (sx && sw1 && sh && sw2 && own && prop) {
        for (long i = 0; i < N * Din; i++)
            sx[i] = r->x[i] * r->x[i];
        for (long i = 0; i < Din * H; i++)
            sw1[i] = r->w1[i] * r->w1[i];
        for (long i = 0; i < H * Dout; i++)
            sw2[i] = r->w2[i] * r->w2[i];
        matmul(N, H, Din, sx, Din, 1, sw1, H, 1, sh); /* (x²)·(w1²), then σh² */
        for (long i = 0; i < N * H; i++) { /* a unit λσh or more below 0 stays off: it passes no error */
            double e = u * sqrt((double)Din) * (fabs(r->h[i]) + sqrt(sh[i])) / 2;
            sh[i] = r->h[i] > -lambda * e ? e * e : 0.0;
        }
        matmul(N, Dout, H, sh, H, 1, sw2, Dout, 1, prop); /* (σh²)·(w2²) */
        for (long i = 0; i < N * H; i++)
            sh[i] = r->h_relu[i] * r->h_relu[i];
        matmul(N, Dout, H, sh, H, 1, sw2, Dout, 1, own); /* (h_relu²)·(w2²) */
        double cross = 0, bias = 0;
        for (long i = 0; i < N * Dout; i++) {
            double yp = fabs(r->y_pred[i]), res = r->y_pred[i] - r->y[i];
            double o = u * sqrt((double)H) * (yp + sqrt(own[i])) / 2 + u * (yp + fabs(r->y[i])) / 2;
            double var = o * o + prop[i];
            cross += res * res * var;
            bias += var;
        }
        tol = lambda * (2 * sqrt(cross) + bias + sqrt((double)(N * Dout)) * u * loss);
    }
    free(sx);
    free(sw1);
    free(sh);
    free(sw2);
    free(own);
    free(prop);
    return tol;
}

/* One step; with loss_tol, also the loss's rounding floor at the step's starting weights. */
static double step(fx_ref *r, double lambda, double *loss_tol)
{
    long N = r->s.n, Din = r->s.d_in, H = r->s.h, Dout = r->s.d_out;

    /* h = x.mm(w1); h_relu = h.clamp(min=0); y_pred = h_relu.mm(w2) */
    matmul(N, H, Din, r->x, Din, 1, r->w1, H, 1, r->h);
    for (long i = 0; i < N * H; i++)
        r->h_relu[i] = r->h[i] > 0.0 ? r->h[i] : 0.0;
    matmul(N, Dout, H, r->h_relu, H, 1, r->w2, Dout, 1, r->y_pred);

    /* loss = (y_pred - y).pow(2).sum() */
    double loss = 0.0;
    for (long i = 0; i < N * Dout; i++) {
        double d = r->y_pred[i] - r->y[i];
        loss += d * d;
    }
    if (loss_tol)
        *loss_tol = loss_rounding(r, lambda, loss);

    /* grad_y_pred = 2.0 * (y_pred - y); grad_w2 = h_relu.t().mm(grad_y_pred) */
    for (long i = 0; i < N * Dout; i++)
        r->grad_y_pred[i] = 2.0 * (r->y_pred[i] - r->y[i]);
    matmul(H, Dout, N, r->h_relu, 1, H, r->grad_y_pred, Dout, 1, r->grad_w2);

    /* grad_h_relu = grad_y_pred.mm(w2.t()); grad_h[h < 0] = 0 */
    matmul(N, H, Dout, r->grad_y_pred, Dout, 1, r->w2, 1, Dout, r->grad_h);
    for (long i = 0; i < N * H; i++)
        if (r->h[i] < 0.0)
            r->grad_h[i] = 0.0;

    /* grad_w1 = x.t().mm(grad_h) */
    matmul(Din, H, N, r->x, 1, Din, r->grad_h, H, 1, r->grad_w1);

    /* w1 -= learning_rate * grad_w1; w2 -= learning_rate * grad_w2 */
    for (long i = 0; i < Din * H; i++)
        r->w1[i] -= r->lr * r->grad_w1[i];
    for (long i = 0; i < H * Dout; i++)
        r->w2[i] -= r->lr * r->grad_w2[i];
    return loss;
}

double fx_ref_step(fx_ref *r) { return step(r, 0, NULL); }

double fx_ref_step_tol(fx_ref *r, double lambda, double *loss_tol) { return step(r, lambda, loss_tol); }

fx_size fx_ref_size(const fx_ref *r) { return r->s; }
const double *fx_ref_w1(const fx_ref *r) { return r->w1; }
const double *fx_ref_w2(const fx_ref *r) { return r->w2; }

void fx_ref_destroy(fx_ref *r)
{
    if (!r)
        return;
    double *bufs[] = {r->x, r->y, r->w1, r->w2, r->h, r->h_relu, r->y_pred, r->grad_y_pred,
                      r->grad_w2, r->grad_h, r->grad_w1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(r);
}

/* ---- the kernel oracle ---- */

static void op_strides(fx_op op, long m, long n, long k, long *a_row, long *a_col, long *b_row,
                       long *b_col)
{
    /* element (i, p) of op(A) is a[i*a_row + p*a_col]; element (p, j) of op(B) is b[p*b_row + j*b_col] */
    *a_row = op == FX_TN ? 1 : k;
    *a_col = op == FX_TN ? m : 1;
    *b_row = op == FX_NT ? 1 : n;
    *b_col = op == FX_NT ? k : 1;
}

void fx_ref_gemm_at(fx_op op, long m, long n, long k, const float *a, const float *b, long i, long j,
                    double *acc, double *absacc)
{
    long ar, ac, br, bc;
    op_strides(op, m, n, k, &ar, &ac, &br, &bc);
    double s = 0.0, sa = 0.0;
    for (long p = 0; p < k; p++) {
        double prod = (double)a[i * ar + p * ac] * (double)b[p * br + j * bc];
        s += prod;
        sa += prod < 0 ? -prod : prod;
    }
    *acc = s;
    *absacc = sa;
}

void fx_ref_gemm(fx_op op, long m, long n, long k, const float *a, const float *b, double *acc,
                 double *absacc)
{
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++)
            fx_ref_gemm_at(op, m, n, k, a, b, i, j, &acc[i * n + j], &absacc[i * n + j]);
}
