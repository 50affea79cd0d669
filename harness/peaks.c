/* peaks.c — measured peaks: FMA throughput per ISA (1 thread, all cores) and a STREAM-triad-like
 * bandwidth. Every benchmark row reports its GFLOP/s as a share of these. */
#include <emmintrin.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/fiftyx.h"
#include "peaks.h"
#include "topo.h"

const char *const fx_isa_names[3] = {"avx512", "avx2", "generic"};

/* The generic path is plain x86-64: SSE2, multiply and add (no FMA instruction). */
float fx_fma_loop_generic(long iters, float mul, float add)
{
    __m128 a[12];
    for (int k = 0; k < 12; k++)
        a[k] = _mm_set1_ps(1.0f + 0.01f * (float)k);
    const __m128 m = _mm_set1_ps(mul), c = _mm_set1_ps(add);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            a[k] = _mm_add_ps(_mm_mul_ps(a[k], m), c);
    }
    __m128 s = a[0];
    for (int k = 1; k < 12; k++)
        s = _mm_add_ps(s, a[k]);
    float out[4];
    _mm_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3];
}

static volatile float sink, chain_mul = 0.9999999f, chain_add = 1e-7f;

/* Best of `tries` runs of `iters` iterations on `threads` threads, in GFLOP/s. */
static double fma_rate(float (*loop)(long, float, float), double flops_per_iter, int threads, long iters, int tries)
{
    double best = 0;
    for (int t = 0; t < tries; t++) {
        double t0 = fx_wall_seconds();
#pragma omp parallel num_threads(threads)
        {
            float v = loop(iters, chain_mul, chain_add);
#pragma omp atomic
            sink += v;
        }
        double dt = fx_wall_seconds() - t0;
        double rate = flops_per_iter * (double)iters * threads / dt * 1e-9;
        best = rate > best ? rate : best;
    }
    return best;
}

static double triad_rate(int threads, size_t n, int tries)
{
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    double best = 0;
    if (a && b && c) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) /* first touch by the thread that will use the page */
            a[i] = 0, b[i] = 1, c[i] = 2;
        for (int t = 0; t < tries; t++) {
            const float s = 3.0f;
            double t0 = fx_wall_seconds();
#pragma omp parallel for num_threads(threads) schedule(static)
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] + s * c[i];
            double dt = fx_wall_seconds() - t0;
            double rate = 3.0 * sizeof(float) * (double)n / dt * 1e-9; /* STREAM's count */
            best = rate > best ? rate : best;
        }
        sink += a[n / 2];
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* One pass of each triad, compiled for the widest vectors here (in cache, SSE2's 16-byte loads
 * would bound it below what the kernels' AVX-512 loops reach; in memory it makes no difference). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void triad_pass(float *restrict a,
                                                                                    const float *restrict b,
                                                                                    const float *restrict c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + 3.0f * c[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void update_pass(float *restrict a,
                                                                                     const float *restrict b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] += 3.0f * b[i];
}

/* The triad on data that stays in a cache: `threads` threads, each on its own 3 arrays of n
 * floats, `passes` passes per timing (one pass of a few microseconds would time the fork). */
static double triad_cached_rate(int threads, size_t n, int tries, int passes, int in_place)
{
    double best = 0;
    for (int t = 0; t < tries; t++) {
        double dt = 0;
        int failed = 0, team = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failed)
        {
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
            int ok = a && b && c; /* every thread meets both barriers, whatever it got */
            if (ok) {
                for (size_t i = 0; i < n; i++)
                    a[i] = 0, b[i] = 1, c[i] = 2;
                triad_pass(a, b, c, n); /* warm: in this thread's caches */
            }
            failed += !ok;
#pragma omp barrier
#pragma omp master
            {
                team = omp_get_num_threads(); /* the team that ran, not the one asked for */
                dt = -fx_wall_seconds();
            }
            for (int q = 0; ok && q < passes; q++) {
                if (in_place) /* an update in place, as SGD's w -= lr·g: a read, b read, a written */
                    update_pass(a, b, n);
                else
                    triad_pass(a, b, c, n);
                __asm__ volatile("" : : "r"(a) : "memory"); /* every pass stores */
            }
#pragma omp barrier
#pragma omp master
            dt += fx_wall_seconds();
            if (ok) {
                float v = a[n / 2];
#pragma omp atomic
                sink += v;
            }
            free(a);
            free(b);
            free(c);
        }
        /* STREAM's count, 12 bytes an element either way (the in-place form has no write-allocate
         * read of a separate output: SGD's traffic) */
        double rate = failed || dt <= 0 ? 0 : 3.0 * sizeof(float) * (double)n * passes * team / dt * 1e-9;
        best = rate > best ? rate : best;
    }
    return best;
}

double fx_triad_hot_gbs(int threads, double bytes, int in_place)
{
    size_t n = (size_t)(bytes / 12 / threads);
    n = n < 16 ? 16 : n;
    int passes = (int)(64e6 / (12.0 * (double)n)) + 1; /* ~64 MB moved per thread and timing */
    return triad_cached_rate(threads, n, 3, passes, in_place);
}

void fx_peaks_measure(fx_peaks *p, int threads_all, int quick)
{
    memset(p, 0, sizeof *p);
    p->threads_all = threads_all;
    __builtin_cpu_init();
    int has[3] = {__builtin_cpu_supports("avx512f"),
                  __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), 1};
    float (*loops[3])(long, float, float) = {fx_fma_loop_avx512, fx_fma_loop_avx2, fx_fma_loop_generic};
    double flops[3] = {FX_FMA_FLOPS_AVX512, FX_FMA_FLOPS_AVX2, FX_FMA_FLOPS_GENERIC};
    long iters = quick ? 2000000 : 10000000; /* ~0.05 / 0.25 s per try at ~4 GHz */
    /* the cores the all-cores figure can use: more threads than cores share them */
    int cores = fx_core_count(), busy = cores > 0 && cores < threads_all ? cores : threads_all;
    for (int isa = 0; isa < 3; isa++) {
        if (!has[isa])
            continue;
        p->fma_gflops[isa][0] = fma_rate(loops[isa], flops[isa], 1, iters, 3);
        p->fma_gflops[isa][1] = fma_rate(loops[isa], flops[isa], threads_all, iters, 3);
        /* A shared machine can lose a core for a second: the dev box once measured its 2-thread
         * FMA rate at one core's, and its 2-thread rows then read 179% of peak. An all-cores
         * figure below fx_peak_plausible's floor is measured again (a peak is a best-of, so the
         * best is kept), up to 3 more times; if it stays low it is kept, with a note. */
        /* The other way, a one-thread figure below the all-cores figure per core (seen once:
         * 117.7 GFLOP/s on 1 thread against 353 on 2, and every 1-thread row read 130–155% of
         * peak) is the one-thread figure measured in a slow second: it is measured again. */
        int why;
        for (int again = 0;
             again < 3 && (why = fx_peak_plausible(p->fma_gflops[isa][0], p->fma_gflops[isa][1], busy)) != 0;
             again++) {
            int col = why < 0 ? 1 : 0;
            double r = fma_rate(loops[isa], flops[isa], col ? threads_all : 1, iters, 3);
            p->fma_gflops[isa][col] = r > p->fma_gflops[isa][col] ? r : p->fma_gflops[isa][col];
        }
        why = fx_peak_plausible(p->fma_gflops[isa][0], p->fma_gflops[isa][1], busy);
        if (!p->cpu_note[0] && why < 0)
            snprintf(p->cpu_note, sizeof p->cpu_note,
                     "%s FMA on %d cores measured only %.2fx one thread's after 4 tries: the cores seem "
                     "shared with another load; percentages of the all-cores peak read high",
                     fx_isa_names[isa], busy, p->fma_gflops[isa][1] / p->fma_gflops[isa][0]);
        else if (!p->cpu_note[0] && why > 0)
            snprintf(p->cpu_note, sizeof p->cpu_note,
                     "%s FMA on 1 thread measured only %.2fx the all-cores figure per core after 4 tries: "
                     "percentages of the one-thread peak read high",
                     fx_isa_names[isa], p->fma_gflops[isa][0] * busy / p->fma_gflops[isa][1]);
    }
    size_t n = (size_t)(quick ? 8 : 32) << 20; /* 3 arrays of 32 Mi floats: 384 MiB, beyond any L3 */
    p->triad_gbs[0] = triad_rate(1, n, quick ? 2 : 4);
    p->triad_gbs[1] = triad_rate(threads_all, n, quick ? 2 : 4);
    /* the triad in L2: half of a core's L2 per thread (when hwloc knows its size) */
    fx_topo t;
    if (fx_topo_read(&t) == 0 && t.l2_bytes > 0) {
        p->l2_bytes = t.l2_bytes;
        p->triad_l2_gbs[0] = fx_triad_hot_gbs(1, (double)t.l2_bytes / 2, 0);
        p->triad_l2_gbs[1] = fx_triad_hot_gbs(threads_all, (double)t.l2_bytes / 2 * threads_all, 0);
    }
    p->gpu = fx_gpu_peaks(&p->gpu_ffma_gflops, &p->gpu_copy_gbs, p->gpu_note, sizeof p->gpu_note) == 0;
}

int fx_peak_plausible(double one, double all, int cores)
{
    /* all cores at least 1.3x one thread on 2, 0.4x per core on more (a many-core part's
     * all-core clock can be half its one-core turbo, but not much less); and one thread at
     * least 0.9x all cores' per core (one core alone runs at least as fast as each of many) */
    double floor = 0.4 * cores > 1.3 ? 0.4 * cores : 1.3;
    if (cores < 2 || one <= 0 || all <= 0)
        return 0;
    return all < floor * one ? -1 : one < 0.9 * all / cores ? 1 : 0;
}

double fx_peak_cpu_isa(const fx_peaks *p, int isa, int threads)
{
    int col = threads > 1 ? 1 : 0;
    if (isa < 0 || isa > 2 || p->fma_gflops[isa][col] <= 0)
        return 0;
    /* all-cores figure measured at threads_all; scale for a partial thread count */
    double v = p->fma_gflops[isa][col];
    if (col && threads != p->threads_all && p->threads_all > 0)
        v = p->fma_gflops[isa][0] * threads < v ? p->fma_gflops[isa][0] * threads : v;
    return v;
}

double fx_peak_cpu(const fx_peaks *p, int threads)
{
    for (int isa = 0; isa < 3; isa++)
        if (p->fma_gflops[isa][threads > 1] > 0)
            return fx_peak_cpu_isa(p, isa, threads);
    return 0;
}
