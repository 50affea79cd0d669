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

/* Spreads of float32 rounding at the step's starting weights, given the step's forward and
 * backward passes (h, h_relu, y_pred, g, gw2, gh, gw1; the weights not yet updated): estimates of
 * how far a correct float32 step may land from this double one — not worst-case bounds (those,
 * λ√k·u·Σ|a||b| per inner product, are thousands of times the loss itself near convergence).
 *
 * A float sum s = Σ_k t_k errs by Σ δ_k·s_k over the partial sums, |δ_k| ≤ u = 2⁻²⁴; with the
 * rounding errors independent (Higham and Mary, "A new approach to probabilistic rounding error
 * analysis", SIAM J. Sci. Comput. 41(5), 2019) its spread is about u·√(Σ s_k²) ≲ u·√k·(|s| +
 * √(Σ t_k²)) / 2, whether the terms' signs are random (partial sums wander like √k) or alike
 * (they grow like k). Blocked, FMA and split sums err less. Errors carried in from an operand add
 * their variances through the product. Per element:
 *   h      σh² = (u√D_in·(|h| + √(x²·w1²)) / 2)²
 *          a unit with h > −λσh is live (its error reaches what follows); one with |h| ≤ λσh may
 *          flip its ReLU mask, which moves gh by its whole value
 *   y_pred var = own² + (σh²·[live])·w2², own = u√H·(|yp| + √(h_relu²·w2²)) / 2 + u·(|yp| + |y|) / 2
 *   g      var = 4·var(y_pred)
 *   gw2    var = h_reluᵀ²·var(g) + (σh²·[live])ᵀ·g² + own²,  own = u√N·(|gw2| + √(h_reluᵀ²·g²)) / 2
 *   gh     var = [live]·(var(g)·w2ᵀ² + own²) + [may flip]·(g·w2ᵀ)²,  own = u√D_out·(|g·w2ᵀ| + √(g²·w2ᵀ²)) / 2
 *   gw1    var = xᵀ²·var(gh) + own²,  own = u√N·(|gw1| + √(xᵀ²·gh²)) / 2
 * Spreads (× λ): the loss Σr², r = yp − y, moves by 2Σr·δyp + Σδyp², so λ·(2√(Σr²·var) + Σvar +
 * √(N·D_out)·u·loss); an updated weight matrix by λ·lr·√(Σ var(gw)) plus its own rounding,
 * 2u·(‖w‖ + lr·‖gw‖) (the product lr·gw and the subtraction may each round; measured on the dev
 * box, a correct float update lands 0.4u·‖w‖ from the exact one). Costs three more N×D_in×H
 * products: a step and a half. 0, or -1 when out of memory. */
static int rounding_spread(const fx_ref *r, double lambda, double loss, fx_ref_spread *out)
{
    long N = r->s.n, Din = r->s.d_in, H = r->s.h, Dout = r->s.d_out;
    const double u = 0x1p-24;
    size_t nd = (size_t)(N * Din), dh = (size_t)(Din * H), nh = (size_t)(N * H), ho = (size_t)(H * Dout),
           no = (size_t)(N * Dout);
    double *sx = malloc(nd * sizeof(double)), *sw2 = malloc(ho * sizeof(double));
    double *big = malloc(dh * sizeof(double)), *big2 = malloc(dh * sizeof(double));
    double *vh = malloc(nh * sizeof(double)), *pre = malloc(nh * sizeof(double));
    double *t1 = malloc(nh * sizeof(double)), *t2 = malloc(nh * sizeof(double));
    double *vg = malloc(no * sizeof(double)), *g2 = malloc(no * sizeof(double));
    double *o1 = malloc(no * sizeof(double)), *o2 = malloc(no * sizeof(double));
    double *q1 = malloc(ho * sizeof(double)), *q2 = malloc(ho * sizeof(double)), *q3 = malloc(ho * sizeof(double));
    unsigned char *live = malloc(nh), *flip = malloc(nh);
    int rc = -1;
    if (!sx || !sw2 || !big || !big2 || !vh || !pre || !t1 || !t2 || !vg || !g2 || !o1 || !o2 || !q1 || !q2 ||
        !q3 || !live || !flip)
        goto out;
    for (size_t i = 0; i < nd; i++)
        sx[i] = r->x[i] * r->x[i];
    for (size_t i = 0; i < dh; i++)
        big[i] = r->w1[i] * r->w1[i];
    for (size_t i = 0; i < ho; i++)
        sw2[i] = r->w2[i] * r->w2[i];

    /* h: σh², live, may flip */
    matmul(N, H, Din, sx, Din, 1, big, H, 1, t1); /* x²·w1² */
    for (size_t i = 0; i < nh; i++) {
        double e = u * sqrt((double)Din) * (fabs(r->h[i]) + sqrt(t1[i])) / 2;
        live[i] = r->h[i] > -lambda * e;
        flip[i] = fabs(r->h[i]) <= lambda * e;
        vh[i] = live[i] ? e * e : 0.0;
        t2[i] = r->h_relu[i] * r->h_relu[i];
    }

    /* y_pred, and the loss */
    matmul(N, Dout, H, t2, H, 1, sw2, Dout, 1, o1); /* h_relu²·w2² */
    matmul(N, Dout, H, vh, H, 1, sw2, Dout, 1, o2); /* (σh²·[live])·w2² */
    double cross = 0, bias = 0;
    for (size_t i = 0; i < no; i++) {
        double yp = fabs(r->y_pred[i]), res = r->y_pred[i] - r->y[i];
        double own = u * sqrt((double)H) * (yp + sqrt(o1[i])) / 2 + u * (yp + fabs(r->y[i])) / 2;
        double var = own * own + o2[i];
        cross += res * res * var;
        bias += var;
        vg[i] = 4 * var;
        g2[i] = r->grad_y_pred[i] * r->grad_y_pred[i];
    }
    out->loss = lambda * (2 * sqrt(cross) + bias + sqrt((double)no) * u * loss);

    /* gw2 = h_reluᵀ·g */
    matmul(H, Dout, N, t2, 1, H, vg, Dout, 1, q1); /* h_reluᵀ²·var(g) */
    matmul(H, Dout, N, vh, 1, H, g2, Dout, 1, q2); /* (σh²·[live])ᵀ·g² */
    matmul(H, Dout, N, t2, 1, H, g2, Dout, 1, q3); /* h_reluᵀ²·g² */
    double v2 = 0, nw2 = 0, ng2 = 0;
    for (size_t i = 0; i < ho; i++) {
        double own = u * sqrt((double)N) * (fabs(r->grad_w2[i]) + sqrt(q3[i])) / 2;
        v2 += q1[i] + q2[i] + own * own;
        nw2 += r->w2[i] * r->w2[i];
        ng2 += r->grad_w2[i] * r->grad_w2[i];
    }
    out->w2 = lambda * r->lr * sqrt(v2) + 2 * u * (sqrt(nw2) + r->lr * sqrt(ng2));

    /* gh = (g·w2ᵀ) ⊙ mask */
    matmul(N, H, Dout, r->grad_y_pred, Dout, 1, r->w2, 1, Dout, pre); /* g·w2ᵀ */
    matmul(N, H, Dout, vg, Dout, 1, sw2, 1, Dout, t1);                 /* var(g)·w2ᵀ² */
    matmul(N, H, Dout, g2, Dout, 1, sw2, 1, Dout, t2);                 /* g²·w2ᵀ² */
    for (size_t i = 0; i < nh; i++) {
        double own = u * sqrt((double)Dout) * (fabs(pre[i]) + sqrt(t2[i])) / 2;
        vh[i] = (live[i] ? t1[i] + own * own : 0.0) + (flip[i] ? pre[i] * pre[i] : 0.0);
        t2[i] = r->grad_h[i] * r->grad_h[i];
    }

    /* gw1 = xᵀ·gh */
    matmul(Din, H, N, sx, 1, Din, vh, H, 1, big);  /* xᵀ²·var(gh) */
    matmul(Din, H, N, sx, 1, Din, t2, H, 1, big2); /* xᵀ²·gh² */
    double v1 = 0, nw1 = 0, ng1 = 0;
    for (size_t i = 0; i < dh; i++) {
        double own = u * sqrt((double)N) * (fabs(r->grad_w1[i]) + sqrt(big2[i])) / 2;
        v1 += big[i] + own * own;
        nw1 += r->w1[i] * r->w1[i];
        ng1 += r->grad_w1[i] * r->grad_w1[i];
    }
    out->w1 = lambda * r->lr * sqrt(v1) + 2 * u * (sqrt(nw1) + r->lr * sqrt(ng1));
    rc = 0;
out:;
    void *bufs[] = {sx, sw2, big, big2, vh, pre, t1, t2, vg, g2, o1, o2, q1, q2, q3, live, flip};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    return rc;
}

/* One step; with spread, also float32's rounding spreads at the step's starting weights. */
static double step(fx_ref *r, double lambda, fx_ref_spread *spread)
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

    if (spread && rounding_spread(r, lambda, loss, spread))
        spread->loss = spread->w1 = spread->w2 = -1;

    /* w1 -= learning_rate * grad_w1; w2 -= learning_rate * grad_w2 */
    for (long i = 0; i < Din * H; i++)
        r->w1[i] -= r->lr * r->grad_w1[i];
    for (long i = 0; i < H * Dout; i++)
        r->w2[i] -= r->lr * r->grad_w2[i];
    return loss;
}

double fx_ref_step(fx_ref *r) { return step(r, 0, NULL); }

double fx_ref_step_spread(fx_ref *r, double lambda, fx_ref_spread *spread) { return step(r, lambda, spread); }

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
