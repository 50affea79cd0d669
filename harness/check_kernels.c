/* check_kernels.c — every kernel of a backend against the double-precision oracle.
 *
 * GEMM: NN, NT, TN × every epilogue × many shapes (1, primes, non-multiples of every block
 * size, the tutorial's shapes, dimensions ≥ 1024). Inputs are fresh per case; outputs are
 * poisoned with NaN (masks with 0xAA) first, so an element a kernel forgets to write fails.
 * Tolerance: an element may differ from the exact product by K·FLT_EPSILON·Σ|a||b| — twice
 * the worst-case bound of float summation in any order (γ_K ≈ K·u, u = FLT_EPSILON/2), so a
 * correct kernel cannot fail it, whatever its blocking or split-K, and a wrong one does. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "check.h"

/* M, N, K. The tutorial's GEMMs at 64x1000x100x10 are 64x100x1000 (x·w1), 64x10x100 (h·w2),
 * 100x10x64 (h_reluᵀ·g), 64x100x10 (g·w2ᵀ) and 1000x100x64 (xᵀ·gh). */
static const long shapes[][3] = {
    {1, 1, 1},       {1, 1, 7},      {7, 1, 1},       {1, 9, 1},      {2, 3, 4},
    {64, 2, 33}, /* narrow: the cpu backend's transposed TN path on every ISA (gemm.c, narrow_tn) */
    /* K of 2 and of 1 whole 16-wide tiles with N a multiple of 4: the cuda backend's cp.async
     * experiment (FIFTYX_SGEMM_CFG=large-async) at its shortest pipelines, also under --quick */
    {20, 36, 32},    {12, 8, 16},
    {7, 13, 29},     {13, 7, 31},    {17, 19, 23},    {31, 37, 41},   {61, 67, 71},
    {64, 100, 1000}, {64, 10, 100},  {100, 10, 64},   {64, 100, 10},  {1000, 100, 64},
    {33, 65, 17},    {127, 129, 67}, {255, 257, 3},   {5, 300, 511},  {300, 5, 257},
    {96, 96, 96},    {128, 128, 128}, {129, 127, 385}, {47, 513, 15},  {1, 1000, 33},
    {1000, 1, 33},   {65, 1, 1000},  {16, 16, 1},     {257, 31, 2},   {97, 211, 389},
    {1030, 40, 70},  {40, 1029, 50}, {50, 60, 1100},  {256, 256, 256}, {1024, 96, 48},
    {520, 260, 600}, /* large enough for the cpu backend's packed paths, K across two KC blocks */
    /* the transposed TN path at its edges: N = NR/4 and M = NR of AVX-512 (32x8), of AVX2 (16x4),
     * and K across two KC blocks (40x4x600) */
    {32, 8, 17},     {16, 4, 9},     {40, 4, 600},
};
static const int n_quick = 23; /* --quick: the first 23 */

static const char *const op_name[] = {"nn", "nt", "tn"};
static const char *const epi_name[] = {"store", "relu_mask", "mask", "sgd"};

typedef struct {
    double worst; /* largest |error| / tolerance seen */
    char why[200];
} verdict;

/* check.h: one output element of a GEMM with its epilogue against the exact product r. */
int fx_gemm_elem_check(fx_epilogue epi, double r, double tol, float c0, float lr, float c, int mask, int mask_in,
                       int exact, double *worst, char *why, size_t why_len, long i, long j)
{
    if (!isfinite(c)) {
        snprintf(why, why_len, "C[%ld,%ld] = %g (not finite)", i, j, c);
        return -1;
    }
    double want = r, err_tol = tol;
    switch (epi) {
    case FX_EPI_STORE:
        break;
    case FX_EPI_RELU_MASK:
        if (mask != 0 && mask != 1) {
            snprintf(why, why_len, "mask[%ld,%ld] = %d (never written)", i, j, mask);
            return -1;
        }
        /* exact (small-integer inputs, every sum exact in float): h == 0 must give mask 1 */
        if (exact ? mask != (r >= 0) : (r > tol && !mask) || (r < -tol && mask)) {
            snprintf(why, why_len, "mask[%ld,%ld] = %d for acc %g", i, j, mask, r);
            return -1;
        }
        if (!mask && c != 0.0f) {
            snprintf(why, why_len, "C[%ld,%ld] = %g where mask is 0", i, j, c);
            return -1;
        }
        want = r > 0 ? r : 0;
        break;
    case FX_EPI_MASK:
        if (!mask_in) {
            if (c != 0.0f) {
                snprintf(why, why_len, "C[%ld,%ld] = %g where masked out", i, j, c);
                return -1;
            }
            return 0;
        }
        break;
    case FX_EPI_SGD:
        want = (double)c0 - (double)lr * r;
        err_tol = lr * tol + 2.0 * FLT_EPSILON * (fabs(c0) + fabs(lr * r));
        break;
    }
    double err = fabs((double)c - want);
    err_tol += FLT_MIN;
    if (err / err_tol > *worst)
        *worst = err / err_tol;
    if (err > err_tol) {
        snprintf(why, why_len, "C[%ld,%ld] = %.9g, expected %.9g (|err| %.3g > tol %.3g)", i,
                 j, c, want, err, err_tol);
        return -1;
    }
    return 0;
}

/* One GEMM case; returns 0 on success, else fills v->why. */
static int gemm_case(const fx_backend *b, fx_op op, fx_epilogue epi, long m, long n, long k,
                     uint64_t seed, int exact, verdict *v)
{
    size_t mn = (size_t)(m * n);
    float *a = malloc((size_t)(m * k) * sizeof *a), *bm = malloc((size_t)(k * n) * sizeof *bm);
    float *c = malloc(mn * sizeof *c), *c0 = malloc(mn * sizeof *c0);
    uint8_t *mask = malloc(mn), *mask_in = malloc(mn);
    double *acc = malloc(mn * sizeof *acc), *abs = malloc(mn * sizeof *abs);
    int rc = -1;
    if (!a || !bm || !c || !c0 || !mask || !mask_in || !acc || !abs) {
        snprintf(v->why, sizeof v->why, "out of memory");
        goto done;
    }
    fx_rng r;
    fx_rng_seed(&r, seed);
    fx_rng_fill_normal(&r, a, (size_t)(m * k));
    fx_rng_fill_normal(&r, bm, (size_t)(k * n));
    fx_rng_fill_normal(&r, c0, mn);
    if (exact) /* entries −1, 0, 1: sums exact, and many exactly 0 (ReLU's tie) */
        for (size_t i = 0; i < (size_t)(m * k) || i < (size_t)(k * n); i++) {
            if (i < (size_t)(m * k))
                a[i] = (float)(int)(fx_rng_next(&r) % 3) - 1.0f;
            if (i < (size_t)(k * n))
                bm[i] = (float)(int)(fx_rng_next(&r) % 3) - 1.0f;
        }
    for (size_t i = 0; i < mn; i++) {
        mask_in[i] = fx_rng_next(&r) >> 63;
        mask[i] = epi == FX_EPI_MASK ? mask_in[i] : 0xAA;
        c[i] = epi == FX_EPI_SGD ? c0[i] : NAN;
    }
    const float lr = 0.5f;
    fx_gemm_args args = {op, epi, m, n, k, a, bm, c, mask, lr};
    fx_err e = {{0}};
    if (b->kernels->gemm(&args, &e)) {
        snprintf(v->why, sizeof v->why, "gemm failed: %s", e.msg);
        goto done;
    }
    fx_ref_gemm(op, m, n, k, a, bm, acc, abs);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            size_t x = (size_t)(i * n + j);
            double tol = (double)k * FLT_EPSILON * abs[x];
            if (fx_gemm_elem_check(epi, acc[x], tol, c0[x], lr, c[x], mask[x], mask_in[x], exact, &v->worst, v->why,
                                   sizeof v->why, i, j))
                goto done;
        }
    rc = 0;
done:
    free(a);
    free(bm);
    free(c);
    free(c0);
    free(mask);
    free(mask_in);
    free(acc);
    free(abs);
    return rc;
}

static void check_gemm(fx_check *c, const fx_backend *b)
{
    int nshapes = c->quick ? n_quick : (int)(sizeof shapes / sizeof shapes[0]);
    uint64_t seed = 1;
    for (int op = FX_NN; op <= FX_TN; op++)
        for (int epi = FX_EPI_STORE; epi <= FX_EPI_SGD; epi++) {
            char name[128];
            snprintf(name, sizeof name, "kernels/%s/gemm_%s_%s", b->name, op_name[op], epi_name[epi]);
            verdict v = {0, ""};
            int s;
            for (s = 0; s < nshapes; s++) {
                const long *sh = shapes[s];
                if (gemm_case(b, (fx_op)op, (fx_epilogue)epi, sh[0], sh[1], sh[2], seed++, 0, &v))
                    break;
            }
            if (s < nshapes)
                fx_report(c, FX_FAIL, name, "%ldx%ldx%ld: %s", shapes[s][0], shapes[s][1], shapes[s][2],
                          v.why);
            else
                fx_report(c, FX_PASS, name, "%d shapes, worst error %.2f of tolerance", nshapes, v.worst);
        }
    /* ReLU's tie: random normal inputs never sum to exactly 0, so the forward's mask at h == 0
     * (which must be 1: h == 0 passes the gradient) is checked with integer inputs */
    static const long tie_shapes[][3] = {{2, 3, 4}, {7, 13, 29}, {100, 10, 64}, {64, 100, 1000}, {520, 260, 600}};
    int nties = c->quick ? 3 : 5;
    for (int op = FX_NN; op <= FX_TN; op++) {
        char name[128];
        snprintf(name, sizeof name, "kernels/%s/gemm_%s_relu_mask_ties", b->name, op_name[op]);
        verdict v = {0, ""};
        int s;
        for (s = 0; s < nties; s++)
            if (gemm_case(b, (fx_op)op, FX_EPI_RELU_MASK, tie_shapes[s][0], tie_shapes[s][1], tie_shapes[s][2],
                          seed++, 1, &v))
                break;
        if (s < nties)
            fx_report(c, FX_FAIL, name, "%ldx%ldx%ld: %s", tie_shapes[s][0], tie_shapes[s][1], tie_shapes[s][2], v.why);
        else
            fx_report(c, FX_PASS, name, "%d shapes with exact zeros", nties);
    }
}

/* check.h: loss_grad's outputs g and loss for inputs yp, y. */
int fx_loss_grad_check(long n, const float *yp, const float *y, const float *g, double loss, int float_sum, char *why,
                       size_t why_len)
{
    double want = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)yp[i] - (double)y[i];
        want += d * d;
        if (!(fabs(g[i] - 2.0 * d) <= 2.0 * FLT_EPSILON * fabs(d) + FLT_MIN)) {
            snprintf(why, why_len, "n=%ld: g[%ld] = %.9g, expected %.9g", n, i, g[i], 2 * d);
            return -1;
        }
    }
    /* Summing in double (every backend but naive, which is the float port by design): each term
     * is d² of a float-rounded d, so the sum is within 2·FLT_EPSILON of the exact one whatever n;
     * a float accumulator's error grows with n and fails this at n = 100003. naive: float
     * summation's own bound. */
    double tol = (float_sum ? (double)(n + 2) : 3.0) * FLT_EPSILON * want;
    if (!(fabs(loss - want) <= tol)) {
        snprintf(why, why_len, "n=%ld: loss %.9g, expected %.9g (tol %.3g)", n, loss, want, tol);
        return -1;
    }
    return 0;
}

/* check.h: sgd's output w for the initial w0, g and lr. */
int fx_sgd_check(long n, const float *w0, const float *g, float lr, const float *w, char *why, size_t why_len)
{
    for (long i = 0; i < n; i++) {
        double want = (double)w0[i] - (double)lr * g[i];
        double tol = FLT_EPSILON * (fabs(w0[i]) + 2.0 * fabs(lr * g[i])) + FLT_MIN;
        if (!(fabs(w[i] - want) <= tol)) {
            snprintf(why, why_len, "n=%ld: w[%ld] = %.9g, expected %.9g", n, i, w[i], want);
            return -1;
        }
    }
    return 0;
}

static void check_loss_grad_sgd(fx_check *c, const fx_backend *b)
{
    static const long sizes[] = {1, 7, 640, 1000, 4097, 100003};
    int nsizes = c->quick ? 4 : 6;
    char name[128];
    for (int which = 0; which < 2; which++) {
        snprintf(name, sizeof name, "kernels/%s/%s", b->name, which ? "sgd" : "loss_grad");
        char why[200] = "";
        for (int s = 0; s < nsizes && !why[0]; s++) {
            long n = sizes[s];
            float *p = malloc((size_t)n * sizeof *p), *q = malloc((size_t)n * sizeof *q);
            float *out = malloc((size_t)n * sizeof *out);
            fx_rng r;
            fx_rng_seed(&r, 5000 + (uint64_t)s + 100 * (uint64_t)which);
            fx_err e = {{0}};
            if (!p || !q || !out) {
                snprintf(why, sizeof why, "out of memory");
            } else if (which == 0) {
                fx_rng_fill_normal(&r, p, (size_t)n);
                fx_rng_fill_normal(&r, q, (size_t)n);
                for (long i = 0; i < n; i++)
                    p[i] *= 30.0f, out[i] = NAN;
                double loss = NAN;
                if (b->kernels->loss_grad(n, p, q, out, &loss, &e))
                    snprintf(why, sizeof why, "n=%ld: %s", n, e.msg);
                else
                    fx_loss_grad_check(n, p, q, out, loss, !strcmp(b->name, "naive"), why, sizeof why);
            } else {
                fx_rng_fill_normal(&r, p, (size_t)n);
                fx_rng_fill_normal(&r, q, (size_t)n);
                const float lr = 0.5f;
                memcpy(out, p, (size_t)n * sizeof *out);
                if (b->kernels->sgd(n, out, q, lr, &e))
                    snprintf(why, sizeof why, "n=%ld: %s", n, e.msg);
                else
                    fx_sgd_check(n, p, q, lr, out, why, sizeof why);
            }
            free(p);
            free(q);
            free(out);
        }
        if (why[0])
            fx_report(c, FX_FAIL, name, "%s", why);
        else
            fx_report(c, FX_PASS, name, "%d sizes", nsizes);
    }
}

/* ---- negative controls: kernels with a known bug must fail these checks ---- */

static const fx_kernels *control_base; /* the naive backend's kernels, made wrong on purpose */

/* Forgets the last term of every sum (NN only): an error of |a·b| ≈ 1, several times the
 * tolerance at K = 1000 — a check whose tolerance went slack would let it through. */
static int control_drop_last_k(const fx_gemm_args *g, fx_err *e)
{
    if (control_base->gemm(g, e))
        return -1;
    for (long i = 0; i < g->m; i++)
        for (long j = 0; j < g->n; j++)
            g->c[i * g->n + j] -= g->a[i * g->k + g->k - 1] * g->b[(g->k - 1) * g->n + j];
    return 0;
}

/* Leaves the masked-out elements of C unwritten: only the NaN poisoning can see that. */
static int control_skip_masked(const fx_gemm_args *g, fx_err *e)
{
    size_t mn = (size_t)(g->m * g->n);
    float *tmp = malloc(mn * sizeof *tmp);
    if (!tmp)
        return fx_fail(e, "out of memory");
    fx_gemm_args t = *g;
    t.c = tmp;
    int rc = control_base->gemm(&t, e);
    for (size_t i = 0; !rc && i < mn; i++)
        if (g->mask[i])
            g->c[i] = tmp[i];
    free(tmp);
    return rc;
}

/* Updates nothing: an SGD kernel that forgot its work. */
static int control_sgd_noop(long n, float *w, const float *g, float lr, fx_err *e)
{
    (void)n, (void)w, (void)g, (void)lr, (void)e;
    return 0;
}

/* A loss 0.1% high: the kind of slip a reduction with a lost or doubled term makes. */
static int control_loss_high(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e)
{
    if (control_base->loss_grad(n, yp, y, g, loss, e))
        return -1;
    *loss *= 1.001;
    return 0;
}

/* Writes the loss on its first call only (as a reduction whose ticket is never reset would): the
 * timed calls leave a right loss behind, so only a poisoned loss before the checked call sees it. */
static int loss_once_calls;
static int control_loss_once(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e)
{
    double keep = *loss;
    if (control_base->loss_grad(n, yp, y, g, loss, e))
        return -1;
    if (loss_once_calls++)
        *loss = keep;
    return 0;
}

/* Applies the SGD epilogue's update twice (C −= 2·lr·acc); other epilogues as they are. */
static int control_sgd_twice(const fx_gemm_args *g, fx_err *e)
{
    if (g->epi != FX_EPI_SGD)
        return control_base->gemm(g, e);
    fx_gemm_args t = *g;
    t.lr = 2 * g->lr;
    return control_base->gemm(&t, e);
}

/* Leaves the last row of C as it was under the SGD epilogue (an edge tile never written): the
 * weights start finite, so only the "every weight moved" rule sees it, not 64 samples of 1,000. */
static int control_sgd_last_row_kept(const fx_gemm_args *g, fx_err *e)
{
    if (g->epi != FX_EPI_SGD)
        return control_base->gemm(g, e);
    float keep[64];
    long n = g->n < 64 ? g->n : 64;
    memcpy(keep, g->c + (g->m - 1) * g->n, (size_t)n * sizeof *keep);
    if (control_base->gemm(g, e))
        return -1;
    memcpy(g->c + (g->m - 1) * g->n, keep, (size_t)n * sizeof *keep);
    return 0;
}

/* The kernels suite of bench validates each kernel after timing: the same kinds of wrong kernels
 * must come out not validated there (and the naive kernels validated). */
static void check_bench_controls(fx_check *c, const fx_backend *naive)
{
    static fx_kernels drop, skip, noop, high, twice, lastrow, once;
    drop = skip = noop = high = twice = lastrow = once = *naive->kernels;
    once.loss_grad = control_loss_once;
    drop.gemm = control_drop_last_k;
    skip.gemm = control_skip_masked;
    noop.sgd = control_sgd_noop;
    high.loss_grad = control_loss_high;
    twice.gemm = control_sgd_twice;
    lastrow.gemm = control_sgd_last_row_kept;
    static const struct {
        const char *name;
        const fx_kernels *k;
        int kernel; /* bench's kernel index: 0 h_relu, 2 loss_grad, 3 gh, 4 w2_update, 6 sgd_w1 */
    } cases[] = {
        {"last_k_dropped", &drop, 0}, {"masked_unwritten", &skip, 3}, {"sgd_noop", &noop, 6},
        {"loss_high", &high, 2},      {"sgd_twice", &twice, 4},         {"sgd_row_unwritten", &lastrow, 4},
        {"loss_written_once", &once, 2},
    };
    const fx_size tut = {64, 1000, 100, 10};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_backend bad = *naive;
        bad.kernels = cases[i].k;
        fx_bench_row row;
        char name[96];
        snprintf(name, sizeof name, "kernels/bench_control_%s", cases[i].name);
        if (fx_bench_kernel_row(&bad, tut, cases[i].kernel, &row))
            fx_report(c, FX_FAIL, name, "the case did not run: %s", row.note);
        else
            fx_report(c, row.validated ? FX_FAIL : FX_PASS, name, row.validated ? "bench validated a wrong %s" : "%.150s",
                      row.validated ? row.kernel : row.validation);
    }
    /* and the right kernels pass the same validation, every one of the seven */
    int k, ok = 1;
    fx_bench_row row = {0};
    for (k = 0; k < 7 && ok; k++)
        ok = fx_bench_kernel_row(naive, tut, k, &row) == 0 && row.validated;
    fx_report(c, ok ? FX_PASS : FX_FAIL, "kernels/bench_validates_naive",
              ok ? NULL : "%s: %s %s", row.kernel ? row.kernel : "?", row.note, row.validation);
}

static void check_negative_controls(fx_check *c)
{
    const fx_backend *naive = fx_backend_find("naive");
    if (!naive || !naive->kernels) {
        fx_report(c, FX_SKIP, "kernels/negative_controls", "no naive backend in this build");
        return;
    }
    control_base = naive->kernels;
    static fx_kernels drop, skip;
    drop = skip = *naive->kernels;
    drop.gemm = control_drop_last_k;
    skip.gemm = control_skip_masked;
    fx_backend bd = *naive, bs = *naive;
    bd.kernels = &drop;
    bs.kernels = &skip;
    verdict v = {0, ""};
    int caught = gemm_case(&bd, FX_NN, FX_EPI_STORE, 64, 100, 1000, 77, 0, &v) != 0;
    fx_report(c, caught ? FX_PASS : FX_FAIL, "kernels/negative_control_last_k_dropped",
              caught ? NULL : "a GEMM that drops the last K term passed (worst error %.2f of tolerance)", v.worst);
    v = (verdict){0, ""};
    caught = gemm_case(&bs, FX_NN, FX_EPI_MASK, 61, 67, 71, 78, 0, &v) != 0 && strstr(v.why, "not finite");
    fx_report(c, caught ? FX_PASS : FX_FAIL, "kernels/negative_control_masked_unwritten",
              caught ? NULL : "a GEMM that leaves masked-out C unwritten passed (%s)", v.why);
    check_bench_controls(c, naive);
}

/* The GEMM benchmark hooks (fx_gemm_bench), as bench drives them: one product per run() call, so
 * the rotation over operand sets must go on from call to call (a rotation that restarted at set 0
 * in every call times one hot set). Three sets, three calls of one iteration: every set's C must
 * then be its own product (each C starts NaN), checked element by element. */
static void check_gemm_bench(fx_check *c, const fx_backend *b)
{
    enum { SETS = 3 };
    const long m = 37, n = 29, k = 23;
    char name[128];
    snprintf(name, sizeof name, "kernels/%s/gemm_bench_rotates_sets", b->name);
    float *a[SETS] = {0}, *bb[SETS] = {0}, *cc = malloc((size_t)(m * n) * sizeof *cc);
    int ok = cc != NULL;
    for (int s = 0; s < SETS && ok; s++) {
        ok = (a[s] = malloc((size_t)(m * k) * sizeof(float))) && (bb[s] = malloc((size_t)(k * n) * sizeof(float)));
        if (ok) {
            fx_rng r;
            fx_rng_seed(&r, 900 + (uint64_t)s);
            fx_rng_fill_normal(&r, a[s], (size_t)(m * k));
            fx_rng_fill_normal(&r, bb[s], (size_t)(k * n));
        }
    }
    fx_err e = {{0}};
    void *h = NULL;
    char why[200] = "";
    if (!ok)
        snprintf(why, sizeof why, "out of memory");
    else if (b->gemm_bench->create(FX_NN, m, n, k, SETS, (const float *const *)a, (const float *const *)bb, &h, &e))
        snprintf(why, sizeof why, "create: %s", e.msg);
    for (int call = 0; h && !*why && call < SETS; call++) {
        double secs;
        if (b->gemm_bench->run(h, 1, &secs, &e))
            snprintf(why, sizeof why, "run: %s", e.msg);
    }
    for (int s = 0; h && !*why && s < SETS; s++) {
        if (b->gemm_bench->result(h, s, cc, &e)) {
            snprintf(why, sizeof why, "result: %s", e.msg);
            break;
        }
        for (long i = 0; i < m && !*why; i++)
            for (long j = 0; j < n && !*why; j++) {
                double acc, abs;
                fx_ref_gemm_at(FX_NN, m, n, k, a[s], bb[s], i, j, &acc, &abs);
                float got = cc[i * n + j];
                if (!(fabs(got - acc) <= k * FLT_EPSILON * abs + FLT_MIN))
                    snprintf(why, sizeof why, "after %d one-product calls, set %d: C[%ld][%ld] = %g, expected %g",
                             SETS, s, i, j, got, acc);
            }
    }
    if (h)
        b->gemm_bench->destroy(h);
    for (int s = 0; s < SETS; s++) {
        free(a[s]);
        free(bb[s]);
    }
    free(cc);
    if (*why)
        fx_report(c, FX_FAIL, name, "%s", why);
    else
        fx_report(c, FX_PASS, name, "%d sets, one product per call", SETS);
}

void fx_check_kernels(fx_check *c, const fx_backend *b)
{
    static int controls_done;
    if (!controls_done++)
        check_negative_controls(c);
    if (!b->kernels) /* the reference is the oracle itself */
        return;
    check_gemm(c, b);
    check_loss_grad_sgd(c, b);
    if (b->gemm_bench)
        check_gemm_bench(c, b);
}
