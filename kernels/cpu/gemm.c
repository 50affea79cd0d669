/* gemm.c — the one GEMM loop nest of the CPU backend (see cpu.h for the five loops).
 *
 * Whatever the op and the epilogue, a GEMM goes through gemm_part: the epilogue is a field of
 * the tile handed to the micro-kernel, applied to the last K block of each tile while it is
 * still in registers. Threads each take a rectangle of C (a grid chosen so that every thread
 * has about the same number of tiles) and run the loop nest on it; when they all cover every
 * row, they pack each A block together (a stretch each, two barriers) and each packs its own B.
 * The training step shares out its work itself and calls fx_cpu_gemm_one, which never meets a
 * barrier. Operands that fit in cache are used where they lie (BLIS's "sup" path: the
 * tutorial's GEMMs never pack); larger ones are packed into micro-panels. */
#include <omp.h>
#ifdef __SSE2__
#include <xmmintrin.h>
#endif
#include <stdlib.h>
#include "cpu.h"

int fx_cpu_threads(void)
{
    int t = fx_threads();
    return t > 0 ? t : omp_get_max_threads();
}

fx_cpu_gemm fx_cpu_gemm_from_args(const fx_gemm_args *g)
{
    long m = g->m, n = g->n, k = g->k;
    fx_cpu_gemm c = {
        .m = m, .n = n, .k = k, .a = g->a, .b = g->b, .epi = g->epi, .c = g->c, .ldc = n,
        .mask = g->mask, .lr = g->lr,
    };
    /* NN: A is M×K, B is K×N.  NT: B is N×K.  TN: A is K×M. */
    c.a_rs = g->op == FX_TN ? 1 : k;
    c.a_cs = g->op == FX_TN ? m : 1;
    c.b_rs = g->op == FX_NT ? 1 : n;
    c.b_cs = g->op == FX_NT ? k : 1;
    return c;
}

static long min_l(long a, long b) { return a < b ? a : b; }
static long cdiv(long a, long b) { return (a + b - 1) / b; }

/* ---- pack buffers: one pair per thread, grown on demand and kept (a GEMM must not pay for
 * page faults on fresh memory every call) ---- */

static __thread float *buf_a, *buf_b;
static __thread size_t cap_a, cap_b;
static __thread float *buf_t; /* the narrow TN path's transposed result (see gemm_narrow_tn) */
static __thread size_t cap_t;

static float *grow(float **buf, size_t *cap, size_t floats)
{
    if (floats > *cap) {
        free(*buf);
        size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
        *buf = aligned_alloc(64, bytes);
        *cap = *buf ? floats : 0;
    }
    return *buf;
}

/* dst[k][r] = src[r·rs + k] for r < MR (a multiple of 4), k < kc: the rows of a full panel of
 * row-major A are read 16 floats (a cache line) at a time, all MR of them interleaved, so that
 * their lines are fetched together rather than one row's after another's; with SSE, in 4×4
 * blocks (SSE2 is part of x86-64). */
static void transpose_rows(float *dst, const float *src, long rs, int MR, long kc)
{
    for (long k0 = 0; k0 < kc; k0 += 16) {
        long kn = min_l(16, kc - k0);
        for (int r = 0; r < MR; r += 4) {
            const float *p = src + r * rs + k0;
            for (int q = 0; q < 4; q++)
                __builtin_prefetch(p + q * rs + 64);
            long k = 0;
#ifdef __SSE2__
            for (; k + 4 <= kn; k += 4) {
                __m128 x0 = _mm_loadu_ps(p + k), x1 = _mm_loadu_ps(p + rs + k);
                __m128 x2 = _mm_loadu_ps(p + 2 * rs + k), x3 = _mm_loadu_ps(p + 3 * rs + k);
                _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
                float *d = dst + (k0 + k) * MR + r;
                _mm_storeu_ps(d, x0);
                _mm_storeu_ps(d + MR, x1);
                _mm_storeu_ps(d + 2 * MR, x2);
                _mm_storeu_ps(d + 3 * MR, x3);
            }
#endif
            for (; k < kn; k++)
                for (int q = 0; q < 4; q++)
                    dst[(k0 + k) * MR + r + q] = p[q * rs + k];
        }
    }
}

/* A(i0.., p0..) → micro-panels of MR rows, k-major: dst[panel][k][r], rows past m zero; only
 * panels [first_panel, end_panel) (threads that share A pack a stretch each).
 * Row-major A (NN, NT) is transposed here (transpose_rows for full panels). */
static void pack_a(float *dst, const fx_cpu_gemm *g, long i0, long m, long p0, long kc, int MR,
                   long first_panel, long end_panel)
{
    const long rs = g->a_rs, cs = g->a_cs;
    dst += first_panel * MR * kc;
    for (long ir = first_panel * MR; ir < m && ir < end_panel * MR; ir += MR, dst += MR * kc) {
        long mr = min_l(MR, m - ir);
        const float *src = g->a + (i0 + ir) * rs + p0 * cs;
        if (rs == 1) { /* TN: MR consecutive floats per k */
            for (long k = 0; k < kc; k++) {
                long r = 0;
                for (; r < mr; r++)
                    dst[k * MR + r] = src[k * cs + r];
                for (; r < MR; r++)
                    dst[k * MR + r] = 0.0f;
            }
            continue;
        }
        if (cs == 1 && mr == MR && MR % 4 == 0) {
            transpose_rows(dst, src, rs, MR, kc);
            continue;
        }
        for (long r = 0; r < MR; r++) {
            const float *row = src + r * rs;
            if (r >= mr) {
                for (long k = 0; k < kc; k++)
                    dst[k * MR + r] = 0.0f;
                continue;
            }
            for (long k = 0; k < kc; k++)
                dst[k * MR + r] = row[k * cs];
        }
    }
}

/* B(p0.., j0..) → micro-panels of NR columns, k-major: dst[panel][k][j], columns past n zero.
 * Row-major B (NN, TN) is read one row at a time across all the panels of the block. */
static void pack_b(float *dst, const fx_cpu_gemm *g, long p0, long kc, long j0, long n, int NR)
{
    const long rs = g->b_rs, cs = g->b_cs, panels = cdiv(n, NR);
    if (cs == 1) {
        for (long k = 0; k < kc; k++) {
            const float *row = g->b + (p0 + k) * rs + j0;
            if (k + 8 < kc) /* rows of B are far apart: fetch ahead, no prefetcher follows */
                for (long q = 0; q < n; q += 16)
                    __builtin_prefetch(row + 8 * rs + q);
            for (long q = 0; q < panels; q++) {
                float *d = dst + q * NR * kc + k * NR;
                long nr = min_l(NR, n - q * NR), j = 0;
                for (; j < nr; j++)
                    d[j] = row[q * NR + j];
                for (; j < NR; j++)
                    d[j] = 0.0f;
            }
        }
        return;
    }
    for (long q = 0; q < panels; q++, dst += NR * kc) { /* NT: B's rows are contiguous in k */
        long nr = min_l(NR, n - q * NR);
        for (long j = 0; j < NR; j++) {
            const float *col = g->b + p0 * rs + (j0 + q * NR + j) * cs;
            if (j < nr)
                for (long k = 0; k < kc; k++)
                    dst[k * NR + j] = col[k * rs];
            else
                for (long k = 0; k < kc; k++)
                    dst[k * NR + j] = 0.0f;
        }
    }
}

/* ---- work division ---- */

int fx_cpu_gemm_threads(const fx_cpu_gemm *g, int threads)
{
    /* A thread is worth it for about a million FLOPs or more (a fork/join or a barrier costs a
     * microsecond or two, about 100k FLOPs of one core). */
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    long worth = (long)(flops / 1e6);
    if (worth < 1)
        worth = 1;
    return threads < worth ? threads : (int)worth;
}

/* How a GEMM is cut and what is packed: the same for every thread of a team. */
typedef struct {
    int tm, tn;       /* threads as a tm×tn grid over the MR×NR tiles of C */
    long mt, nt;      /* tiles */
    long kc, nk;      /* K blocks */
    long mc, nc;      /* row and column blocks (of one thread's rectangle) */
    int packa, packb;
    int share_a;      /* the team packs each A block together and all use it */
} plan;

static plan make_plan(const fx_cpu_isa *isa, const fx_cpu_gemm *g, int threads, int can_share)
{
    plan P = {.tm = 1, .tn = threads, .mt = cdiv(g->m, isa->mr), .nt = cdiv(g->n, isa->nr)};
    /* the grid that minimises the largest share of tiles; among those, the one whose threads
     * read the fewest operand elements (1000×100×64: rows, so that each reads half of the big
     * A); then splitting N, so that threads share A and own B */
    long best = -1;
    double best_reads = 0;
    for (int d = 1; d <= threads; d++) /* d = tm, from 1: ties keep the N split */
        if (threads % d == 0) {
            long mt_d = cdiv(P.mt, d), nt_d = cdiv(P.nt, threads / d);
            long share = mt_d * nt_d;
            double reads = (double)min_l(g->m, mt_d * isa->mr) * (double)g->k +
                           (double)g->k * (double)min_l(g->n, nt_d * isa->nr);
            if (best < 0 || share < best || (share == best && reads < best_reads)) {
                best = share;
                best_reads = reads;
                P.tm = d;
                P.tn = threads / d;
            }
        }
    /* K in blocks of at most KC, all about the same length (no thin last block) */
    P.nk = cdiv(g->k, isa->kc);
    P.kc = cdiv(g->k, P.nk);
    /* Pack an operand when it is re-used often enough (by pack_reuse rows or columns of C) and is
     * big enough (pack_bytes or more of a thread's part) for in-place reads to fall out of L1 and
     * the TLB; B also when its columns are not contiguous (the micro-kernel loads rows of B as
     * vectors). What stays unpacked is read where it lies, MR rows of A by their own strides. */
    long m_part = min_l(g->m, cdiv(P.mt, P.tm) * isa->mr), n_part = min_l(g->n, cdiv(P.nt, P.tn) * isa->nr);
    double a_bytes = (double)m_part * (double)g->k * sizeof(float);
    double b_bytes = (double)n_part * (double)g->k * sizeof(float);
    P.packa = a_bytes >= (double)isa->pack_bytes && n_part >= isa->pack_reuse;
    P.packb = g->b_cs != 1 || (b_bytes >= (double)isa->pack_bytes && m_part >= isa->pack_reuse);
    /* Threads that all have every row (one grid row, none idle) pack A once between them
     * instead of each packing all of it. */
    P.share_a = can_share && P.packa && threads > 1 && P.tm == 1 && P.nt >= threads;
    /* rows in blocks of at most MC, all about the same size (4100 rows: 2×2050, not 4096 + 4:
     * a thin block would cost a repacking of B for a few rows) */
    long m_blocks = cdiv(m_part, isa->mc);
    P.mc = P.packa ? cdiv(cdiv(m_part, m_blocks), isa->mr) * isa->mr : g->m;
    long n_blocks = cdiv(n_part, isa->nc); /* likewise columns: 1024 as 3×352ish, not 480+480+64 */
    P.nc = P.packb ? cdiv(cdiv(n_part, n_blocks), isa->nr) * isa->nr : g->n;
    return P;
}

static void rectangle(const fx_cpu_isa *isa, const fx_cpu_gemm *g, const plan *P, int tid, long *m0,
                      long *m1, long *n0, long *n1)
{
    int ti = tid / P->tn, tj = tid % P->tn;
    *m0 = min_l(g->m, P->mt * ti / P->tm * isa->mr);
    *m1 = min_l(g->m, P->mt * (ti + 1) / P->tm * isa->mr);
    *n0 = min_l(g->n, P->nt * tj / P->tn * isa->nr);
    *n1 = min_l(g->n, P->nt * (tj + 1) / P->tn * isa->nr);
}

int fx_cpu_gemm_needs_work(const fx_cpu_isa *isa, const fx_cpu_gemm *g)
{
    return g->epi == FX_EPI_SGD && g->k > isa->kc;
}

/* ---- the loop nest ---- */

/* Thread tid's share of the GEMM. shared_a: the team's A buffer when P->share_a (then every
 * thread of the team must call this, and meets the others at two barriers per A block). */
static int gemm_part(const fx_cpu_isa *isa, const fx_cpu_gemm *g, const plan *P, int tid, int threads,
                     float *shared_a)
{
    long m0, m1, n0, n1;
    rectangle(isa, g, P, tid, &m0, &m1, &n0, &n1);
    if (m0 >= m1 || n0 >= n1)
        return 0; /* never with share_a: every thread has a column of tiles */
    const int MR = isa->mr, NR = isa->nr;
    const long kc_max = P->kc, nk = P->nk, mc_max = min_l(P->mc, m1 - m0), nc_max = min_l(P->nc, n1 - n0);
    float *pa = shared_a, *pb = NULL;
    if (P->packa && !P->share_a && !(pa = grow(&buf_a, &cap_a, (size_t)(cdiv(mc_max, MR) * MR * kc_max))))
        return -1;
    if (P->packb && !(pb = grow(&buf_b, &cap_b, (size_t)(cdiv(nc_max, NR) * NR * kc_max))))
        return -1;

    /* Partial sums between K blocks go to C itself, except where C holds weights (SGD). */
    float *p = g->c;
    long ldp = g->ldc;
    if (nk > 1 && g->epi == FX_EPI_SGD) {
        if (!g->work)
            return -1;
        p = g->work;
        ldp = g->n;
    }

    fx_cpu_tile t = {.epi = g->epi, .ldc = g->ldc, .ldp = ldp, .lr = g->lr, .a_packed = P->packa,
                     .b_padded = P->packb};
    for (long ic = m0; ic < m1; ic += mc_max) {
        long mc = min_l(mc_max, m1 - ic);
        /* unpacked rows are dealt out evenly (50 rows as 5×10 rather than 4×12 + 2) */
        long row_step = P->packa ? MR : cdiv(mc, cdiv(mc, MR));
        for (long kb = 0; kb < nk; kb++) {
            long pc = kb * kc_max, kc = min_l(kc_max, g->k - pc);
            t.kc = kc;
            t.first = kb == 0;
            t.last = kb == nk - 1;
            if (P->share_a) {
                long panels = cdiv(mc, MR);
#pragma omp barrier /* nobody still reads the previous block */
                pack_a(pa, g, ic, mc, pc, kc, MR, panels * tid / threads, panels * (tid + 1) / threads);
#pragma omp barrier /* the whole block is there */
            } else if (P->packa) {
                pack_a(pa, g, ic, mc, pc, kc, MR, 0, cdiv(mc, MR));
            }
            for (long jc = n0; jc < n1; jc += nc_max) {
                long nc = min_l(nc_max, n1 - jc);
                if (P->packb)
                    pack_b(pb, g, pc, kc, jc, nc, NR);
                for (long ir = 0; ir < mc; ir += row_step) {
                    long i = ic + ir;
                    t.mr = (int)min_l(row_step, mc - ir);
                    if (P->packa) {
                        t.a = pa + ir * kc;
                        t.a_rs = 1;
                        t.a_cs = MR;
                    } else {
                        t.a = g->a + i * g->a_rs + pc * g->a_cs;
                        t.a_rs = g->a_rs;
                        t.a_cs = g->a_cs;
                    }
                    for (long jr = 0; jr < nc; jr += NR) {
                        long j = jc + jr;
                        t.nr = (int)min_l(NR, nc - jr);
                        if (P->packb) {
                            t.b = pb + jr * kc;
                            t.b_rs = NR;
                        } else {
                            t.b = g->b + pc * g->b_rs + j;
                            t.b_rs = g->b_rs;
                        }
                        t.c = g->c + i * g->ldc + j;
                        t.p = p + i * ldp + j;
                        t.mask = g->mask ? g->mask + i * g->ldc + j : NULL;
                        isa->tile(&t);
                    }
                }
            }
        }
    }
    return 0;
}

int fx_cpu_gemm_one(const fx_cpu_isa *isa, const fx_cpu_gemm *g)
{
    plan P = make_plan(isa, g, 1, 0);
    return gemm_part(isa, g, &P, 0, 1, NULL);
}

/* A narrow C with A read by columns (TN: C is M×N with N at most a quarter of the register tile's
 * width, A(i,k) = a[i + k·lda]): each row of C would fill one vector with N of its lanes, for one
 * broadcast of A per row and k. Computed instead as Cᵀ = Bᵀ·Aᵀ (vectors along M, N broadcasts
 * per k; both operands still read in place, with unit stride where the tile loads vectors) into
 * a scratch, then the epilogue applied element by element, transposed. Measured (NOTES.md, entry
 * 29): 2x faster at N = 4, 1.2x at N = 8, even at N = 10, slower from N = 12. */
static int narrow_tn(const fx_cpu_isa *isa, const fx_cpu_gemm *g)
{
    return g->a_rs == 1 && g->b_cs == 1 && 4 * g->n <= isa->nr && g->m >= isa->nr;
}

/* C's rows [i0, i1) from Cᵀ (ct, N×M) with the epilogue, one loop per kind: fx_cpu_epilogue1's
 * rules, not its per-element switch (which made 100x8x64 2.0 µs instead of 1.5, NOTES entry 29) */
static void apply_transposed(const fx_cpu_gemm *g, const float *ct, long i0, long i1)
{
    const long m = g->m, n = g->n, ldc = g->ldc;
    float *c = g->c;
    uint8_t *mask = g->mask;
    const float lr = g->lr;
    for (long i = i0; i < i1; i++) {
        float *ci = c + i * ldc;
        const float *src = ct + i;
        switch (g->epi) {
        case FX_EPI_STORE:
            for (long j = 0; j < n; j++)
                ci[j] = src[j * m];
            break;
        case FX_EPI_RELU_MASK:
            for (long j = 0; j < n; j++) {
                float v = src[j * m];
                mask[i * ldc + j] = v >= 0.0f;
                ci[j] = v > 0.0f ? v : 0.0f;
            }
            break;
        case FX_EPI_MASK:
            for (long j = 0; j < n; j++)
                ci[j] = mask[i * ldc + j] ? src[j * m] : 0.0f;
            break;
        case FX_EPI_SGD:
            for (long j = 0; j < n; j++)
                ci[j] -= lr * src[j * m];
            break;
        }
    }
}

static int gemm_narrow_tn(const fx_cpu_isa *isa, const fx_cpu_gemm *g, int threads, fx_err *e)
{
    const long m = g->m, n = g->n;
    /* kept per thread like the pack buffers: the calls this path is for take ~1 µs, of which a
     * malloc and free would be a measurable share; the inner GEMM below uses buf_a/buf_b only,
     * and never takes this path itself (its M is this N, under NR) */
    float *ct = grow(&buf_t, &cap_t, (size_t)(m * n));
    if (!ct)
        return fx_fail(e, "out of memory for a %ldx%ldx%ld GEMM's transposed result", g->m, g->n, g->k);
    fx_cpu_gemm t = {
        .m = n, .n = m, .k = g->k,
        .a = g->b, .a_rs = g->b_cs, .a_cs = g->b_rs, /* A'(j, k) = B(k, j) */
        .b = g->a, .b_rs = g->a_cs, .b_cs = g->a_rs, /* B'(k, i) = A(i, k): unit stride along M */
        .epi = FX_EPI_STORE, .c = ct, .ldc = m,
    };
    int rc = fx_cpu_gemm_run(isa, &t, threads, e);
    if (rc == 0) {
        if (m * n >= (1L << 16) && threads > 1) {
#pragma omp parallel num_threads(threads)
            {
                long T = omp_get_num_threads(), id = omp_get_thread_num();
                apply_transposed(g, ct, m * id / T, m * (id + 1) / T);
            }
        } else {
            apply_transposed(g, ct, 0, m); /* no parallel region: its start costs ~1 µs here */
        }
    }
    return rc;
}

int fx_cpu_gemm_run(const fx_cpu_isa *isa, const fx_cpu_gemm *g0, int threads, fx_err *e)
{
    if (narrow_tn(isa, g0))
        return gemm_narrow_tn(isa, g0, threads, e);
    fx_cpu_gemm g = *g0;
    float *own = NULL;
    if (fx_cpu_gemm_needs_work(isa, &g) && !g.work) {
        own = g.work = malloc((size_t)g.m * (size_t)g.n * sizeof(float));
        if (!own)
            return fx_fail(e, "out of memory for a %ldx%ldx%ld GEMM's partial sums", g.m, g.n, g.k);
    }
    threads = fx_cpu_gemm_threads(&g, threads);
    plan P = make_plan(isa, &g, threads, 1);
    /* the team's A block lives in the calling thread's pack buffer */
    float *shared_a = NULL;
    if (P.share_a && !(shared_a = grow(&buf_a, &cap_a, (size_t)(cdiv(min_l(P.mc, g.m), isa->mr) * isa->mr * P.kc)))) {
        free(own);
        return fx_fail(e, "out of memory for the GEMM's pack buffers");
    }
    int failed = 0;
    if (threads <= 1) {
        failed = gemm_part(isa, &g, &P, 0, 1, NULL) != 0;
    } else {
#pragma omp parallel num_threads(threads) reduction(+ : failed)
        {
            /* a team smaller than asked for gets a plan of its own size (without sharing) */
            int T = omp_get_num_threads();
            plan Q = T == threads ? P : make_plan(isa, &g, T, 0);
            failed += gemm_part(isa, &g, &Q, omp_get_thread_num(), T, shared_a) != 0;
        }
    }
    free(own);
    return failed ? fx_fail(e, "out of memory for the GEMM's pack buffers") : 0;
}
