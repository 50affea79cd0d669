/* gemm.c — the one GEMM loop nest of the CPU backend (see cpu.h for the five loops).
 *
 * Whatever the op and the epilogue, a GEMM goes through fx_cpu_gemm_part: the epilogue is a
 * field of the tile handed to the micro-kernel, applied to the last K block of each tile while
 * it is still in registers. Threads each take a rectangle of C (a grid chosen so that every
 * thread has about the same number of tiles) and run the loop nest on it with their own pack
 * buffers: no barrier inside a GEMM, so the training step can call it inside its own parallel
 * region. Operands that fit in cache are used where they lie (BLIS's "sup" path: the tutorial's
 * GEMMs never pack); larger ones are packed into micro-panels. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
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

/* A(i0.., p0..) → micro-panels of MR rows, k-major: dst[panel][k][r], rows past m zero. */
static void pack_a(float *dst, const fx_cpu_gemm *g, long i0, long m, long p0, long kc, int MR)
{
    for (long ir = 0; ir < m; ir += MR, dst += MR * kc) {
        long mr = min_l(MR, m - ir);
        const float *src = g->a + (i0 + ir) * g->a_rs + p0 * g->a_cs;
        if (g->a_rs == 1) { /* TN: MR consecutive floats per k */
            for (long k = 0; k < kc; k++) {
                memcpy(dst + k * MR, src + k * g->a_cs, (size_t)mr * sizeof(float));
                for (long r = mr; r < MR; r++)
                    dst[k * MR + r] = 0.0f;
            }
        } else {
            for (long r = 0; r < MR; r++) {
                const float *row = src + r * g->a_rs;
                if (r < mr)
                    for (long k = 0; k < kc; k++)
                        dst[k * MR + r] = row[k * g->a_cs];
                else
                    for (long k = 0; k < kc; k++)
                        dst[k * MR + r] = 0.0f;
            }
        }
    }
}

/* B(p0.., j0..) → micro-panels of NR columns, k-major: dst[panel][k][j], columns past n zero. */
static void pack_b(float *dst, const fx_cpu_gemm *g, long p0, long kc, long j0, long n, int NR)
{
    for (long jr = 0; jr < n; jr += NR, dst += NR * kc) {
        long nr = min_l(NR, n - jr);
        const float *src = g->b + p0 * g->b_rs + (j0 + jr) * g->b_cs;
        if (g->b_cs == 1) {
            for (long k = 0; k < kc; k++) {
                memcpy(dst + k * NR, src + k * g->b_rs, (size_t)nr * sizeof(float));
                for (long j = nr; j < NR; j++)
                    dst[k * NR + j] = 0.0f;
            }
        } else { /* NT: walk B's rows (contiguous in k), write columns of the panel */
            for (long j = 0; j < NR; j++) {
                const float *col = src + j * g->b_cs;
                if (j < nr)
                    for (long k = 0; k < kc; k++)
                        dst[k * NR + j] = col[k * g->b_rs];
                else
                    for (long k = 0; k < kc; k++)
                        dst[k * NR + j] = 0.0f;
            }
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

/* Thread tid's rectangle of C: a tm×tn grid over MR×NR tiles, with tm·tn = threads chosen to
 * minimise the largest share (ties: split N, so that threads share A and own their B). */
static void rectangle(const fx_cpu_isa *isa, const fx_cpu_gemm *g, int tid, int threads, long *m0,
                      long *m1, long *n0, long *n1)
{
    long mt = cdiv(g->m, isa->mr), nt = cdiv(g->n, isa->nr);
    int tm = 1, tn = threads;
    long best = -1;
    for (int d = 1; d <= threads; d++) {
        if (threads % d)
            continue;
        long share = cdiv(mt, d) * cdiv(nt, threads / d);
        if (best < 0 || share < best) {
            best = share;
            tm = d;
            tn = threads / d;
        }
    }
    int ti = tid / tn, tj = tid % tn;
    *m0 = min_l(g->m, mt * ti / tm * isa->mr);
    *m1 = min_l(g->m, mt * (ti + 1) / tm * isa->mr);
    *n0 = min_l(g->n, nt * tj / tn * isa->nr);
    *n1 = min_l(g->n, nt * (tj + 1) / tn * isa->nr);
}

/* K in blocks of at most KC, all about the same length (no thin last block). */
static long k_blocks(const fx_cpu_isa *isa, long k, long *kc)
{
    long nk = cdiv(k, isa->kc);
    *kc = cdiv(k, nk);
    return nk;
}

int fx_cpu_gemm_needs_work(const fx_cpu_isa *isa, const fx_cpu_gemm *g)
{
    return g->epi == FX_EPI_SGD && g->k > isa->kc;
}

/* ---- the loop nest ---- */

int fx_cpu_gemm_part(const fx_cpu_isa *isa, const fx_cpu_gemm *g, int tid, int threads)
{
    long m0, m1, n0, n1;
    rectangle(isa, g, tid, threads, &m0, &m1, &n0, &n1);
    if (m0 >= m1 || n0 >= n1)
        return 0;
    const int MR = isa->mr, NR = isa->nr;
    long kc_max, nk = k_blocks(isa, g->k, &kc_max);
    long mc_max = isa->mc, nc_max = isa->nc;

    /* Pack an operand when it is re-used often enough (by pack_reuse rows or columns of C) and is
     * big enough (pack_bytes or more of this thread's part) for in-place reads to fall out of L1
     * and the TLB; B also when its columns are not contiguous (the micro-kernel loads rows of B as
     * vectors). What stays unpacked is read where it lies, MR rows of A by their own strides. */
    double a_bytes = (double)(m1 - m0) * (double)g->k * sizeof(float);
    double b_bytes = (double)(n1 - n0) * (double)g->k * sizeof(float);
    int packa = a_bytes >= (double)isa->pack_bytes && n1 - n0 >= isa->pack_reuse;
    int packb = g->b_cs != 1 || (b_bytes >= (double)isa->pack_bytes && m1 - m0 >= isa->pack_reuse);
    if (!packa)
        mc_max = m1 - m0;
    if (!packb)
        nc_max = n1 - n0;
    float *pa = NULL, *pb = NULL;
    if (packa && !(pa = grow(&buf_a, &cap_a, (size_t)(cdiv(min_l(mc_max, m1 - m0), MR) * MR * kc_max))))
        return -1;
    if (packb && !(pb = grow(&buf_b, &cap_b, (size_t)(cdiv(min_l(nc_max, n1 - n0), NR) * NR * kc_max))))
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

    fx_cpu_tile t = {.epi = g->epi, .ldc = g->ldc, .ldp = ldp, .lr = g->lr};
    for (long ic = m0; ic < m1; ic += mc_max) {
        long mc = min_l(mc_max, m1 - ic);
        /* unpacked rows are dealt out evenly (50 rows as 5×10 rather than 4×12 + 2) */
        long row_step = packa ? MR : cdiv(mc, cdiv(mc, MR));
        for (long kb = 0; kb < nk; kb++) {
            long pc = kb * kc_max, kc = min_l(kc_max, g->k - pc);
            t.kc = kc;
            t.first = kb == 0;
            t.last = kb == nk - 1;
            if (packa)
                pack_a(pa, g, ic, mc, pc, kc, MR);
            for (long jc = n0; jc < n1; jc += nc_max) {
                long nc = min_l(nc_max, n1 - jc);
                if (packb)
                    pack_b(pb, g, pc, kc, jc, nc, NR);
                for (long ir = 0; ir < mc; ir += row_step) {
                    long i = ic + ir;
                    t.mr = (int)min_l(row_step, mc - ir);
                    t.a_packed = packa;
                    if (packa) {
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
                        if (packb) {
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

int fx_cpu_gemm_run(const fx_cpu_isa *isa, const fx_cpu_gemm *g0, int threads, fx_err *e)
{
    fx_cpu_gemm g = *g0;
    float *own = NULL;
    if (fx_cpu_gemm_needs_work(isa, &g) && !g.work) {
        own = g.work = malloc((size_t)g.m * (size_t)g.n * sizeof(float));
        if (!own)
            return fx_fail(e, "out of memory for a %ldx%ld GEMM's partial sums", g.m, g.n);
    }
    int failed = 0;
    threads = fx_cpu_gemm_threads(&g, threads);
    if (threads <= 1) {
        failed = fx_cpu_gemm_part(isa, &g, 0, 1) != 0;
    } else {
#pragma omp parallel num_threads(threads) reduction(+ : failed)
        failed += fx_cpu_gemm_part(isa, &g, omp_get_thread_num(), omp_get_num_threads()) != 0;
    }
    free(own);
    return failed ? fx_fail(e, "out of memory for the GEMM's pack buffers") : 0;
}
