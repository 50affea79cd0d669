/* isa.c — the table of instruction sets: micro-kernel shape and cache blocks as data, and the
 * choice among them at run time (CPUID, or FIFTYX_ISA=avx512|avx2|generic to force one).
 *
 * The blocks follow from the caches hwloc reports on the dev box (`fiftyx info`: L1d 32 KiB,
 * L2 1 MiB per core, L3 32 MiB shared; kernels/cpu/NOTES.md has the measurements):
 *   KC: the A micro-panel (MR×KC floats) stays in L1 while B micro-panels stream past it;
 *   NC: the packed B block (KC×NC) stays in L2 while every MR row panel of A uses it;
 *   MC: the packed A block (MC×KC: 3 MiB at 1536×512) lives in L3, re-used by every NC block
 *       of the thread; small enough to stay within one core's share of a shared L3 (Zen 4: 4 MiB
 *       per core) and within the second-level TLB's reach (768 pages of 4 KiB). 4096 (8 MiB) was
 *       3–6% slower at 4096³ and 8192³ on the Intel Xeon VM (NOTES.md, 25).
 * pack_bytes, pack_reuse: an operand smaller than pack_bytes (per thread), or re-used by fewer
 * than pack_reuse rows or columns of C, stays where it lies (BLIS's "sup" path): copying it would cost about as
 * much as the GEMM gains. Every GEMM of the tutorial stays unpacked; 256³ packs both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"

void fx_cpu_tile_avx512(const fx_cpu_tile *t);
void fx_cpu_tile_avx2(const fx_cpu_tile *t);
void fx_cpu_tile_generic(const fx_cpu_tile *t);
double fx_cpu_loss_grad_avx512(long n, const float *yp, const float *y, float *g);
double fx_cpu_loss_grad_avx2(long n, const float *yp, const float *y, float *g);
double fx_cpu_loss_grad_generic(long n, const float *yp, const float *y, float *g);
void fx_cpu_sgd_avx512(long n, float *w, const float *g, float lr);
void fx_cpu_sgd_avx2(long n, float *w, const float *g, float lr);
void fx_cpu_sgd_generic(long n, float *w, const float *g, float lr);
long fx_cpu_sparse_compact_avx512(const fx_cpu_sparse *s);
void fx_cpu_sparse_sgd_avx512(const fx_cpu_sparse *s);

static int has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
}

static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int always(void) { return 1; }

/* name, micro-kernel, MR, NR, KC, NC, MC, pack_bytes, pack_reuse */
const fx_cpu_isa fx_cpu_isa_avx512 = {
    "avx512", "12x32 (12 broadcasts of A x 2 zmm of B, 24 zmm accumulators)",
    12, 32, 512, 480, 1536, 128 << 10, 128,
    has_avx512, fx_cpu_tile_avx512, fx_cpu_loss_grad_avx512, fx_cpu_sgd_avx512,
    fx_cpu_sparse_compact_avx512, fx_cpu_sparse_sgd_avx512,
};
const fx_cpu_isa fx_cpu_isa_avx2 = {
    "avx2", "6x16 (6 broadcasts of A x 2 ymm of B, 12 ymm accumulators)",
    6, 16, 512, 480, 1536, 128 << 10, 128,
    has_avx2, fx_cpu_tile_avx2, fx_cpu_loss_grad_avx2, fx_cpu_sgd_avx2, NULL, NULL,
};
const fx_cpu_isa fx_cpu_isa_generic = {
    "generic", "4x8 portable C in GNU C 4-float vectors (SSE2, the x86-64 baseline)",
    4, 8, 256, 256, 1024, 128 << 10, 128,
    always, fx_cpu_tile_generic, fx_cpu_loss_grad_generic, fx_cpu_sgd_generic, NULL, NULL,
};

/* FIFTYX_BLOCKS=KC,NC,MC replaces the table's cache blocks (the tuning sweeps of NOTES.md run
 * through `fiftyx bench` this way, and CI cuts every block loop many times with it, on every ISA:
 * the cpu-avx512, cpu-avx2 and cpu-generic backends honour it too); describe() shows the blocks in
 * use. */
const fx_cpu_isa *fx_cpu_isa_with_blocks(const fx_cpu_isa *isa, const char **why)
{
    const char *s = getenv("FIFTYX_BLOCKS");
    if (!isa || !s || !*s)
        return isa;
    static fx_cpu_isa tuned[3]; /* one per ISA, rewritten with the same values on every call */
    long kc, nc, mc;
    char tail;
    if (sscanf(s, "%ld,%ld,%ld%c", &kc, &nc, &mc, &tail) != 3 || kc < 1 || nc < 1 || mc < 1 ||
        kc > (1L << 20) || nc > (1L << 20) || mc > (1L << 20)) {
        if (why)
            *why = "FIFTYX_BLOCKS must be KC,NC,MC (three positive integers)";
        return NULL;
    }
    fx_cpu_isa *t = &tuned[isa == &fx_cpu_isa_avx512 ? 0 : isa == &fx_cpu_isa_avx2 ? 1 : 2];
    *t = *isa;
    t->kc = kc;
    t->nc = (nc + isa->nr - 1) / isa->nr * isa->nr;
    t->mc = (mc + isa->mr - 1) / isa->mr * isa->mr;
    return t;
}

const fx_cpu_isa *fx_cpu_isa_select(const char **why)
{
    static const fx_cpu_isa *const all[] = {&fx_cpu_isa_avx512, &fx_cpu_isa_avx2, &fx_cpu_isa_generic};
    const char *want = getenv("FIFTYX_ISA");
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (want && *want) {
            if (strcmp(want, all[i]->name))
                continue;
            if (all[i]->supported())
                return fx_cpu_isa_with_blocks(all[i], why);
            if (why)
                *why = i == 0 ? "FIFTYX_ISA=avx512, but this CPU lacks AVX-512 (F, VL, BW, DQ)"
                              : "FIFTYX_ISA=avx2, but this CPU lacks AVX2 and FMA";
            return NULL;
        }
        if (all[i]->supported())
            return fx_cpu_isa_with_blocks(all[i], why);
    }
    if (why)
        *why = "FIFTYX_ISA must be avx512, avx2 or generic";
    return NULL;
}
