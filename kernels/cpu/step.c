/* step.c — the `cpu` backend's training step, on the GEMM loop nest of gemm.c.
 *
 * The step works on transposed activations: hᵀ, maskᵀ, ghᵀ are H×N and w1 is kept as w1ᵀ
 * (H×D_in), so that every big GEMM runs its vectors along N or D_in, the long dimensions, and
 * the tutorial's H = 100 is the broadcast side (100 = 10 rows × 10, no lane wasted), and so
 * that each hidden unit j owns a row of everything:
 *
 *   hᵀ[j]  = relu(w1ᵀ[j]·xᵀ), maskᵀ[j]          GEMM NN, RELU_MASK epilogue
 *   y_predᵀ = Σ_j w2[j]ᵀ ⊗ hᵀ[j]                the only sum across hidden units
 *   loss, gᵀ = Σ(y_pred − y)², 2(y_pred − y)    fused loss + gradient
 *   ghᵀ[j] = (w2[j]·gᵀ) ⊙ maskᵀ[j]              GEMM NN, MASK epilogue (w2 before its update)
 *   w2[j] −= lr · hᵀ[j]·g                       GEMM NT, SGD epilogue
 *   w1ᵀ[j] −= lr · ghᵀ[j]·x                     GEMM NN, SGD epilogue; or, where a thread has
 *                                               few hidden units, from ghᵀ[j]'s non-zeros only
 *                                               (fx_cpu_sparse: the ReLU mask zeroes ~half)
 *
 * So each thread takes a slice of the hidden units and runs all of it alone, except the sum of
 * y_pred: two barriers per step (one to finish the partial sums, one to publish g). x and xᵀ
 * never change: both are laid out once, in create. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "cpu_backend.h"

struct fx_cpu_state {
    const fx_cpu_isa *isa;
    fx_size s;
    float lr;
    int max_threads;      /* buffers are sized for this many */
    float *x, *xt, *yt;   /* inputs: x [N×D_in] (row stride ldx), xᵀ [D_in×N], yᵀ [D_out×N] */
    long ldx;             /* fx_cpu_x_stride(D_in) */
    float *w1t, *w2;      /* weights: w1ᵀ [H×D_in], w2 [H×D_out] */
    float *hrt, *ght;     /* h_reluᵀ, ghᵀ [H×N] */
    uint8_t *maskt;       /* [h ≥ 0]ᵀ [H×N] */
    float *yp_part;       /* per thread: its hidden units' share of y_predᵀ [D_out×N] */
    float *ypt, *gt;      /* y_predᵀ, gᵀ [D_out×N] */
    double *loss_part;    /* per thread, a cache line apart */
    float *work;          /* SGD partial sums when N > KC: [H×max(D_in, D_out)], else NULL */
    /* the w1ᵀ update with ghᵀ's zeros skipped (fx_cpu_sparse), where the ISA has it and the
     * lists fit: ghᵀ's non-zeros per hidden unit, and partial sums when N > FX_SPARSE_KB */
    int32_t *sp_idx, *sp_starts;
    float *sp_val, *sp_part;
};

static void *alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static void transpose(float *dst, const float *src, long rows, long cols)
{
    for (long i = 0; i < rows; i++)
        for (long j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
}

/* Whether the sparse w1ᵀ update's lists are worth keeping (cpu.h's limits): the ISA has it, the
 * lists fit, D_in is wide enough, and with `threads` threads a thread's share of the hidden units
 * is small enough (each step checks its own share again, and the density). Measured against the
 * dense GEMM (NOTES.md, entry 31): the tutorial's 100x1000x64 0.72 of its time at the tutorial's
 * density; 64x4096x256 (the 256x4096x1024x256 rung's share on 16 threads) 0.51; 512x4096x256 (its
 * share on 2 threads) 1.2–1.5, so there the GEMM stays. */
static int use_sparse(const fx_cpu_isa *isa, fx_size s, int threads)
{
    return isa->sparse_compact && isa->sparse_sgd && s.d_in >= FX_SPARSE_MIN_COLS &&
           s.h * fx_cpu_sparse_ld(s.n) <= FX_SPARSE_MAX_LIST &&
           (s.h + threads - 1) / threads <= FX_SPARSE_MAX_ROWS;
}

void fx_cpu_destroy(void *p)
{
    fx_cpu_state *st = p;
    if (!st)
        return;
    void *bufs[] = {st->x, st->xt, st->yt, st->w1t, st->w2, st->hrt, st->ght, st->maskt,
                    st->yp_part, st->ypt, st->gt, st->loss_part, st->work,
                    st->sp_idx, st->sp_starts, st->sp_val, st->sp_part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(st);
}

int fx_cpu_create(const fx_cpu_isa *isa, const fx_problem *p, const fx_tensors *init, void **state,
                  fx_err *e)
{
    if (!isa)
        return fx_fail(e, "no usable instruction set");
    fx_cpu_state *st = calloc(1, sizeof *st);
    if (!st)
        return fx_fail(e, "out of memory");
    fx_size s = p->size;
    size_t N = (size_t)s.n, D = (size_t)s.d_in, H = (size_t)s.h, O = (size_t)s.d_out;
    int T = fx_cpu_threads(), procs = omp_get_num_procs();
    st->isa = isa;
    st->s = s;
    st->lr = p->lr;
    st->max_threads = T > procs ? T : procs;
    /* x's rows start on cache lines, an odd number of lines apart (fx_cpu_x_stride): the w1ᵀ
     * update loads a vector per row of x */
    st->ldx = fx_cpu_x_stride((long)D);
    st->x = alloc_floats(N * (size_t)st->ldx);
    st->xt = alloc_floats(D * N);
    st->yt = alloc_floats(O * N);
    st->w1t = alloc_floats(H * D);
    st->w2 = alloc_floats(H * O);
    st->hrt = alloc_floats(H * N);
    st->ght = alloc_floats(H * N);
    st->maskt = aligned_alloc(64, (H * N + 63) / 64 * 64 + 64);
    st->yp_part = alloc_floats((size_t)st->max_threads * O * N);
    st->ypt = alloc_floats(O * N);
    st->gt = alloc_floats(O * N);
    st->loss_part = calloc((size_t)st->max_threads * 8, sizeof(double));
    fx_cpu_gemm sgd = {.m = (long)H, .n = (long)(D > O ? D : O), .k = (long)N, .epi = FX_EPI_SGD};
    int need_work = fx_cpu_gemm_needs_work(isa, &sgd);
    if (need_work)
        st->work = alloc_floats(H * (D > O ? D : O));
    const int sparse = use_sparse(isa, s, st->max_threads);
    const size_t kb = (size_t)fx_cpu_sparse_kblocks(s.n);
    if (sparse) {
        size_t ld = (size_t)fx_cpu_sparse_ld(s.n);
        st->sp_idx = aligned_alloc(64, (H * ld * sizeof(int32_t) + 63) / 64 * 64);
        st->sp_val = alloc_floats(H * ld);
        st->sp_starts = aligned_alloc(64, (H * (size_t)fx_cpu_sparse_sld(s.n) * sizeof(int32_t) + 63) / 64 * 64);
        st->sp_part = kb > 1 ? alloc_floats(H * FX_SPARSE_NB) : NULL;
    }
    if (!st->x || !st->xt || !st->yt || !st->w1t || !st->w2 || !st->hrt || !st->ght || !st->maskt ||
        !st->yp_part || !st->ypt || !st->gt || !st->loss_part || (need_work && !st->work) ||
        (sparse && (!st->sp_idx || !st->sp_val || !st->sp_starts ||
                    (kb > 1 && !st->sp_part)))) {
        fx_cpu_destroy(st);
        return fx_fail(e, "out of memory for %ldx%ldx%ldx%ld", s.n, s.d_in, s.h, s.d_out);
    }
    for (size_t n = 0; n < N; n++) {
        memcpy(st->x + n * (size_t)st->ldx, init->x + n * D, D * sizeof(float));
        memset(st->x + n * (size_t)st->ldx + D, 0, ((size_t)st->ldx - D) * sizeof(float));
    }
    transpose(st->xt, init->x, (long)N, (long)D);
    transpose(st->yt, init->y, (long)N, (long)O);
    transpose(st->w1t, init->w1, (long)D, (long)H);
    memcpy(st->w2, init->w2, H * O * sizeof(float));
    *state = st;
    return 0;
}

/* One step, thread tid of T; every thread passes both barriers, whatever happens. */
static int step(fx_cpu_state *st, int tid, int T, double *loss)
{
    const fx_cpu_isa *isa = st->isa;
    const long N = st->s.n, D = st->s.d_in, H = st->s.h, O = st->s.d_out;
    const long W = D > O ? D : O;
    const long j0 = H * tid / T, j1 = H * (tid + 1) / T, hs = j1 - j0;
    float *yp_mine = st->yp_part + (size_t)tid * (size_t)(O * N);
    int err = 0;

    if (hs > 0) {
        fx_cpu_gemm hidden = {
            .m = hs, .n = N, .k = D, .a = st->w1t + j0 * D, .a_rs = D, .a_cs = 1,
            .b = st->xt, .b_rs = N, .b_cs = 1,
            .epi = FX_EPI_RELU_MASK, .c = st->hrt + j0 * N, .ldc = N, .mask = st->maskt + j0 * N,
        };
        /* y_predᵀ share: A(o, j) = w2[j][o] */
        fx_cpu_gemm out = {
            .m = O, .n = N, .k = hs, .a = st->w2 + j0 * O, .a_rs = 1, .a_cs = O,
            .b = st->hrt + j0 * N, .b_rs = N, .b_cs = 1,
            .epi = FX_EPI_STORE, .c = yp_mine, .ldc = N,
        };
        err |= fx_cpu_gemm_one(isa, &hidden);
        err |= fx_cpu_gemm_one(isa, &out);
    } else {
        memset(yp_mine, 0, (size_t)(O * N) * sizeof(float));
    }
#pragma omp barrier
    /* every thread sums its stretch of y_predᵀ over the threads' shares, then loss and g */
    const long E = O * N, e0 = E * tid / T, e1 = E * (tid + 1) / T;
    for (long i = e0; i < e1; i++) {
        float sum = st->yp_part[i];
        for (int u = 1; u < T; u++)
            sum += st->yp_part[(size_t)u * (size_t)E + (size_t)i];
        st->ypt[i] = sum;
    }
    st->loss_part[tid * 8] = e1 > e0 ? isa->loss_grad(e1 - e0, st->ypt + e0, st->yt + e0, st->gt + e0) : 0.0;
#pragma omp barrier
    if (tid == 0) {
        double sum = 0;
        for (int u = 0; u < T; u++)
            sum += st->loss_part[u * 8];
        *loss = sum;
    }
    if (hs > 0) {
        fx_cpu_gemm grad_h = {
            .m = hs, .n = N, .k = O, .a = st->w2 + j0 * O, .a_rs = O, .a_cs = 1,
            .b = st->gt, .b_rs = N, .b_cs = 1,
            .epi = FX_EPI_MASK, .c = st->ght + j0 * N, .ldc = N, .mask = st->maskt + j0 * N,
        };
        /* B(n, o) = gᵀ[o][n]: NT */
        fx_cpu_gemm update_w2 = {
            .m = hs, .n = O, .k = N, .a = st->hrt + j0 * N, .a_rs = N, .a_cs = 1,
            .b = st->gt, .b_rs = 1, .b_cs = N,
            .epi = FX_EPI_SGD, .c = st->w2 + j0 * O, .ldc = O, .lr = st->lr,
            .work = st->work ? st->work + j0 * W : NULL,
        };
        fx_cpu_gemm update_w1 = {
            .m = hs, .n = D, .k = N, .a = st->ght + j0 * N, .a_rs = N, .a_cs = 1,
            .b = st->x, .b_rs = st->ldx, .b_cs = 1,
            .epi = FX_EPI_SGD, .c = st->w1t + j0 * D, .ldc = D, .lr = st->lr,
            .work = st->work ? st->work + j0 * W : NULL,
        };
        err |= fx_cpu_gemm_one(isa, &grad_h); /* reads w2 rows j0..j1 before ... */
        err |= fx_cpu_gemm_one(isa, &update_w2); /* ... they are updated */
        int dense = 1;
        if (st->sp_idx && hs <= FX_SPARSE_MAX_ROWS) {
            const long ld = fx_cpu_sparse_ld(N), sld = fx_cpu_sparse_sld(N);
            fx_cpu_sparse sp = {
                .m = hs, .n = D, .k = N, .a = st->ght + j0 * N, .lda = N, .b = st->x, .ldb = st->ldx,
                .c = st->w1t + j0 * D, .ldc = D, .lr = st->lr, .ld = ld,
                .idx = st->sp_idx + j0 * ld, .val = st->sp_val + j0 * ld,
                .starts = st->sp_starts + j0 * sld,
                .part = st->sp_part ? st->sp_part + j0 * FX_SPARSE_NB : NULL,
            };
            if ((double)isa->sparse_compact(&sp) <= FX_SPARSE_MAX_DENSITY * (double)(hs * N)) {
                isa->sparse_sgd(&sp);
                dense = 0;
            }
        }
        if (dense)
            err |= fx_cpu_gemm_one(isa, &update_w1);
    }
    return err;
}

int fx_cpu_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    fx_cpu_state *st = state;
    int threads = fx_cpu_threads();
    if (threads > st->max_threads)
        threads = st->max_threads;
    int failed = 0;
    double t0 = fx_wall_seconds();
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        int tid = omp_get_thread_num(), T = omp_get_num_threads();
        for (int s = 0; s < steps; s++)
            failed |= step(st, tid, T, &losses[s]);
    }
    if (seconds)
        *seconds = fx_wall_seconds() - t0;
    return failed ? fx_fail(e, "out of memory for pack buffers") : 0;
}

int fx_cpu_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    (void)e;
    fx_cpu_state *st = state;
    transpose(w1, st->w1t, st->s.h, st->s.d_in);
    memcpy(w2, st->w2, (size_t)(st->s.h * st->s.d_out) * sizeof(float));
    return 0;
}
