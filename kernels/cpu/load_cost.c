/* load_cost.c — what loads from L1 cost the FMA rate of this core, on one thread: the probe
 * behind kernels/cpu/NOTES.md, entry 32.
 *
 *   make load-cost && build/load-cost
 *
 * Every case runs the same 24 independent FMA chains an iteration (zmm0..23, enough to cover
 * the FMA latency at two FMAs a cycle), written in assembly so that the compiler cannot fold,
 * drop or reorder the loads. The cases add loads that the FMAs do not wait for (their results
 * go unused) or that feed them as a micro-kernel's do:
 *   - registers only: the FMA peak;
 *   - + L vector loads (64 bytes each) or + 16 broadcasts (4 bytes each), not consumed;
 *   - the register tiles of an MR×NR micro-kernel per k step: 12×32 (2 vector loads of B, 12
 *     broadcasts of A: tile_avx512.c's), 8×48 (3 + 8) and 6×64 (4 + 6);
 *   - the sparse update's pattern: a vector load for every FMA, or one for every two; and the
 *     load folded into the FMA, addressed as base + disp or as base + index·4 + disp.
 * Operands stay in L1. Each figure is the best of 5 runs, the cases interleaved; the percentage
 * is of the registers-only case's best. AVX-512 only; exit status 2 elsewhere. */
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float bbuf[8192] __attribute__((aligned(64)));
static float abuf[8192] __attribute__((aligned(64)));

/* one FMA: acc += b · zmm30 (zmm30: the broadcast, or a constant) */
#define FM(b, acc) "vfmadd231ps %%zmm" #b ", %%zmm30, %%zmm" #acc "\n\t"
#define BC(off) "vbroadcastss " #off "(%1), %%zmm30\n\t"
#define VL(off, r) "vmovups " #off "(%0), %%zmm" #r "\n\t"
#define LD(off) "vmovups " #off "(%0), %%zmm31\n\t" /* a load nothing waits for */
#define LB(off) "vbroadcastss " #off "(%1), %%zmm31\n\t"

#define FMA24                                                                                      \
    FM(24, 0) FM(25, 1) FM(24, 2) FM(25, 3) FM(24, 4) FM(25, 5) FM(24, 6) FM(25, 7) FM(24, 8)     \
    FM(25, 9) FM(24, 10) FM(25, 11) FM(24, 12) FM(25, 13) FM(24, 14) FM(25, 15) FM(24, 16)        \
    FM(25, 17) FM(24, 18) FM(25, 19) FM(24, 20) FM(25, 21) FM(24, 22) FM(25, 23)
#define LD4(o) LD(o) LD(o + 64) LD(o + 128) LD(o + 192)
#define LD8(o) LD4(o) LD4(o + 256)
#define LB4(o) LB(o) LB(o + 4) LB(o + 8) LB(o + 12)

/* 12×32: per row, one broadcast and two FMAs */
#define R2(o, a0, a1) BC(o) FM(24, a0) FM(25, a1)
#define T12X32                                                                                     \
    VL(0, 24) VL(64, 25) R2(0, 0, 1) R2(4, 2, 3) R2(8, 4, 5) R2(12, 6, 7) R2(16, 8, 9)             \
    R2(20, 10, 11) R2(24, 12, 13) R2(28, 14, 15) R2(32, 16, 17) R2(36, 18, 19) R2(40, 20, 21)     \
    R2(44, 22, 23)
#define R3(o, a0, a1, a2) BC(o) FM(24, a0) FM(25, a1) FM(26, a2)
#define T8X48                                                                                      \
    VL(0, 24) VL(64, 25) VL(128, 26) R3(0, 0, 1, 2) R3(4, 3, 4, 5) R3(8, 6, 7, 8)                  \
    R3(12, 9, 10, 11) R3(16, 12, 13, 14) R3(20, 15, 16, 17) R3(24, 18, 19, 20) R3(28, 21, 22, 23)
#define R4(o, a0, a1, a2, a3) BC(o) FM(24, a0) FM(25, a1) FM(26, a2) FM(27, a3)
#define T6X64                                                                                      \
    VL(0, 24) VL(64, 25) VL(128, 26) VL(192, 27) R4(0, 0, 1, 2, 3) R4(4, 4, 5, 6, 7)               \
    R4(8, 8, 9, 10, 11) R4(12, 12, 13, 14, 15) R4(16, 16, 17, 18, 19) R4(20, 20, 21, 22, 23)

/* the sparse update's inner loops (sparse_avx512.c): each vector of a row of x loaded for one
 * FMA (one row of C per list entry), and loaded once for two FMAs (two rows of C that share an
 * entry: the lead of entry 32); the values in zmm28 and zmm29 */
#define FV(b, v, acc) "vfmadd231ps %%zmm" #b ", %%zmm" #v ", %%zmm" #acc "\n\t"
#define S1(o, r, a) VL(o, r) FV(r, 28, a)
#define S2(o, r, a0, a1) VL(o, r) FV(r, 28, a0) FV(r, 29, a1)
#define SPARSE1                                                                                    \
    S1(0, 24, 0) S1(64, 25, 1) S1(128, 26, 2) S1(192, 27, 3) S1(256, 24, 4) S1(320, 25, 5)         \
    S1(384, 26, 6) S1(448, 27, 7) S1(512, 24, 8) S1(576, 25, 9) S1(640, 26, 10) S1(704, 27, 11)   \
    S1(768, 24, 12) S1(832, 25, 13) S1(896, 26, 14) S1(960, 27, 15) S1(1024, 24, 16)              \
    S1(1088, 25, 17) S1(1152, 26, 18) S1(1216, 27, 19) S1(1280, 24, 20) S1(1344, 25, 21)          \
    S1(1408, 26, 22) S1(1472, 27, 23)
#define SPARSE2                                                                                    \
    S2(0, 24, 0, 1) S2(64, 25, 2, 3) S2(128, 26, 4, 5) S2(192, 27, 6, 7) S2(256, 24, 8, 9)         \
    S2(320, 25, 10, 11) S2(384, 26, 12, 13) S2(448, 27, 14, 15) S2(512, 24, 16, 17)               \
    S2(576, 25, 18, 19) S2(640, 26, 20, 21) S2(704, 27, 22, 23)

/* the same loads folded into the FMAs as their memory operand, addressed as base + disp, or
 * as base + index·4 + disp (what GCC makes of sparse_avx512.c's b + idx·ldb + v·16) */
#define FB(o, a) "vfmadd231ps " #o "(%0), %%zmm28, %%zmm" #a "\n\t"
#define FI(o, a) "vfmadd231ps " #o "(%0,%2,4), %%zmm28, %%zmm" #a "\n\t"
#define FOLD(F)                                                                                    \
    F(0, 0) F(64, 1) F(128, 2) F(192, 3) F(256, 4) F(320, 5) F(384, 6) F(448, 7) F(512, 8)        \
    F(576, 9) F(640, 10) F(704, 11) F(768, 12) F(832, 13) F(896, 14) F(960, 15) F(1024, 16)       \
    F(1088, 17) F(1152, 18) F(1216, 19) F(1280, 20) F(1344, 21) F(1408, 22) F(1472, 23)

#define CLOBBERS                                                                                   \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",     \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20",  \
        "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory"

/* Each case is one assembly statement, its loop included, so that no vector register has to
 * survive from one statement to the next: the accumulators start from zero and zmm24, 25, 28,
 * 29 and 30 hold normal numbers where the registers-only cases read them (no denormals: an
 * assist would slow the FMAs for another reason). Per iteration B's pointer (%0) moves 1536
 * bytes, what the 24-load cases read, so that those loads meet fresh lines each time as the
 * sparse update's rows of x do, wrapping within 16 KiB (the reads end within 17.5 KiB: L1 is
 * 48 KiB); A's (%1) moves 64 bytes. %2 is a zero the compiler cannot see, for the indexed case. */
#define INIT_ACC(i) "vxorps %%xmm" #i ", %%xmm" #i ", %%xmm" #i "\n\t"
#define INIT                                                                                       \
    INIT_ACC(0) INIT_ACC(1) INIT_ACC(2) INIT_ACC(3) INIT_ACC(4) INIT_ACC(5) INIT_ACC(6) INIT_ACC(7) \
    INIT_ACC(8) INIT_ACC(9) INIT_ACC(10) INIT_ACC(11) INIT_ACC(12) INIT_ACC(13) INIT_ACC(14)       \
    INIT_ACC(15) INIT_ACC(16) INIT_ACC(17) INIT_ACC(18) INIT_ACC(19) INIT_ACC(20) INIT_ACC(21)     \
    INIT_ACC(22) INIT_ACC(23) "vbroadcastss %8, %%zmm24\n\tvbroadcastss %8, %%zmm25\n\t"          \
    "vbroadcastss %9, %%zmm30\n\tvbroadcastss %9, %%zmm28\n\tvbroadcastss %9, %%zmm29\n\t"
#define LOOP_END                                                                                   \
    "add $1536, %4\n\tand $16383, %4\n\tadd $64, %5\n\tand $16383, %5\n\tdec %3\n\tjnz 1b\n\t"

#define CASE(name, body)                                                                           \
    __attribute__((target("avx512f"), noinline)) static double name(long iters)                   \
    {                                                                                              \
        static const float one = 1.0f, small = 1e-7f;                                              \
        const float *p, *q;                                                                        \
        long zero = 0, n = iters, ob = 0, oa = 0;                                                  \
        double t0 = now();                                                                         \
        __asm__ volatile(INIT "1:\n\tlea (%6,%4), %0\n\tlea (%7,%5), %1\n\t" body LOOP_END          \
                         : "=&r"(p), "=&r"(q), "+r"(zero), "+r"(n), "+r"(ob), "+r"(oa)             \
                         : "r"(bbuf), "r"(abuf), "m"(one), "m"(small)                              \
                         : CLOBBERS, "cc");                                                        \
        double t = now() - t0;                                                                     \
        (void)p;                                                                                   \
        (void)q;                                                                                   \
        return (double)iters * 24 * 32 / t * 1e-9;                                                 \
    }

/* registers only: zmm24, 25 and 30 hold constants */
CASE(regs, FMA24)
CASE(ld4, FMA24 LD4(0))
CASE(ld8, FMA24 LD8(0))
CASE(ld16, FMA24 LD8(0) LD8(512))
CASE(ld24, FMA24 LD8(0) LD8(512) LD8(1024))
CASE(lb16, FMA24 LB4(0) LB4(16) LB4(32) LB4(48))
CASE(t12x32, T12X32)
CASE(t8x48, T8X48)
CASE(t6x64, T6X64)
CASE(sparse1, SPARSE1)
CASE(sparse2, SPARSE2)
CASE(fold_base, FOLD(FB))
CASE(fold_index, FOLD(FI))

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: load-cost   (no arguments)\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "load-cost: this CPU has no AVX-512\n");
        return 2;
    }
    for (int i = 0; i < 8192; i++)
        bbuf[i] = abuf[i] = 1e-7f * (float)(i % 97);
    static const struct {
        const char *what;
        double (*f)(long);
    } cases[] = {
        {"24 FMAs on registers", regs},
        {"+ 4 vector loads, not consumed", ld4},
        {"+ 8 vector loads, not consumed", ld8},
        {"+ 16 vector loads, not consumed", ld16},
        {"+ 24 vector loads, not consumed", ld24},
        {"+ 16 broadcasts, not consumed", lb16},
        {"tile 12x32: 2 vector loads + 12 broadcasts", t12x32},
        {"tile 8x48: 3 vector loads + 8 broadcasts", t8x48},
        {"tile 6x64: 4 vector loads + 6 broadcasts", t6x64},
        {"24 vector loads, each for one FMA", sparse1},
        {"12 vector loads, each for two FMAs", sparse2},
        {"24 FMAs, each loading its vector: base + disp", fold_base},
        {"24 FMAs, each loading its vector: base + index", fold_index},
    };
    const int n = (int)(sizeof cases / sizeof cases[0]);
    double best[16] = {0};
    const long iters = 4000000;
    for (int run = 0; run < 5; run++)
        for (int c = 0; c < n; c++) {
            double g = cases[c].f(iters);
            best[c] = g > best[c] ? g : best[c];
        }
    printf("one thread, 24 FMAs (768 FLOP) an iteration, best of 5 runs of %ld iterations\n", iters);
    for (int c = 0; c < n; c++)
        printf("%-46s %7.1f GFLOP/s  %5.1f%%\n", cases[c].what, best[c], 100 * best[c] / best[0]);
    return 0;
}
