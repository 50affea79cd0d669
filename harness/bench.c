/* bench.c — `fiftyx bench`: sweeps sizes over the backends, validates and times each case, and
 * gives the verdict on "50x": the best GPU time per size against the naive loop, the best CPU
 * code on one thread and the best CPU code on all cores. Timing policy: timing.h. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "atomic_file.h"
#include "bench.h"
#include "check.h"
#include "cli.h"
#include "harness.h"

/* The step ladder, each rung with its reason. lr = min(1e-6, 6.4/(N·H·D_in)) keeps SGD stable at
 * every size: above the tutorial the curvature along w2 grows like N·H·D_in, and the rule gives
 * exactly the tutorial's 1e-6 at its size; below it the tutorial's rate is already stable (the
 * unclamped rule diverged at 7x5x3x2). */
static const struct {
    const char *size, *why;
} step_ladder[] = {
    {"64x1000x100x10", "the tutorial itself: 26 MFLOP/step, latency-bound on a GPU"},
    {"256x1000x100x10", "the tutorial at 4x the batch: still tiny for a GPU"},
    {"256x4096x1024x256", "a small MLP: ~4.7 GFLOP/step, where a GPU starts to fill"},
    {"1024x4096x4096x1024", "a mid-size MLP: ~94 GFLOP/step, compute-bound on both sides"},
    {"4096x8192x8192x1024", "~1.3 TFLOP/step: the GPU fully used, the CPU for seconds"},
};
static const char *const gemm_ladder[] = {
    "256", "512", "1024", "2048", "4096", "8192",
    /* the tutorial's five GEMMs at 64x1000x100x10 */
    "64x100x1000:nn", "64x10x100:nn", "100x10x64:tn", "64x100x10:nt", "1000x100x64:tn",
};
static const char *const quick_step[] = {"64x1000x100x10", "256x1000x100x10"};
static const char *const quick_gemm[] = {"256", "512", "64x100x1000:nn"};

/* The kernels suite: the step's kernels one at a time, each called as fiftyx.h's interface
 * defines it (a backend's own step may run them in another layout, cpu's transposed one, or
 * fused, cuda's middle kernel). The first six are the step; sgd_w1 is the weight update as a pass
 * of its own, what fusing it into the GEMM saves. Default sizes: the tutorial (latency-bound on a
 * GPU) and the small MLP where a GPU starts to fill; larger rungs are the GEMM suite's ground. */
enum { K_H_RELU, K_Y_PRED, K_LOSS_GRAD, K_GH, K_W2_UPDATE, K_W1_UPDATE, K_SGD_W1, K_COUNT, K_STEP = K_W1_UPDATE + 1 };
static const struct {
    const char *name, *what;
} kernel_list[K_COUNT] = {
    {"h_relu", "h_relu, mask = relu(x·w1): NN, RELU_MASK epilogue, N×H, K = D_in"},
    {"y_pred", "y_pred = h_relu·w2: NN, N×D_out, K = H"},
    {"loss_grad", "loss, g = Σ(y_pred − y)², 2(y_pred − y) in one pass over N·D_out elements"},
    {"gh", "gh = (g·w2ᵀ) ⊙ mask: NT, MASK epilogue, N×H, K = D_out"},
    {"w2_update", "w2 −= lr·h_reluᵀ·g: TN, SGD epilogue, H×D_out, K = N"},
    {"w1_update", "w1 −= lr·xᵀ·gh: TN, SGD epilogue, D_in×H, K = N"},
    {"sgd_w1", "w1 −= lr·gw1 as a pass of its own over D_in·H elements (what the fused update saves)"},
};
static const char *const kernel_sizes[] = {"64x1000x100x10", "256x4096x1024x256"};
static const char *const quick_kernels[] = {"64x1000x100x10"};

#define MAX_SIZES 64
#define LOSS_RTOL 1e-3
/* the step after timing: each weight update within this of the reference's (relative, Frobenius)
 * plus rounding's spread, the spreads at λ standard deviations (ref_loop.c), and the cost of the
 * reference's step with its spreads, in steps (3 more N×D_in×H products: ~1.5 steps more) */
#define UPDATE_RTOL 1e-3
#define NEXT_STEP_LAMBDA 4.0
#define NEXT_STEP_COST 2.5

static const char usage[] =
    "usage: fiftyx bench [--suite step|gemm|kernels|all] [--backend B,...] [--size LIST] [--threads T]\n"
    "                    [--out FILE] [--budget SECONDS] [--rounds R] [--quick]\n"
    "  Times the training step (suite step), GEMM (suite gemm) and the step's kernels one at a time\n"
    "  (suite kernels) of every backend across sizes, validates each result, and prints a table and\n"
    "  the verdict on the GPU's \"50x\".\n"
    "  --suite    default all (step, gemm and kernels)\n"
    "  --backend  default: every backend built and usable here except the reference (and naive in the\n"
    "             kernels suite)\n"
    "  --size     comma-separated; NxD_INxHxD_OUT for step and kernels, S (square) or MxNxK[:nn|nt|tn]\n"
    "             for gemm\n"
    "             default step: 64x1000x100x10,256x1000x100x10,256x4096x1024x256,\n"
    "                           1024x4096x4096x1024,4096x8192x8192x1024\n"
    "             default gemm: 256...8192 square and the tutorial's five GEMMs\n"
    "             default kernels: 64x1000x100x10,256x4096x1024x256 (a step size names the kernels' shapes)\n"
    "  --threads  CPU thread count (default: 1 and all cores)\n"
    "  --out      results file (default results/<host>-<cpu>-<cores>c[-<gpu>]-<UTC time>.json), written atomically\n"
    "  --budget   seconds per case (default 30); a case predicted to exceed it is skipped\n"
    "  --rounds   1 to 20 (default 3): each size's cases (every backend and thread count) timed in turn R\n"
    "             times, each round with 1/R of the time; a row reports the median of its rounds'\n"
    "             medians, so that a machine whose speed drifts over minutes slows every row alike\n"
    "             (a case whose iterations are too long for R rounds in its budget takes one)\n"
    "  --quick    a smoke sweep: two step sizes, three GEMMs, the tutorial's kernels, short timings\n";

/* ---- sizes ---------------------------------------------------------------------------- */

static int count_x(const char *s)
{
    int n = 0;
    for (; *s && *s != ':'; s++)
        n += *s == 'x';
    return n;
}

/* "2048" → 2048³ NN; "MxNxK" → NN; "MxNxK:tn" → TN. */
static int parse_gemm(const char *s, long *m, long *n, long *k, fx_op *op, char *canon, size_t len)
{
    char buf[64], *colon;
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    *op = FX_NN;
    if ((colon = strchr(buf, ':'))) {
        *colon = 0;
        if (!strcmp(colon + 1, "nn"))
            *op = FX_NN;
        else if (!strcmp(colon + 1, "nt"))
            *op = FX_NT;
        else if (!strcmp(colon + 1, "tn"))
            *op = FX_TN;
        else
            return -1;
    }
    long d[3];
    int nd = 0;
    for (char *tok = buf, *x; nd < 3; tok = x + 1) {
        x = strchr(tok, 'x');
        if (x)
            *x = 0;
        if (fx_parse_long(tok, 1, FX_MAX_DIM, &d[nd++]))
            return -1;
        if (!x)
            break;
        if (nd == 3)
            return -1;
    }
    if (nd == 1)
        d[1] = d[2] = d[0];
    else if (nd != 3)
        return -1;
    if (d[0] * d[2] > FX_MAX_ELEMS || d[2] * d[1] > FX_MAX_ELEMS || d[0] * d[1] > FX_MAX_ELEMS)
        return -1;
    *m = d[0], *n = d[1], *k = d[2];
    static const char *const opn[] = {"", ":nt", ":tn"};
    snprintf(canon, len, "%ldx%ldx%ld%s", *m, *n, *k, opn[*op]);
    return 0;
}

/* ---- the cases ------------------------------------------------------------------------- */

typedef struct {
    fx_bench_run *run;
    const char *out_path;
    fx_timing_policy policy;
    double ref_gflops; /* measured rate of the double reference, for its cost estimates */
    int last_round;    /* the row's last round: the step after timing is checked in this one */
} bench_ctx;

/* The reference's first two losses at a step size, computed at most once per size. */
typedef struct {
    char size[64];
    int state; /* 0 unknown, 1 computed, -1 too costly */
    double loss[2];
} ref_losses;
static ref_losses ref_cache[MAX_SIZES];

static void fill_init(fx_init *init, fx_size s, fx_err *e, int *ok)
{
    /* The tutorial size starts from the tutorial's own tensors, like the PyTorch script. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/reference/data/tutorial", fx_source_dir());
    fx_size tut = FX_TUTORIAL_SIZE;
    if (!memcmp(&s, &tut, sizeof s)) {
        fx_err why;
        if (fx_init_load(init, dir, &why) == 0) {
            *ok = 1;
            return;
        }
        static int told;
        if (!told++)
            fprintf(stderr, "fiftyx: bench: warning: %s; the tutorial size starts from seeded random tensors "
                    "instead (set FIFTYX_SOURCE_DIR to the source tree)\n", why.msg);
    }
    *ok = fx_init_random(init, s, 0, e) == 0;
}

static const ref_losses *reference_losses(bench_ctx *bc, const fx_bench_row *row, const fx_init *init)
{
    ref_losses *r = NULL;
    for (int i = 0; i < MAX_SIZES; i++)
        if (!ref_cache[i].size[0] || !strcmp(ref_cache[i].size, row->size)) {
            r = &ref_cache[i];
            break;
        }
    if (!r)
        return NULL;
    if (r->state)
        return r->state > 0 ? r : NULL;
    snprintf(r->size, sizeof r->size, "%s", row->size);
    if (bc->ref_gflops <= 0 || 2.0 * row->flops / (bc->ref_gflops * 1e9) > bc->run->budget) {
        r->state = -1;
        return NULL;
    }
    fx_ref *ref;
    fx_tensors t = fx_init_view(init);
    if (fx_ref_create(&ref, row->ss, row->lr, &t, NULL)) {
        r->state = -1;
        return NULL;
    }
    double t0 = fx_wall_seconds();
    r->loss[0] = fx_ref_step(ref);
    r->loss[1] = fx_ref_step(ref);
    double rate = 2.0 * row->flops / (fx_wall_seconds() - t0) * 1e-9;
    bc->ref_gflops = rate > bc->ref_gflops ? rate : bc->ref_gflops;
    fx_ref_destroy(ref);
    r->state = 1;
    return r;
}

/* Step suite: one timed "iteration" is one training step; the state trains on throughout. */
typedef struct {
    const fx_backend *b;
    void *state;
    double *losses;
    long cap;
    int calls;
    double first_losses[2];
    int n_first;
    int nonfinite;
} step_ctx;

static int step_fn(void *p, long iters, double *seconds, fx_err *e)
{
    step_ctx *s = p;
    if (iters > s->cap)
        return fx_fail(e, "internal: %ld steps exceed the loss buffer", iters);
    if (s->b->run(s->state, (int)iters, s->losses, seconds, e))
        return -1;
    for (long i = 0; i < iters; i++) {
        if (!isfinite(s->losses[i]))
            s->nonfinite++;
        if (s->n_first < 2)
            s->first_losses[s->n_first++] = s->losses[i];
    }
    return 0;
}

/* |x - ref| / |ref|, NaN when either is NaN */
static double rel_err(double x, double ref) { return fabs(x - ref) / fabs(ref); }

/* The larger of two errors, NaN if the first is (a NaN must never validate) */
static double worse(double e0, double e1) { return isnan(e0) || e0 > e1 ? e0 : e1; }

/* ‖a − b‖ (Frobenius; a float32, b double) and ‖b − a0‖ (a0 float32: the update's size) */
static void frob(const float *a, const double *b, const float *a0, size_t n, double *diff, double *step)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        s += (b[i] - a0[i]) * (b[i] - a0[i]);
    }
    *diff = sqrt(d);
    *step = sqrt(s);
}

/* err over allowed, 0 when both are 0 (an exact match), NaN when err is */
static double ratio(double err, double allowed) { return err == 0 ? 0 : err / allowed; }

int fx_bench_check_next_step(const fx_backend *b, void *state, const fx_problem *p, const float *x,
                             const float *y, double *over, char *why, size_t len, fx_err *e)
{
    size_t n1 = (size_t)(p->size.d_in * p->size.h), n2 = (size_t)(p->size.h * p->size.d_out);
    float *w1 = malloc(n1 * sizeof *w1), *w2 = malloc(n2 * sizeof *w2);
    float *w1n = malloc(n1 * sizeof *w1n), *w2n = malloc(n2 * sizeof *w2n);
    fx_ref *ref = NULL;
    int rc = -1;
    why[0] = 0;
    *over = NAN;
    if (!w1 || !w2 || !w1n || !w2n) {
        fx_fail(e, "out of memory");
        goto out;
    }
    if (b->read_weights(state, w1, w2, e)) {
        snprintf(why, len, "the backend failed: %.150s", e->msg);
        rc = 0;
        goto out;
    }
    fx_tensors t = {x, y, w1, w2};
    if (fx_ref_create(&ref, p->size, p->lr, &t, e))
        goto out;
    fx_ref_spread sp;
    double loss_ref = fx_ref_step_spread(ref, NEXT_STEP_LAMBDA, &sp), loss;
    if (sp.loss < 0) {
        fx_fail(e, "out of memory for the reference's rounding spreads");
        goto out;
    }
    if (b->run(state, 1, &loss, NULL, e) || b->read_weights(state, w1n, w2n, e)) {
        snprintf(why, len, "the backend failed: %.150s", e->msg); /* its fault, not the check's */
        rc = 0;
        goto out;
    }
    /* the loss; each update against the reference's: 1e-3 of its size plus rounding's spread */
    double d1, s1, d2, s2;
    frob(w1n, fx_ref_w1(ref), w1, n1, &d1, &s1);
    frob(w2n, fx_ref_w2(ref), w2, n2, &d2, &s2);
    double dl = fabs(loss - loss_ref), al = LOSS_RTOL * loss_ref + sp.loss;
    double a1 = UPDATE_RTOL * s1 + sp.w1, a2 = UPDATE_RTOL * s2 + sp.w2;
    *over = worse(ratio(dl, al), worse(ratio(d1, a1), ratio(d2, a2)));
    if (!(dl <= al))
        snprintf(why, len, "loss %.9g, reference %.9g: off by %.3g, allowed %.3g", loss, loss_ref, dl, al);
    else if (!(d1 <= a1) || !(d2 <= a2))
        snprintf(why, len, "updates off by %.3g (w1), %.3g (w2), allowed %.3g, %.3g (updates %.3g, %.3g)", d1, d2,
                 a1, a2, s1, s2);
    rc = 0;
out:
    fx_ref_destroy(ref);
    free(w1);
    free(w2);
    free(w1n);
    free(w2n);
    return rc;
}

/* Inputs kept from one row to the next (release_inputs() at the end of each size's rows): the
 * step's initial tensors and the GEMM's operand sets, drawn once per size rather than once per
 * row and round (their normals took ~1.5 s a time at 4096x8192x8192x1024 and at 4096³). Small
 * ones (a cost probe's) are drawn each time and leave the kept ones alone. */
#define KEEP_ELEMS (1L << 20)
static struct {
    int have;
    fx_init init;
} kept_init;
static struct {
    long m, n, k;
    int nsets;
    float **a, **b;
} kept_gemm;

static void release_inputs(void)
{
    if (kept_init.have)
        fx_init_free(&kept_init.init);
    kept_init.have = 0;
    for (int s = 0; s < kept_gemm.nsets; s++) {
        free(kept_gemm.a[s]);
        free(kept_gemm.b[s]);
    }
    free(kept_gemm.a);
    free(kept_gemm.b);
    memset(&kept_gemm, 0, sizeof kept_gemm);
}

/* The initial tensors at size s: *init, to be given back with put_init. */
static int get_init(fx_init *init, fx_size s, fx_err *e)
{
    double elems = (double)s.n * (double)(s.d_in + s.d_out) + (double)s.h * (double)(s.d_in + s.d_out);
    if (elems < KEEP_ELEMS) {
        int ok;
        fill_init(init, s, e, &ok);
        return ok ? 0 : -1;
    }
    if (!kept_init.have || memcmp(&kept_init.init.size, &s, sizeof s)) {
        int ok;
        if (kept_init.have)
            fx_init_free(&kept_init.init);
        kept_init.have = 0;
        fill_init(&kept_init.init, s, e, &ok);
        if (!ok)
            return -1;
        kept_init.have = 1;
    }
    *init = kept_init.init;
    return 0;
}

static void put_init(fx_init *init)
{
    if (!kept_init.have || init->x != kept_init.init.x)
        fx_init_free(init);
}

static void run_step_row(bench_ctx *bc, fx_bench_row *row)
{
    fx_err e = {{0}};
    row->after_timing = NAN;
    fx_init init;
    if (get_init(&init, row->ss, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "inputs: %s", e.msg);
        return;
    }
    fx_problem p = {row->ss, (float)row->lr, row->sync_every_step};
    fx_tensors t = fx_init_view(&init);
    step_ctx s = {row->b, NULL, NULL, bc->policy.max_iters, 0, {0, 0}, 0, 0};
    s.losses = malloc((size_t)s.cap * sizeof *s.losses);
    if (!s.losses || row->b->create(&p, &t, &s.state, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "create: %s", s.losses ? e.msg : "out of memory");
        free(s.losses);
        put_init(&init);
        return;
    }
    if (fx_time_case(step_fn, &s, &bc->policy, &row->t, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "run: %s", e.msg);
    } else {
        row->status = FX_ROW_RAN;
        row->have_loss = s.n_first == 2;
        row->loss[0] = s.first_losses[0];
        row->loss[1] = s.first_losses[1];
        /* after timing: every loss finite, the weights finite, the first losses right */
        size_t n1 = (size_t)(row->ss.d_in * row->ss.h), n2 = (size_t)(row->ss.h * row->ss.d_out);
        float *w1 = malloc(n1 * sizeof *w1), *w2 = malloc(n2 * sizeof *w2);
        int finite = !s.nonfinite && w1 && w2 && row->b->read_weights(s.state, w1, w2, &e) == 0;
        for (size_t i = 0; finite && i < n1; i++)
            finite = isfinite(w1[i]);
        for (size_t i = 0; finite && i < n2; i++)
            finite = isfinite(w2[i]);
        free(w1);
        free(w2);
        const ref_losses *ref = finite && row->have_loss ? reference_losses(bc, row, &init) : NULL;
        if (!finite) {
            snprintf(row->validation, sizeof row->validation, "non-finite losses or weights");
        } else if (ref) {
            row->max_rel_err = worse(rel_err(row->loss[0], ref->loss[0]), rel_err(row->loss[1], ref->loss[1]));
            row->validated = row->max_rel_err <= LOSS_RTOL;
            snprintf(row->validation, sizeof row->validation, "reference: first 2 losses");
            /* and the timed code's last state: one more step of the backend against the
             * reference's from the same weights, where that costs under a tenth of the budget
             * (not for a cost probe, probe_rate's: it is not a result) */
            double cost = row->t.median + NEXT_STEP_COST * row->flops / (bc->ref_gflops * 1e9);
            char why[200];
            if (!row->validated || !strcmp(row->size, "probe")) {
            } else if (!bc->last_round) { /* --rounds: checked once, after the row's last round */
                snprintf(row->validation, sizeof row->validation,
                         "reference: first 2 losses (the step after timing: in the last round)");
            } else if (cost > bc->run->budget / 10) {
                snprintf(row->validation, sizeof row->validation,
                         "reference: first 2 losses (the step after timing not checked: ~%.0f s)", cost);
            } else if (fx_bench_check_next_step(row->b, s.state, &p, init.x, init.y, &row->after_timing, why, sizeof why, &e)) {
                /* could not run (out of memory, a device error): not a wrong result, but unproven */
                snprintf(row->validation, sizeof row->validation,
                         "reference: first 2 losses (the step after timing could not run: %.120s)", e.msg);
            } else if (why[0]) {
                row->validated = 0;
                snprintf(row->validation, sizeof row->validation, "the step after timing: %s", why);
            } else {
                snprintf(row->validation, sizeof row->validation, "reference: first 2 losses and the step after timing");
            }
        } else {
            snprintf(row->validation, sizeof row->validation, "%s", FX_PENDING_AGREEMENT);
        }
    }
    row->b->destroy(s.state);
    free(s.losses);
    put_init(&init);
}

/* The code a backend's losses come from: backends of one family share it (cpu and its forced-ISA
 * variants share the step and the loop nest; cuda, cublas and cuda-persistent the loss and SGD
 * kernels), so their agreement proves little. */
static const char *family(const fx_backend *b) { return b->family ? b->family : b->name; }

/* Whether row q may vote on row r's losses: a step row of another family at r's size that ran
 * and has finite first losses. */
static int can_vote(const fx_bench_row *q, const fx_bench_row *r)
{
    return q->suite == FX_SUITE_STEP && q->status == FX_ROW_RAN && q->have_loss && !strcmp(q->size, r->size) &&
           strcmp(family(q->b), family(r->b)) && isfinite(q->loss[0]) && isfinite(q->loss[1]);
}

/* bench.h. Where the reference was too costly: a row's first two losses (the forward pass, then
 * the forward pass after one backward and update) are put to a vote of one row per family at
 * that size — the row itself for its own family, the first voting row of each other family —
 * and the row is validated when, with at least one other family there, more than half of the
 * votes agree with it within LOSS_RTOL on both losses (three families, one wrong: the two right
 * ones pass, the wrong one fails; two that disagree: neither passes). */
void fx_bench_validate_by_agreement(fx_bench_run *run)
{
    for (int i = 0; i < run->nrows; i++) {
        fx_bench_row *r = &run->rows[i];
        if (r->suite != FX_SUITE_STEP || r->status != FX_ROW_RAN || strcmp(r->validation, FX_PENDING_AGREEMENT))
            continue;
        int others = 0, agree = 0;
        double worst_agreeing = 0;
        for (int j = 0; j < run->nrows; j++) {
            const fx_bench_row *q = &run->rows[j];
            int first = can_vote(q, r); /* and its family has not voted yet */
            for (int k = 0; k < j && first; k++)
                first = !(can_vote(&run->rows[k], r) && !strcmp(family(run->rows[k].b), family(q->b)));
            if (!first)
                continue;
            others++;
            double e0 = rel_err(r->loss[0], q->loss[0]), e1 = rel_err(r->loss[1], q->loss[1]);
            double e = worse(e0, e1);
            if (e <= LOSS_RTOL) {
                agree++;
                worst_agreeing = e > worst_agreeing ? e : worst_agreeing;
            }
        }
        if (others < 1) {
            snprintf(r->validation, sizeof r->validation,
                     "not validated: the reference is over budget here and no other backend family ran");
            continue;
        }
        r->validated = 2 * (1 + agree) > 1 + others;
        r->max_rel_err = r->validated ? worst_agreeing : NAN;
        snprintf(r->validation, sizeof r->validation,
                 "agreement: first 2 losses agree with %d of %d other backend famil%s", agree, others,
                 others > 1 ? "ies" : "y");
    }
}

/* GEMM suite: one iteration is one product; nsets operand sets rotate so that a product whose
 * operands fit in the last-level cache does not find them hot from the previous one. */
typedef struct {
    const fx_gemm_bench *g;
    void *h;
} gemm_ctx;

static int gemm_fn(void *p, long iters, double *seconds, fx_err *e)
{
    gemm_ctx *c = p;
    return c->g->run(c->h, iters, seconds, e);
}

/* The s-th element of C that a benchmark checks after timing: the four corners first, then random. */
static void sample_at(int s, long m, long n, fx_rng *r, long *i, long *j)
{
    *i = s == 0 || s == 1 ? 0 : s == 2 || s == 3 ? m - 1 : (long)(fx_rng_uniform(r) * m);
    *j = s == 0 || s == 2 ? 0 : s == 1 || s == 3 ? n - 1 : (long)(fx_rng_uniform(r) * n);
}

static void run_gemm_row(bench_ctx *bc, fx_bench_row *row)
{
    fx_bench_run *run = bc->run;
    double footprint = 4.0 * (double)(row->m * row->k + row->k * row->n + row->m * row->n);
    double cache = row->b->device == FX_GPU ? run->gpu.l2_kib * 1024.0
                                            : (double)run->topo.l3_bytes * (run->topo.l3_instances > 0 ? run->topo.l3_instances : 1);
    int nsets = (int)ceil(2.0 * cache / footprint);
    nsets = nsets < 1 ? 1 : nsets > 64 ? 64 : nsets;
    while (nsets > 1 && nsets * footprint > 2e9)
        nsets--;
    long asz = row->m * row->k, bsz = row->k * row->n;
    /* operand sets kept for the next row at this shape (release_inputs), unless small */
    int keep = (double)(asz + bsz) * nsets >= KEEP_ELEMS && strcmp(row->size, "probe");
    if (keep && !(kept_gemm.a && kept_gemm.m == row->m && kept_gemm.n == row->n && kept_gemm.k == row->k &&
                  kept_gemm.nsets >= nsets)) /* a GPU's rows may rotate fewer sets than a CPU's: the first ones */
        release_inputs();
    int fresh = !keep || !kept_gemm.a;
    float **a = fresh ? calloc((size_t)nsets, sizeof *a) : kept_gemm.a;
    float **b = fresh ? calloc((size_t)nsets, sizeof *b) : kept_gemm.b;
    float *c = malloc((size_t)(row->m * row->n) * sizeof *c);
    fx_err e = {{0}};
    gemm_ctx gc = {row->b->gemm_bench, NULL};
    int ok = a && b && c;
    for (int s = 0; ok && fresh && s < nsets; s++) {
        a[s] = malloc((size_t)asz * sizeof(float));
        b[s] = malloc((size_t)bsz * sizeof(float));
        ok = a[s] && b[s];
        if (ok) {
            fx_rng r;
            fx_rng_seed(&r, 77 + (uint64_t)s);
            fx_rng_fill_normal(&r, a[s], (size_t)asz);
            fx_rng_fill_normal(&r, b[s], (size_t)bsz);
        }
    }
    if (ok && keep && fresh) {
        kept_gemm = (typeof(kept_gemm)){row->m, row->n, row->k, nsets, a, b};
        fresh = 0; /* now the kept sets: not freed below */
    }
    if (!ok) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "out of memory for %d operand sets", nsets);
    } else if (gc.g->create(row->op, row->m, row->n, row->k, nsets, (const float *const *)a,
                            (const float *const *)b, &gc.h, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "create: %s", e.msg);
        gc.h = NULL;
    } else if (fx_time_case(gemm_fn, &gc, &bc->policy, &row->t, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "run: %s", e.msg);
    } else if (gc.g->result(gc.h, 0, c, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "result: %s", e.msg);
    } else {
        /* after timing: 64 sampled elements (corners included) against the double oracle */
        row->status = FX_ROW_RAN;
        snprintf(row->note, sizeof row->note, "%d operand set%s rotated", nsets, nsets > 1 ? "s" : "");
        fx_rng r;
        fx_rng_seed(&r, 4242);
        int good = 1;
        double worst = 0;
        for (int s = 0; s < 64 && good; s++) {
            long i, j;
            sample_at(s, row->m, row->n, &r, &i, &j);
            double acc, abs;
            fx_ref_gemm_at(row->op, row->m, row->n, row->k, a[0], b[0], i, j, &acc, &abs);
            double tol = row->k * FLT_EPSILON * abs + FLT_MIN, err = fabs(c[i * row->n + j] - acc);
            good = isfinite(c[i * row->n + j]) && err <= tol;
            worst = abs > 0 && err / abs > worst ? err / abs : worst;
        }
        row->validated = good;
        row->max_rel_err = worst;
        snprintf(row->validation, sizeof row->validation, "reference: 64 sampled elements");
    }
    if (gc.h)
        gc.g->destroy(gc.h);
    for (int s = 0; fresh && s < nsets && a && b; s++) {
        free(a[s]);
        free(b[s]);
    }
    if (fresh) {
        free(a);
        free(b);
    }
    free(c);
}

/* Kernels suite: one kernel of the step, its shape from the row's step size. */
static const fx_kernel_bench *kernel_hooks(const fx_backend *b)
{
    if (b->kernel_bench)
        return b->kernel_bench;
    return b->device == FX_CPU && b->kernels ? &fx_host_kernel_bench : NULL;
}

typedef struct {
    const fx_kernel_bench *kb;
    void *h;
} kernel_ctx;

static int kernel_fn(void *p, long iters, double *seconds, fx_err *e)
{
    kernel_ctx *k = p;
    return k->kb->run(k->h, iters, seconds, e);
}

static void kernel_setup(fx_bench_row *r)
{
    const fx_size s = r->ss;
    static const struct {
        fx_kernel_kind kind;
        fx_op op;
        fx_epilogue epi;
    } k[K_COUNT] = {
        [K_H_RELU] = {FX_KERNEL_GEMM, FX_NN, FX_EPI_RELU_MASK}, [K_Y_PRED] = {FX_KERNEL_GEMM, FX_NN, FX_EPI_STORE},
        [K_LOSS_GRAD] = {FX_KERNEL_LOSS_GRAD, FX_NN, FX_EPI_STORE}, [K_GH] = {FX_KERNEL_GEMM, FX_NT, FX_EPI_MASK},
        [K_W2_UPDATE] = {FX_KERNEL_GEMM, FX_TN, FX_EPI_SGD},   [K_W1_UPDATE] = {FX_KERNEL_GEMM, FX_TN, FX_EPI_SGD},
        [K_SGD_W1] = {FX_KERNEL_SGD, FX_NN, FX_EPI_STORE},
    };
    const long dims[K_COUNT][3] = {
        [K_H_RELU] = {s.n, s.h, s.d_in}, [K_Y_PRED] = {s.n, s.d_out, s.h},  [K_GH] = {s.n, s.h, s.d_out},
        [K_W2_UPDATE] = {s.h, s.d_out, s.n}, [K_W1_UPDATE] = {s.d_in, s.h, s.n},
    };
    int i = r->kernel_index;
    r->kernel = kernel_list[i].name;
    r->kernel_what = kernel_list[i].what;
    r->kind = k[i].kind;
    r->op = k[i].op;
    r->epi = k[i].epi;
    if (r->kind == FX_KERNEL_GEMM) {
        r->m = dims[i][0], r->n = dims[i][1], r->k = dims[i][2];
        static const char *const opn[] = {"nn", "nt", "tn"};
        snprintf(r->shape, sizeof r->shape, "%ldx%ldx%ld:%s", r->m, r->n, r->k, opn[r->op]);
        double m = (double)r->m, n = (double)r->n, kk = (double)r->k;
        r->flops = 2.0 * m * n * kk;
        /* A and B read, C written (and read: SGD), the mask written or read (a byte each) */
        r->bytes = 4.0 * (m * kk + kk * n + m * n) + (r->epi == FX_EPI_SGD ? 4.0 * m * n : 0) +
                   (r->epi == FX_EPI_RELU_MASK || r->epi == FX_EPI_MASK ? m * n : 0);
    } else {
        r->elems = r->kind == FX_KERNEL_LOSS_GRAD ? s.n * s.d_out : s.d_in * s.h;
        snprintf(r->shape, sizeof r->shape, "%ld", r->elems);
        /* loss_grad: d = yp − y, g = 2d, sum += d² (4 FLOPs); reads yp, y, writes g. sgd: one FMA;
         * reads w, g, writes w. */
        r->flops = (r->kind == FX_KERNEL_LOSS_GRAD ? 4.0 : 2.0) * (double)r->elems;
        r->bytes = 12.0 * (double)r->elems;
    }
}

/* After timing: result() (inputs restored, the kernel once) against the double oracle. GEMM: every
 * element finite, every RELU_MASK mask byte 0 or 1, 64 sampled elements (corners included) with the
 * epilogue; loss_grad and sgd: every element. lr is 0.5, not the step's 1e-6, so that an update
 * lost or doubled shows (the speed does not depend on it). */
static void run_kernel_row(bench_ctx *bc, fx_bench_row *row)
{
    const fx_kernel_bench *kb = kernel_hooks(row->b);
    const float lr = 0.5f;
    const int gemm = row->kind == FX_KERNEL_GEMM;
    const int has_mask = gemm && (row->epi == FX_EPI_RELU_MASK || row->epi == FX_EPI_MASK);
    /* GEMM: a, b, C (c0 its initial value). loss_grad: yp = a, y = b, g = C. sgd: g = b, w = C. */
    size_t na = gemm ? (size_t)(row->m * row->k) : row->kind == FX_KERNEL_LOSS_GRAD ? (size_t)row->elems : 0;
    size_t nb = gemm ? (size_t)(row->k * row->n) : (size_t)row->elems;
    size_t nc = gemm ? (size_t)(row->m * row->n) : (size_t)row->elems;
    float *a = na ? malloc(na * sizeof *a) : NULL, *b = malloc(nb * sizeof *b);
    float *c = malloc(nc * sizeof *c), *c0 = malloc(nc * sizeof *c0);
    uint8_t *mask = has_mask ? malloc(nc) : NULL, *mask0 = has_mask ? malloc(nc) : NULL;
    double loss = NAN;
    void *h = NULL;
    fx_err e = {{0}};
    if ((na && !a) || !b || !c || !c0 || (has_mask && (!mask || !mask0))) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "out of memory for the kernel's operands");
        goto done;
    }
    fx_rng r;
    fx_rng_seed(&r, 900 + (uint64_t)row->kernel_index);
    if (na)
        fx_rng_fill_normal(&r, a, na);
    fx_rng_fill_normal(&r, b, nb);
    fx_rng_fill_normal(&r, c0, nc);
    for (size_t i = 0; i < nc; i++) {
        int keep = row->kind == FX_KERNEL_SGD || row->epi == FX_EPI_SGD; /* weights in; else poison */
        c0[i] = c[i] = keep ? c0[i] : NAN;
        if (has_mask)
            mask0[i] = mask[i] = row->epi == FX_EPI_MASK ? (uint8_t)(fx_rng_next(&r) >> 63) : 0xAA;
    }
    fx_kernel_call call = {.kind = row->kind};
    if (gemm)
        call.gemm = (fx_gemm_args){row->op, row->epi, row->m, row->n, row->k, a, b, c, mask, lr};
    else if (row->kind == FX_KERNEL_LOSS_GRAD)
        call.loss_grad.n = row->elems, call.loss_grad.yp = a, call.loss_grad.y = b, call.loss_grad.g = c,
        call.loss_grad.loss = &loss;
    else
        call.sgd.n = row->elems, call.sgd.w = c, call.sgd.g = b, call.sgd.lr = lr;
    if (kb->create(row->b, &call, &h, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "create: %s", e.msg);
        h = NULL;
        goto done;
    }
    kernel_ctx kc = {kb, h};
    if (fx_time_case(kernel_fn, &kc, &bc->policy, &row->t, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "run: %s", e.msg);
        goto done;
    }
    if (kb->result(h, &e)) {
        row->status = FX_ROW_FAILED;
        snprintf(row->note, sizeof row->note, "result: %s", e.msg);
        goto done;
    }
    row->status = FX_ROW_RAN;
    char why[200] = "";
    double worst = 0;
    if (gemm) {
        for (size_t i = 0; i < nc && !why[0]; i++) {
            if (!isfinite(c[i]))
                snprintf(why, sizeof why, "C[%zu] = %g (not finite)", i, c[i]);
            else if (row->epi == FX_EPI_RELU_MASK && mask[i] > 1)
                snprintf(why, sizeof why, "mask[%zu] = %d (never written)", i, mask[i]);
        }
        /* SGD: C starts finite, so the scan above cannot see an element left unwritten; every
         * weight must have moved instead, bar a few whose update is below half an ulp (|lr·acc|
         * under 6e-8 for a weight near 1: about one element in 10^8 here; a missed tile is
         * hundreds or thousands) */
        if (row->epi == FX_EPI_SGD && !why[0]) {
            size_t same = 0;
            for (size_t i = 0; i < nc; i++)
                same += c[i] == c0[i];
            if (same > 8)
                snprintf(why, sizeof why, "%zu of %zu weights not updated", same, nc);
        }
        fx_rng_seed(&r, 4243);
        for (int s = 0; s < 64 && !why[0]; s++) {
            long i, j;
            sample_at(s, row->m, row->n, &r, &i, &j);
            double acc, abs;
            fx_ref_gemm_at(row->op, row->m, row->n, row->k, a, b, i, j, &acc, &abs);
            size_t x = (size_t)(i * row->n + j);
            fx_gemm_elem_check(row->epi, acc, row->k * FLT_EPSILON * abs, c0[x], lr, c[x], has_mask ? mask[x] : 0,
                               has_mask ? mask0[x] : 0, 0, &worst, why, sizeof why, i, j);
        }
        snprintf(row->validation, sizeof row->validation, "reference: all finite%s, 64 sampled elements",
                 row->epi == FX_EPI_SGD ? " and updated" : "");
    } else if (row->kind == FX_KERNEL_LOSS_GRAD) {
        fx_loss_grad_check(row->elems, a, b, c, loss, !strcmp(row->b->name, "naive"), why, sizeof why);
        snprintf(row->validation, sizeof row->validation, "reference: every element and the loss");
    } else {
        fx_sgd_check(row->elems, c0, b, lr, c, why, sizeof why);
        snprintf(row->validation, sizeof row->validation, "reference: every element");
    }
    row->validated = !why[0];
    row->max_rel_err = worst;
    if (why[0])
        snprintf(row->validation, sizeof row->validation, "WRONG: %.110s", why);
done:
    if (h)
        kb->destroy(h);
    free(a);
    free(b);
    free(c);
    free(c0);
    free(mask);
    free(mask0);
}

/* bench.h: one kernels-suite case outside a run (for check's negative controls). */
int fx_bench_kernel_row(const fx_backend *b, fx_size size, int kernel_index, fx_bench_row *row)
{
    if (kernel_index < 0 || kernel_index >= K_COUNT)
        return -1;
    memset(row, 0, sizeof *row);
    row->suite = FX_SUITE_KERNELS;
    row->b = b;
    row->threads = 1;
    row->ss = size;
    snprintf(row->size, sizeof row->size, "%ldx%ldx%ldx%ld", size.n, size.d_in, size.h, size.d_out);
    row->kernel_index = kernel_index;
    kernel_setup(row);
    bench_ctx bc = {NULL, NULL, {.rep_time = 0, .min_time = 0, .budget = 5, .min_reps = 2, .max_reps = 2, .max_iters = 2}, 0};
    if (!kernel_hooks(b))
        return -1;
    run_kernel_row(&bc, row);
    return row->status == FX_ROW_RAN ? 0 : -1;
}

/* ---- orchestration ---------------------------------------------------------------------- */

static const char *row_kind(const fx_bench_row *r)
{
    return r->suite == FX_SUITE_STEP ? "step" : r->suite == FX_SUITE_GEMM ? "gemm" : "kern";
}

/* The rate of the last row that ran with the same suite, backend, threads and mode: the
 * estimate that lets a case predicted to blow the budget be skipped without running it. */
static double known_rate(const fx_bench_run *run, int upto, const fx_bench_row *row)
{
    double rate = 0;
    for (int i = 0; i < upto; i++) {
        const fx_bench_row *q = &run->rows[i];
        if (q->suite == row->suite && q->b == row->b && q->threads == row->threads &&
            q->sync_every_step == row->sync_every_step && q->status == FX_ROW_RAN && q->gflops > 0 &&
            (q->suite != FX_SUITE_KERNELS || q->kind == row->kind))
            rate = q->gflops;
    }
    return rate;
}

/* With no earlier row to go by, a probe at a small size (one tutorial step, or one 256³ GEMM)
 * gives a rate: it errs low for fast backends (small cases run less efficiently), so it may skip
 * a case that would have fit, but it never lets one run for many times its budget. */
static double probe_rate(bench_ctx *bc, const fx_bench_row *row)
{
    fx_bench_row probe = *row;
    fx_bench_run *run = bc->run;
    fx_timing_policy saved = bc->policy;
    /* after the warm-up iteration, the median of three repetitions of ~10 ms each: one cold call
     * (a BLAS starting its threads) once made OpenBLAS look 7x slower than it is and skipped its
     * case; with single calls as repetitions its first 256³ GEMMs on 2 threads still read 17
     * GFLOP/s against 209 when warm, and skipped its 4096³ row */
    bc->policy = (fx_timing_policy){.rep_time = 0.01, .min_time = 0, .budget = 1, .min_reps = 3, .max_reps = 3,
                                    .max_iters = 100};
    if (row->suite == FX_SUITE_STEP) {
        probe.ss = FX_TUTORIAL_SIZE;
        snprintf(probe.size, sizeof probe.size, "probe");
        probe.flops = fx_step_flops(probe.ss);
        probe.lr = FX_TUTORIAL_LR;
        run_step_row(bc, &probe);
    } else if (row->suite == FX_SUITE_KERNELS) { /* the same kernel at the tutorial's size */
        probe.ss = FX_TUTORIAL_SIZE;
        kernel_setup(&probe);
        run_kernel_row(bc, &probe);
    } else {
        snprintf(probe.size, sizeof probe.size, "probe"); /* its operands are not kept (run_gemm_row) */
        probe.m = probe.n = probe.k = 256;
        probe.op = FX_NN;
        probe.flops = 2.0 * 256 * 256 * 256;
        run_gemm_row(bc, &probe);
    }
    bc->policy = saved;
    (void)run;
    return probe.status == FX_ROW_RAN ? probe.flops / probe.t.median * 1e-9 : 0;
}

void fx_bench_set_peak(const fx_bench_run *run, fx_bench_row *r)
{
    if (r->suite == FX_SUITE_KERNELS && r->kind != FX_KERNEL_GEMM) { /* elementwise: bandwidth-bound */
        const fx_peaks *p = &run->peaks;
        int t = r->threads > 1 ? r->threads : 1;
        if (r->b->elementwise_threads) { /* a call this small may run on fewer (cpu: one per 2^15) */
            int used = r->b->elementwise_threads(r->elems);
            t = used >= 1 && used < t ? used : t;
        }
        int all = t > 1;
        if (r->b->device == FX_GPU) { /* device memory's; an L2-resident call can pass it (no L2 figure) */
            r->peak_gbs = p->gpu_copy_gbs;
            r->peak_name = "gpu_copy";
        } else {
            /* the operands stay hot between calls, in whichever cache holds that many bytes: the
             * bound is a triad on as many bytes, hot, on as many threads (measured once per pair) */
            static struct {
                double bytes;
                int threads, in_place;
                double gbs;
            } seen[64];
            static int nseen;
            int in_place = r->kind == FX_KERNEL_SGD; /* w −= lr·g; loss_grad writes a third array */
            double gbs = 0;
            for (int i = 0; i < nseen && gbs <= 0; i++)
                if (seen[i].bytes == r->bytes && seen[i].threads == t && seen[i].in_place == in_place)
                    gbs = seen[i].gbs;
            if (gbs <= 0) {
                gbs = fx_triad_hot_gbs(t, r->bytes, in_place);
                if (nseen < 64)
                    seen[nseen++] = (typeof(seen[0])){r->bytes, t, in_place, gbs};
            }
            r->peak_gbs = gbs;
            r->peak_name = in_place ? (all ? "cpu_update_hot_all_cores" : "cpu_update_hot_1_thread")
                                    : (all ? "cpu_triad_hot_all_cores" : "cpu_triad_hot_1_thread");
        }
        return;
    }
    if (r->b->device == FX_GPU) {
        r->peak_gflops = run->peaks.gpu_ffma_gflops;
        r->peak_name = "gpu_ffma";
    } else {
        r->peak_gflops = fx_peak_cpu(&run->peaks, r->threads);
        r->peak_name = r->threads > 1 ? "cpu_fma_all_cores" : "cpu_fma_1_thread";
        /* a backend bound to one ISA (cpu-avx2, cpu-generic, FIFTYX_ISA) against that ISA's rate,
         * when it is not the best here */
        const char *isa = r->b->isa ? r->b->isa() : NULL;
        int best = 0; /* the ISA fx_peak_cpu took: the first measured */
        while (best < 2 && fx_peak_cpu_isa(&run->peaks, best, r->threads) <= 0)
            best++;
        for (int i = 0; isa && i < 3; i++) {
            double v = fx_peak_cpu_isa(&run->peaks, i, r->threads);
            if (!strcmp(isa, fx_isa_names[i]) && v > 0 && i != best) {
                static const char *const names[3][2] = {{"cpu_fma_avx512_1_thread", "cpu_fma_avx512_all_cores"},
                                                        {"cpu_fma_avx2_1_thread", "cpu_fma_avx2_all_cores"},
                                                        {"cpu_fma_generic_1_thread", "cpu_fma_generic_all_cores"}};
                r->peak_gflops = v;
                r->peak_name = names[i][r->threads > 1];
            }
        }
    }
}

static void fmt_time(double s, char *buf, size_t len)
{
    if (s < 1e-6)
        snprintf(buf, len, "%.1f ns", s * 1e9);
    else if (s < 1e-3)
        snprintf(buf, len, "%.2f us", s * 1e6);
    else if (s < 1)
        snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        snprintf(buf, len, "%.3f s", s);
}

/* The results file as it stands after `done` cases (complete: false), rewritten atomically; the
 * rows not `finished` (not run, or with rounds to go) are left out of it. Rows whose reference is
 * over budget are validated by agreement at the end of the run; here a copy of the rows is
 * validated by agreement among the cases done so far, so that a file cut short still holds the big
 * sizes' validated rows (the live rows wait for the final pass). */
static void checkpoint(bench_ctx *bc, int done, const char *finished)
{
    fx_bench_run *run = bc->run;
    run->rows_done = done;
    fx_bench_run *snap = malloc(sizeof *snap);
    fx_bench_row *rows = malloc((size_t)run->nrows * sizeof *rows);
    if (!snap || !rows) {
        free(snap);
        free(rows);
        fprintf(stderr, "fiftyx: bench: checkpoint: out of memory\n");
        return;
    }
    *snap = *run;
    memcpy(rows, run->rows, (size_t)run->nrows * sizeof *rows);
    for (int i = 0; i < run->nrows; i++)
        if (!finished[i])
            rows[i].status = FX_ROW_PENDING;
    snap->rows = rows;
    snap->speedups = NULL;
    snap->nspeedups = 0;
    fx_bench_validate_by_agreement(snap);
    fx_bench_verdict(snap);
    fx_err e = {{0}};
    if (fx_results_write(bc->out_path, snap, &e))
        fprintf(stderr, "fiftyx: bench: checkpoint: %s\n", e.msg);
    free(snap->speedups);
    free(rows);
    free(snap);
}

/* Why backend r->b cannot run row r at all (NULL: it can). Asked again where the answer is used:
 * a backend may return its reason in a static buffer (cuda-persistent does), so it is not kept. */
static const char *row_unsupported(const fx_bench_row *r)
{
    if (r->suite != FX_SUITE_GEMM) { /* step and kernels rows: the step's size must fit the backend */
        fx_problem p = {r->ss, (float)r->lr, r->sync_every_step};
        return r->b->unsupported ? r->b->unsupported(&p) : NULL;
    }
    return r->b->gemm_bench ? NULL : "no GEMM of its own";
}

/* The rows whose times are compared with each other (one suite and size: every backend, thread
 * count and kernel of it) form a group; --rounds times a group's rows in turn. */
static int same_group(const fx_bench_row *a, const fx_bench_row *b)
{
    return a->suite == b->suite && !strcmp(a->size, b->size);
}

/* r->t from the rounds r ran: the median of their medians (a round timed in a slow minute moves
 * it no more than one sample would), the extremes of all, the repetitions and time of all. */
static void merge_rounds(fx_bench_row *r)
{
    double med[FX_MAX_ROUNDS], cpu[FX_MAX_ROUNDS];
    fx_timing m = r->round_t[0];
    for (int k = 0; k < r->rounds; k++) {
        const fx_timing *t = &r->round_t[k];
        med[k] = t->median;
        cpu[k] = t->cpu_median;
        m.min = fmin(m.min, t->min);
        m.max = fmax(m.max, t->max);
        if (k) {
            m.reps += t->reps;
            m.wall += t->wall;
        }
    }
    m.median = fx_sorted_median(med, r->rounds);
    m.cpu_median = fx_sorted_median(cpu, r->rounds);
    r->t = m;
}

/* Row i, once (round `round` of run->rounds): predicted over budget, unsupported or run, timed and
 * validated. Returns 0 when the row may run again in the next round (it ran, and its results were
 * right or are left to the vote of fx_bench_validate_by_agreement), -1 when it is done. */
static int run_row(bench_ctx *bc, int i, int round, int *rounds, double start, int done)
{
    fx_bench_run *run = bc->run;
    fx_bench_row *r = &run->rows[i];
    double elapsed = fx_wall_seconds() - start;
    double left = done ? elapsed / done * (run->nrows - done) : 0;
    char rnd[32] = "";
    if (*rounds > 1)
        snprintf(rnd, sizeof rnd, " round %d/%d", round + 1, *rounds);
    fprintf(stderr, "[%3d/%d] %s %-16s %-20s %s%-3d%s%s%s%s  (elapsed %.0f s, ~%.0f s left)\n", i + 1, run->nrows,
            row_kind(r), r->b->name, r->size, r->b->device == FX_GPU ? "gpu " : "thr ", r->threads,
            r->sync_every_step ? " sync" : "", r->kernel ? " " : "", r->kernel ? r->kernel : "", rnd, elapsed, left);
    if (r->threads > 0) {
        char binding[160];
        fx_setup_threads(r->threads, binding, sizeof binding);
    }
    if (round == 0) {
        const char *why = row_unsupported(r);
        if (why) {
            r->status = FX_ROW_SKIPPED;
            snprintf(r->note, sizeof r->note, "unsupported: %s", why);
            return -1;
        }
        fx_bench_set_peak(run, r); /* after: an elementwise row's bound is measured for it */
        double rate = known_rate(run, i, r);
        if (rate <= 0 && r->flops > 1e9)
            rate = probe_rate(bc, r);
        if (rate > 0) {
            /* every round: a warm-up and at least its share of the repetitions; a case too long
             * for that within the budget, or whose iterations take over FX_LONG_ITERATION, takes
             * one round (its few long iterations span the drift themselves), and one too long for
             * even that is skipped */
            double est = r->flops / (rate * 1e9);
            int reps = est > FX_LONG_ITERATION ? FX_MIN_REPS_LONG : bc->policy.min_reps;
            int per_round = (reps + *rounds - 1) / *rounds;
            if (est * (1 + reps) > run->budget) {
                r->status = FX_ROW_SKIPPED;
                snprintf(r->note, sizeof r->note,
                         "skipped: ~%.1f s per iteration at %.1f GFLOP/s, %d runs exceed the %.0f s budget", est,
                         rate, 1 + reps, run->budget);
                fprintf(stderr, "        %s\n", r->note);
                return -1;
            }
            if (*rounds > 1 && (est > FX_LONG_ITERATION || est * *rounds * (1 + per_round) > run->budget)) {
                *rounds = 1;
                fprintf(stderr, "        one round, not %d: ~%.1f s per iteration\n", run->rounds, est);
            }
        }
    }
    /* each round validated afresh: a round that goes wrong must not keep an earlier round's pass */
    r->validated = 0;
    r->max_rel_err = NAN;
    r->validation[0] = 0;
    /* one round's share of the case's time, repetitions and budget */
    fx_timing_policy whole = bc->policy;
    bc->policy.min_time = whole.min_time / *rounds;
    bc->policy.min_reps = (whole.min_reps + *rounds - 1) / *rounds;
    bc->policy.budget = run->budget / *rounds;
    bc->last_round = round == *rounds - 1;
    if (r->suite == FX_SUITE_STEP)
        run_step_row(bc, r);
    else if (r->suite == FX_SUITE_GEMM)
        run_gemm_row(bc, r);
    else
        run_kernel_row(bc, r);
    bc->policy = whole;
    if (r->b->describe)
        snprintf(r->config, sizeof r->config, "%s", r->b->describe());
    int again = r->status == FX_ROW_RAN && (r->validated || !strcmp(r->validation, FX_PENDING_AGREEMENT));
    if (again) {
        r->round_t[r->rounds++] = r->t;
        merge_rounds(r);
    } else if (round > 0) { /* a round that failed or was wrong: the row shows that round, and says so */
        char *what = r->status == FX_ROW_RAN ? r->validation : r->note;
        size_t len = r->status == FX_ROW_RAN ? sizeof r->validation : sizeof r->note;
        char was[256];
        snprintf(was, sizeof was, "%s", what);
        snprintf(what, len, "round %d of %d (its time; %d before it passed): %.180s", round + 1, *rounds, r->rounds, was);
    }
    if (r->status == FX_ROW_RAN) {
        r->gflops = r->flops / r->t.median * 1e-9;
        r->gbs = r->bytes / r->t.median * 1e-9;
        const char *per = r->suite == FX_SUITE_STEP ? "step" : r->suite == FX_SUITE_GEMM ? "GEMM" : "call";
        char med[32], this[32];
        fmt_time(r->t.median, med, sizeof med);
        if (*rounds > 1 && again) {
            fmt_time(r->round_t[r->rounds - 1].median, this, sizeof this);
            fprintf(stderr, "        %s per %s this round (%s over %d round%s), %s\n", this, per, med, r->rounds,
                    r->rounds == 1 ? "" : "s", r->validation);
        } else {
            fprintf(stderr, "        %s per %s, %.1f GFLOP/s, %s\n", med, per, r->gflops, r->validation);
        }
    } else {
        fprintf(stderr, "        %s\n", r->note);
    }
    return again ? 0 : -1;
}

/* Every row, group by group; with --rounds R each group's rows are timed in turn R times, each
 * round starting one row further on, so that a drift of the machine over the group's minutes
 * reaches all of its rows alike rather than the ones timed last. */
static void run_all(bench_ctx *bc)
{
    fx_bench_run *run = bc->run;
    double start = fx_wall_seconds();
    int *live = malloc((size_t)run->nrows * sizeof *live), *rounds = malloc((size_t)run->nrows * sizeof *rounds);
    char *finished = calloc((size_t)run->nrows, 1);
    int nfinished = 0;
    if (!live || !rounds || !finished)
        fx_die(1, "out of memory");
    for (int g0 = 0, g1; g0 < run->nrows; g0 = g1) {
        for (g1 = g0 + 1; g1 < run->nrows && same_group(&run->rows[g0], &run->rows[g1]); g1++)
            ;
        int n = g1 - g0, done = g0 * run->rounds;
        for (int i = g0; i < g1; i++) {
            live[i] = 1;
            rounds[i] = run->rounds;
        }
        for (int round = 0; round < run->rounds; round++)
            for (int k = 0; k < n; k++, done++) {
                int i = g0 + (k + round) % n;
                if (!live[i] || round >= rounds[i])
                    continue;
                live[i] = run_row(bc, i, round, &rounds[i], start, done / run->rounds) == 0;
                if (!live[i] || round == rounds[i] - 1) { /* the row is done: into the file */
                    finished[i] = 1;
                    if (++nfinished < run->nrows)
                        checkpoint(bc, nfinished, finished);
                }
            }
        release_inputs();
    }
    free(live);
    free(rounds);
    free(finished);
    fx_bench_validate_by_agreement(run);
}

/* ---- the verdict -------------------------------------------------------------------------- */

static int is_cpu_contender(const fx_bench_row *r)
{
    return r->b->device == FX_CPU && strcmp(r->b->name, "naive") && strcmp(r->b->name, "reference");
}

static const fx_bench_row *fastest(const fx_bench_run *run, const char *size, int (*pick)(const fx_bench_row *, int),
                                   int arg)
{
    const fx_bench_row *best = NULL;
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->suite == FX_SUITE_STEP && r->status == FX_ROW_RAN && r->validated && !strcmp(r->size, size) &&
            pick(r, arg) && (!best || r->t.median < best->t.median))
            best = r;
    }
    return best;
}
static int pick_gpu(const fx_bench_row *r, int a) { return r->b->device == FX_GPU && !r->sync_every_step; }
static int pick_naive(const fx_bench_row *r, int a) { return !strcmp(r->b->name, "naive") && r->threads == 1; }
static int pick_cpu_threads(const fx_bench_row *r, int t) { return is_cpu_contender(r) && r->threads == t; }

static void add_speedup(fx_bench_run *run, const char *size, double flops, const fx_bench_row *gpu,
                        const fx_bench_row *cpu, const char *against)
{
    if (!gpu || !cpu)
        return;
    fx_speedup *s = &run->speedups[run->nspeedups++];
    snprintf(s->size, sizeof s->size, "%.63s", size); /* sizes are < 64 chars */
    s->flops = flops;
    s->gpu = gpu;
    s->cpu = cpu;
    s->against = against;
    s->speedup = cpu->t.median / gpu->t.median;
}

static void appendf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

typedef struct {
    char name[64];
    double flops;
} step_size;

static int cmp_flops(const void *a, const void *b)
{
    double x = ((const step_size *)a)->flops, y = ((const step_size *)b)->flops;
    return (x > y) - (x < y);
}

void fx_bench_verdict(fx_bench_run *run)
{
    step_size sz[MAX_SIZES];
    int ns = 0;
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        int seen = 0;
        for (int j = 0; j < ns; j++)
            seen |= !strcmp(sz[j].name, r->size);
        if (r->suite == FX_SUITE_STEP && !seen && ns < MAX_SIZES) {
            snprintf(sz[ns].name, sizeof sz[ns].name, "%s", r->size);
            sz[ns++].flops = r->flops;
        }
    }
    qsort(sz, (size_t)ns, sizeof *sz, cmp_flops); /* so that crossovers read along the ladder */
    free(run->speedups); /* the verdict is redone at every checkpoint */
    run->nspeedups = 0;
    run->speedups = calloc((size_t)(3 * ns + 1), sizeof *run->speedups);
    char *v = run->verdict;
    size_t vl = sizeof run->verdict;
    v[0] = 0;
    if (!ns)
        return;
    int all = run->threads_all;
    double s_all[MAX_SIZES];
    int have_all[MAX_SIZES];
    appendf(v, vl, "Verdict: is the GPU 50x faster than the CPU? (validated step times; medians)\n");
    if (run->rows_done < run->nrows)
        appendf(v, vl, "  (incomplete: written after %d of %d cases; sizes without results may not have run yet)\n",
                run->rows_done, run->nrows);
    for (int i = 0; i < ns; i++) {
        const fx_bench_row *gpu = fastest(run, sz[i].name, pick_gpu, 0);
        const fx_bench_row *naive = fastest(run, sz[i].name, pick_naive, 0);
        const fx_bench_row *c1 = fastest(run, sz[i].name, pick_cpu_threads, 1);
        const fx_bench_row *ca = all > 1 ? fastest(run, sz[i].name, pick_cpu_threads, all) : c1;
        char t[32];
        have_all[i] = 0;
        appendf(v, vl, "  %s (%.3g GFLOP/step): ", sz[i].name, sz[i].flops * 1e-9);
        if (!gpu) {
            appendf(v, vl, "no GPU result%s; CPU side:", run->have_gpu ? "" : " (no GPU on this machine)");
            if (!naive && !c1 && !ca)
                appendf(v, vl, " no validated result either (skipped or failed: see the table)");
            if (naive) {
                fmt_time(naive->t.median, t, sizeof t);
                appendf(v, vl, " naive %s", t);
            }
            if (c1) {
                fmt_time(c1->t.median, t, sizeof t);
                appendf(v, vl, "%s best 1 thread %s (%s", naive ? "," : "", t, c1->b->name);
                appendf(v, vl, naive ? ", %.1fx naive)" : ")", naive ? naive->t.median / c1->t.median : 0);
            }
            if (ca && ca != c1) {
                fmt_time(ca->t.median, t, sizeof t);
                appendf(v, vl, "%s best %d threads %s (%s", naive || c1 ? "," : "", all, t, ca->b->name);
                appendf(v, vl, naive ? ", %.1fx naive)" : ")", naive ? naive->t.median / ca->t.median : 0);
            }
            appendf(v, vl, "\n");
            continue;
        }
        fmt_time(gpu->t.median, t, sizeof t);
        appendf(v, vl, "GPU %s %s/step", gpu->b->name, t);
        add_speedup(run, sz[i].name, sz[i].flops, gpu, naive, "naive-1-thread");
        add_speedup(run, sz[i].name, sz[i].flops, gpu, c1, "best-cpu-1-thread");
        add_speedup(run, sz[i].name, sz[i].flops, gpu, ca, "best-cpu-all-cores");
        if (naive)
            appendf(v, vl, "; %.1fx the naive loop", naive->t.median / gpu->t.median);
        if (c1)
            appendf(v, vl, "; %.1fx the best CPU code on 1 thread (%s)", c1->t.median / gpu->t.median, c1->b->name);
        if (ca) {
            s_all[i] = ca->t.median / gpu->t.median;
            have_all[i] = 1;
            appendf(v, vl, "; %.1fx on all %d cores (%s)", s_all[i], all, ca->b->name);
        }
        appendf(v, vl, ".\n    → 50x %s", have_all[i] ? (s_all[i] >= 50 ? "HOLDS even against optimised CPU code on all cores"
                                                       : c1 && c1->t.median / gpu->t.median >= 50 ? "holds against one CPU core, NOT against all cores"
                                                       : naive && naive->t.median / gpu->t.median >= 50 ? "holds only against the naive loop"
                                                       : "does NOT hold, not even against the naive loop")
                                          : "cannot be judged: no all-cores CPU result");
        appendf(v, vl, "\n");
    }
    /* crossovers of the GPU over all cores, where the sweep brackets them */
    static const double marks[] = {1, 10, 50};
    int any_gpu = 0;
    for (int i = 0; i < ns; i++)
        any_gpu |= have_all[i];
    for (int m = 0; any_gpu && m < 3; m++) {
        int prev = -1, found = 0;
        for (int i = 0; i < ns && !found; i++) {
            if (!have_all[i])
                continue;
            if (s_all[i] >= marks[m]) {
                if (prev < 0)
                    appendf(v, vl, "  GPU over all cores is already ≥ %gx at the smallest size with both (%s, %.1fx)\n",
                            marks[m], sz[i].name, s_all[i]);
                else
                    appendf(v, vl, "  GPU over all cores passes %gx between %s (%.1fx) and %s (%.1fx)\n", marks[m],
                            sz[prev].name, s_all[prev], sz[i].name, s_all[i]);
                found = 1;
            }
            prev = i;
        }
        if (!found)
            appendf(v, vl, "  GPU over all cores stays below %gx at every size measured\n", marks[m]);
    }
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_table(const fx_bench_run *run)
{
    int any = 0;
    for (int i = 0; i < run->nrows; i++)
        any |= run->rows[i].suite != FX_SUITE_KERNELS;
    if (!any)
        return;
    printf("%-5s %-16s %-20s %-5s %12s %12s %12s %10s %7s  %s\n", "suite", "backend", "size", "thr", "median",
           "min", "max", "GFLOP/s", "%peak", "validated");
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->suite == FX_SUITE_KERNELS)
            continue;
        char thr[16];
        snprintf(thr, sizeof thr, r->b->device == FX_GPU ? (r->sync_every_step ? "gpu*" : "gpu") : "%d", r->threads);
        if (r->status != FX_ROW_RAN) {
            printf("%-5s %-16s %-20s %-5s %s\n", row_kind(r), r->b->name, r->size, thr, r->note);
            continue;
        }
        char med[32], mn[32], mx[32];
        fmt_time(r->t.median, med, sizeof med);
        fmt_time(r->t.min, mn, sizeof mn);
        fmt_time(r->t.max, mx, sizeof mx);
        printf("%-5s %-16s %-20s %-5s %12s %12s %12s %10.1f %6.1f%%  %s\n", row_kind(r), r->b->name, r->size, thr,
               med, mn, mx, r->gflops, r->peak_gflops > 0 ? 100 * r->gflops / r->peak_gflops : 0,
               r->validated ? "yes" : "NO");
    }
    if (run->have_gpu)
        printf("(gpu* = loss read back every step, like the tutorial's .item())\n");
}

static const fx_bench_row *step_row_for(const fx_bench_run *run, const fx_bench_row *k)
{
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->suite == FX_SUITE_STEP && r->status == FX_ROW_RAN && r->validated && r->b == k->b &&
            r->threads == k->threads && !r->sync_every_step && !strcmp(r->size, k->size))
            return r;
    }
    return NULL;
}

/* The kernels suite: a row per kernel, then per size, backend and thread count the sum of the
 * step's six kernels beside that backend's step, where both ran: what the step adds (launches,
 * barriers) or saves (fusion, another layout) over its kernels called one by one. */
static void print_kernels(const fx_bench_run *run)
{
    int any = 0;
    for (int i = 0; i < run->nrows; i++)
        any |= run->rows[i].suite == FX_SUITE_KERNELS;
    if (!any)
        return;
    printf("\nKernels of the step, one at a time (operands resident and hot; %%peak: GEMMs of the FMA peak; "
           "loss_grad of a triad, sgd_w1 of an in-place update, on as many bytes, hot, on as many threads; "
           "GPU: of the device-memory copy bandwidth, which an L2-resident call can pass)\n");
    printf("%-20s %-10s %-16s %-4s %-20s %11s %9s %9s %7s  %s\n", "size", "kernel", "backend", "thr", "shape", "median",
           "GFLOP/s", "GB/s", "%peak", "validated");
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->suite != FX_SUITE_KERNELS)
            continue;
        char thr[16];
        snprintf(thr, sizeof thr, r->b->device == FX_GPU ? "gpu" : "%d", r->threads);
        if (r->status != FX_ROW_RAN) {
            printf("%-20s %-10s %-16s %-4s %-20s %s\n", r->size, r->kernel, r->b->name, thr, r->shape, r->note);
            continue;
        }
        char med[32];
        fmt_time(r->t.median, med, sizeof med);
        double pct = r->peak_gbs > 0 ? 100 * r->gbs / r->peak_gbs : r->peak_gflops > 0 ? 100 * r->gflops / r->peak_gflops : 0;
        printf("%-20s %-10s %-16s %-4s %-20s %11s %9.1f %9.1f %6.1f%%  %s\n", r->size, r->kernel, r->b->name, thr,
               r->shape, med, r->gflops, r->gbs, pct, r->validated ? "yes" : r->validation);
    }
    printf("\nThe step's six kernels summed (sgd_w1 left out: the step fuses it) against the step itself\n");
    int printed = 0;
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->suite != FX_SUITE_KERNELS || r->kernel_index != 0)
            continue;
        double sum = 0;
        int n = 0;
        for (int j = i; j < run->nrows; j++) {
            const fx_bench_row *q = &run->rows[j];
            if (q->suite == FX_SUITE_KERNELS && q->b == r->b && q->threads == r->threads && !strcmp(q->size, r->size) &&
                q->kernel_index < K_STEP && q->status == FX_ROW_RAN && q->validated) {
                sum += q->t.median;
                n++;
            }
        }
        if (n != K_STEP)
            continue;
        char thr[16], ts[32], st[32];
        snprintf(thr, sizeof thr, r->b->device == FX_GPU ? "gpu" : "%d", r->threads);
        fmt_time(sum, ts, sizeof ts);
        const fx_bench_row *step = step_row_for(run, r);
        if (step) {
            fmt_time(step->t.median, st, sizeof st);
            printf("  %-20s %-16s %-4s kernels %11s, step %11s (step / kernels %.2f)\n", r->size, r->b->name, thr, ts, st,
                   step->t.median / sum);
        } else {
            printf("  %-20s %-16s %-4s kernels %11s (no step row at this size)\n", r->size, r->b->name, thr, ts);
        }
        printed++;
    }
    if (!printed)
        printf("  (no size where all six ran and validated)\n");
}

/* results/<host>-<cpu model>-<cores>c[-<gpu>]-<UTC date-time>.json: which machine, at a glance. */
void fx_results_stem(char *out, size_t len, const char *host, const char *cpu_model, int cores, const char *gpu)
{
    if (!len)
        return;
    /* the model without its trademarks and filler: "Intel(R) Xeon(R) Processor" -> Intel-Xeon */
    char model[128];
    snprintf(model, sizeof model, "%s", cpu_model);
    static const char *const drop[] = {"(R)", "(r)", "(TM)", "(tm)", " Processor", " CPU"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        for (char *at; (at = strstr(model, drop[i]));)
            memmove(at, at + strlen(drop[i]), strlen(at + strlen(drop[i])) + 1);
    char name[512];
    snprintf(name, sizeof name, "%s-%s-%dc%s%s", host, model, cores, gpu && *gpu ? "-" : "", gpu ? gpu : "");
    /* anything but ASCII letters and digits becomes one '-', none at either end */
    size_t o = 0;
    for (const char *c = name; *c && o + 1 < len; c++) {
        int keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
        if (keep)
            out[o++] = *c;
        else if (o > 0 && out[o - 1] != '-')
            out[o++] = '-';
    }
    while (o > 0 && out[o - 1] == '-')
        o--;
    out[o] = 0;
}

static void default_out(char *buf, size_t len, const fx_bench_run *run)
{
    char host[128] = "host", name[512];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    fx_results_stem(name, sizeof name, host, run->topo.cpu_model, fx_core_count(), /* not --threads */
                    run->have_gpu ? run->gpu.name : NULL);
    if (mkdir("results", 0777) && errno != EEXIST)
        fx_bad_input("bench: cannot make the results directory (%s): give --out FILE", strerror(errno));
    snprintf(buf, len, "results/%s-%s.json", name, stamp);
}

/* ---- the command -------------------------------------------------------------------------- */

static void add_rows(fx_bench_run *run, fx_suite suite, const char *size, const fx_backend *b, const int *threads,
                     int nthreads, int cap)
{
    /* naive's kernels only when --backend names it: its step rows already show what they cost
     * (the six summed were 0.98 of its step), and at 256x4096x1024x256 they took 50 s of make bench */
    if (suite == FX_SUITE_KERNELS && !strcmp(b->name, "naive") && !run->backends_named)
        return;
    if (suite == FX_SUITE_KERNELS && !kernel_hooks(b)) /* the reference, cuda-persistent: said below */
        return;
    for (int kern = 0; kern < (suite == FX_SUITE_KERNELS ? K_COUNT : 1); kern++)
    for (int sync = 0; sync <= (suite == FX_SUITE_STEP && b->device == FX_GPU); sync++) {
        int nt = b->device == FX_GPU ? 1 : !strcmp(b->name, "naive") ? 1 : nthreads;
        for (int t = 0; t < nt && run->nrows < cap; t++) {
            fx_bench_row *r = &run->rows[run->nrows++];
            memset(r, 0, sizeof *r);
            r->suite = suite;
            r->b = b;
            r->threads = b->device == FX_GPU ? 0 : !strcmp(b->name, "naive") ? 1 : threads[t];
            r->sync_every_step = sync;
            if (suite == FX_SUITE_STEP || suite == FX_SUITE_KERNELS) {
                fx_parse_size(size, &r->ss, NULL);
                snprintf(r->size, sizeof r->size, "%ldx%ldx%ldx%ld", r->ss.n, r->ss.d_in, r->ss.h, r->ss.d_out);
                r->flops = fx_step_flops(r->ss);
                r->lr = fmin(FX_TUTORIAL_LR, 6.4 / ((double)r->ss.n * (double)r->ss.h * (double)r->ss.d_in));
                if (suite == FX_SUITE_KERNELS) {
                    r->kernel_index = kern;
                    kernel_setup(r);
                }
            } else {
                parse_gemm(size, &r->m, &r->n, &r->k, &r->op, r->size, sizeof r->size);
                r->flops = 2.0 * r->m * r->n * r->k;
            }
        }
    }
}

int fx_cmd_bench(int argc, char **argv)
{
    const char *suite = "all", *backends = NULL, *sizes = NULL, *out = NULL, *v;
    long threads = 0, rounds = 3;
    double budget = 30;
    int quick = 0;
    for (int i = 2; i < argc; i++) {
        if (fx_flag(argv, i, "--help") || fx_flag(argv, i, "-h")) {
            fputs(usage, stdout);
            for (size_t k = 0; k < sizeof step_ladder / sizeof step_ladder[0]; k++)
                printf("    %-20s %s\n", step_ladder[k].size, step_ladder[k].why);
            return 0;
        } else if ((v = fx_opt(argc, argv, &i, "--suite"))) {
            suite = v;
        } else if ((v = fx_opt(argc, argv, &i, "--backend"))) {
            backends = v;
        } else if ((v = fx_opt(argc, argv, &i, "--size"))) {
            sizes = v;
        } else if ((v = fx_opt(argc, argv, &i, "--threads"))) {
            /* more threads than processors would time the scheduler (check --threads may do it) */
            int procs = omp_get_num_procs();
            if (fx_parse_long(v, 1, procs, &threads))
                fx_bad_input("--threads '%s': expected an integer from 1 to %d (the processors here)", v, procs);
        } else if ((v = fx_opt(argc, argv, &i, "--out"))) {
            out = v;
        } else if ((v = fx_opt(argc, argv, &i, "--budget"))) {
            if (fx_parse_double(v, &budget) || budget <= 0)
                fx_bad_input("--budget '%s': expected a positive number of seconds", v);
        } else if ((v = fx_opt(argc, argv, &i, "--rounds"))) {
            if (fx_parse_long(v, 1, FX_MAX_ROUNDS, &rounds))
                fx_bad_input("--rounds '%s': expected an integer from 1 to %d", v, FX_MAX_ROUNDS);
        } else if (fx_flag(argv, i, "--quick")) {
            quick = 1;
        } else {
            fx_bad_input("bench: unknown option '%s' (see fiftyx bench --help)", argv[i]);
        }
    }
    int want_step = !strcmp(suite, "step") || !strcmp(suite, "all");
    int want_gemm = !strcmp(suite, "gemm") || !strcmp(suite, "all");
    int want_kernels = !strcmp(suite, "kernels") || !strcmp(suite, "all");
    if (!want_step && !want_gemm && !want_kernels)
        fx_bad_input("--suite '%s': expected step, gemm, kernels or all", suite);

    /* backends: named ones must exist; unusable ones are noted and left out */
    size_t nall;
    const fx_backend *const *all = fx_backends(&nall);
    const fx_backend *sel[64];
    int nsel = 0;
    if (backends) {
        nsel = fx_parse_backend_list("--backend", backends, sel, 64);
    } else {
        for (size_t i = 0; i < nall && nsel < 64; i++)
            if (!all[i]->hidden && strcmp(all[i]->name, "reference"))
                sel[nsel++] = all[i];
    }
    /* unusable backends are left out, and said so once the arguments are known to be good */
    const fx_backend *unusable[64];
    int nusable = 0, nunusable = 0;
    for (int i = 0; i < nsel; i++) {
        if (sel[i]->unavailable && sel[i]->unavailable())
            unusable[nunusable++] = sel[i];
        else
            sel[nusable++] = sel[i];
    }
    nsel = nusable;
    if (!nsel)
        fx_bad_input("bench: none of the requested backends can run here (%s: %s)", unusable[0]->name,
                     unusable[0]->unavailable());

    /* sizes: each item is a step size (4 dimensions) or a GEMM shape (1 or 3) */
    const char *step_sizes[MAX_SIZES], *gemm_sizes[MAX_SIZES], *kernel_step_sizes[MAX_SIZES];
    int nstep = 0, ngemm = 0, nkern = 0;
    char sizebuf[4096];
    if (sizes) {
        char *items[MAX_SIZES];
        int n = strlen(sizes) < sizeof sizebuf ? (strcpy(sizebuf, sizes), fx_split_list(sizebuf, items, MAX_SIZES)) : -1;
        if (n < 0)
            fx_bad_input("--size '%s': malformed list (sizes separated by single commas, at most %d)", sizes, MAX_SIZES);
        static char canon[MAX_SIZES][64]; /* each size as the results name it: no two alike */
        for (int i = 0; i < n; i++) {
            fx_err e;
            fx_size s;
            long m, nn, k;
            fx_op op;
            if (count_x(items[i]) == 3) {
                if (fx_parse_size(items[i], &s, &e))
                    fx_bad_input("--size: %s", e.msg);
                if (!want_step && !want_kernels)
                    fx_bad_input("--size '%s' is a step size (NxD_INxHxD_OUT); --suite %s takes GEMM shapes", items[i], suite);
                snprintf(canon[i], sizeof canon[i], "%ldx%ldx%ldx%ld", s.n, s.d_in, s.h, s.d_out);
                if (want_step)
                    step_sizes[nstep++] = items[i];
                if (want_kernels)
                    kernel_step_sizes[nkern++] = items[i];
            } else if (parse_gemm(items[i], &m, &nn, &k, &op, canon[i], sizeof canon[i]) == 0) {
                if (!want_gemm)
                    fx_bad_input("--size '%s' is a GEMM shape; --suite %s takes NxD_INxHxD_OUT", items[i], suite);
                /* the least a row of a CPU backend holds: one set of A and B, the backend's C and
                 * run_gemm_row's copy of C to validate. Past the memory this process may have, the
                 * product can never run here (it met the OOM killer at 65536x65536x4 when only one
                 * C was counted) */
                fx_err me;
                if (fx_memory_check(4.0 * ((double)m * k + (double)k * nn + 2.0 * m * nn), "operands", &me))
                    fx_bad_input("--size '%s': %s", items[i], me.msg);
                gemm_sizes[ngemm++] = items[i];
            } else {
                fx_bad_input("--size '%s': expected NxD_INxHxD_OUT, S or MxNxK[:nn|nt|tn] with dimensions from 1 to %ld "
                             "and no operand over %ld elements", items[i], FX_MAX_DIM, FX_MAX_ELEMS);
            }
            for (int j = 0; j < i; j++)
                if (!strcmp(canon[i], canon[j]))
                    fx_bad_input("--size: '%s' and '%s' are the same size (%s)", items[j], items[i], canon[i]);
        }
    } else {
        if (want_step) {
            if (quick)
                for (size_t i = 0; i < sizeof quick_step / sizeof *quick_step; i++)
                    step_sizes[nstep++] = quick_step[i];
            else
                for (size_t i = 0; i < sizeof step_ladder / sizeof *step_ladder; i++)
                    step_sizes[nstep++] = step_ladder[i].size;
        }
        if (want_gemm) {
            if (quick)
                for (size_t i = 0; i < sizeof quick_gemm / sizeof *quick_gemm; i++)
                    gemm_sizes[ngemm++] = quick_gemm[i];
            else
                for (size_t i = 0; i < sizeof gemm_ladder / sizeof *gemm_ladder; i++)
                    gemm_sizes[ngemm++] = gemm_ladder[i];
        }
        if (want_kernels) {
            if (quick)
                for (size_t i = 0; i < sizeof quick_kernels / sizeof *quick_kernels; i++)
                    kernel_step_sizes[nkern++] = quick_kernels[i];
            else
                for (size_t i = 0; i < sizeof kernel_sizes / sizeof *kernel_sizes; i++)
                    kernel_step_sizes[nkern++] = kernel_sizes[i];
        }
    }

    static fx_bench_run run;
    run.backends_named = backends != NULL;
    run.threads_all = fx_core_count();
    fx_topo_read(&run.topo);
    fx_err ge = {{0}};
    run.have_gpu = fx_gpu_query(&run.gpu, &ge) == 0;
    snprintf(run.gpu_note, sizeof run.gpu_note, "%s", run.have_gpu ? "" : ge.msg);

    run.argc = argc;
    run.argv = argv;
    run.quick = quick;
    run.budget = budget;
    run.rounds = (int)rounds;
    int tlist[2] = {1, run.threads_all}, nt = run.threads_all > 1 ? 2 : 1;
    if (threads) {
        tlist[0] = (int)threads;
        nt = 1;
        if (threads > run.threads_all)
            run.threads_all = (int)threads;
    }
    fx_setup_threads(run.threads_all, run.binding, sizeof run.binding);

    int cap = (nstep + ngemm + nkern * K_COUNT) * nsel * 4 + 1;
    run.rows = calloc((size_t)cap, sizeof *run.rows);
    if (!run.rows)
        fx_die(1, "out of memory");
    for (int s = 0; s < nstep; s++)
        for (int b = 0; b < nsel; b++)
            add_rows(&run, FX_SUITE_STEP, step_sizes[s], sel[b], tlist, nt, cap);
    for (int s = 0; s < ngemm; s++)
        for (int b = 0; b < nsel; b++)
            add_rows(&run, FX_SUITE_GEMM, gemm_sizes[s], sel[b], tlist, nt, cap);
    for (int s = 0; s < nkern; s++)
        for (int b = 0; b < nsel; b++)
            add_rows(&run, FX_SUITE_KERNELS, kernel_step_sizes[s], sel[b], tlist, nt, cap);

    if (!run.nrows)
        fx_bad_input("bench: nothing to run: no selected backend has kernels of its own to time (--suite %s)", suite);
    int runnable = 0;
    const char *why_not = NULL;
    for (int i = 0; i < run.nrows; i++) {
        const char *why = row_unsupported(&run.rows[i]);
        runnable += !why;
        why_not = why_not ? why_not : why;
    }
    if (!runnable)
        fx_bad_input("bench: nothing to run: no selected backend can run these cases (%s: %s)", run.rows[0].b->name,
                     why_not);
    char outbuf[4096]; /* after the checks above: a run refused leaves no results/ behind */
    const char *out_what = out ? "--out" : "results file";
    if (!out) {
        default_out(outbuf, sizeof outbuf, &run);
        out = outbuf;
    }
    { /* fail now, not after minutes of timing, if the results cannot be written */
        fx_err e;
        if (fx_atomic_check(out, &e))
            fx_bad_input("%s: %s", out_what, e.msg);
    }
    for (int i = 0; i < nunusable; i++)
        fprintf(stderr, "fiftyx: bench: leaving out backend %s: %s\n", unusable[i]->name, unusable[i]->unavailable());
    if (nkern)
        for (int b = 0; b < nsel; b++)
            if (!kernel_hooks(sel[b]))
                fprintf(stderr, "fiftyx: bench: backend %s has no kernels of its own: not in the kernels suite\n",
                        sel[b]->name);
    fprintf(stderr, "fiftyx bench: %d cases; measuring peaks first\n", run.nrows);
    fx_peaks_measure(&run.peaks, run.threads_all, quick);
    fprintf(stderr, "peaks: FMA %.0f GFLOP/s on 1 thread, %.0f on %d; triad %.1f GB/s (1 thread), %.1f (all)%s\n",
            fx_peak_cpu(&run.peaks, 1), fx_peak_cpu(&run.peaks, run.threads_all), run.threads_all,
            run.peaks.triad_gbs[0], run.peaks.triad_gbs[1], run.peaks.gpu ? "; GPU measured" : "");
    if (run.peaks.cpu_note[0])
        fprintf(stderr, "fiftyx bench: warning: %s\n", run.peaks.cpu_note);

    bench_ctx bc = {&run, out, {0}, 0};
    bc.policy = (fx_timing_policy){
        .rep_time = quick ? 0.01 : 0.05,
        .min_time = quick ? 0.1 : 0.5,
        .budget = budget,
        .min_reps = quick ? 3 : 5,
        .max_reps = 1000,
        .max_iters = 500, /* a repetition is at most the tutorial's 500-step loop */
    };
    { /* the reference's rate at the tutorial size, for its cost estimates */
        fx_init init;
        fx_ref *ref;
        int ok;
        fill_init(&init, FX_TUTORIAL_SIZE, NULL, &ok);
        fx_tensors t = fx_init_view(&init);
        if (ok && fx_ref_create(&ref, FX_TUTORIAL_SIZE, FX_TUTORIAL_LR, &t, NULL) == 0) {
            double t0 = fx_wall_seconds();
            fx_ref_step(ref);
            bc.ref_gflops = fx_step_flops(FX_TUTORIAL_SIZE) / (fx_wall_seconds() - t0) * 1e-9;
            fx_ref_destroy(ref);
        }
        if (ok)
            fx_init_free(&init);
    }

    run_all(&bc);
    run.rows_done = run.nrows;
    fx_bench_verdict(&run);
    print_table(&run);
    print_kernels(&run);
    printf("\n%s", run.verdict);

    fx_err e = {{0}};
    if (fx_results_write(out, &run, &e))
        fx_die(1, "%s", e.msg);
    printf("results written to %s\n", out);
    int failed = 0;
    for (int i = 0; i < run.nrows; i++)
        failed |= run.rows[i].status == FX_ROW_FAILED || (run.rows[i].status == FX_ROW_RAN && !run.rows[i].validated);
    if (failed)
        fprintf(stderr, "fiftyx: bench: some cases failed or did not validate (see the table)\n");
    free(run.speedups);
    free(run.rows);
    return failed ? 1 : 0;
}
