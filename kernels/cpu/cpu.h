/* cpu.h — the CPU kernels' insides: one GEMM loop nest (gemm.c), micro-kernels per ISA
 * (tile_avx512.c, tile_avx2.c, tile_generic.c), the ISA table and its dispatch (isa.c).
 *
 * Everything is row-major. The GEMM computes C[M×N] (op) A·B with the epilogue of fx_epilogue,
 * where A(i,k) = a[i·a_rs + k·a_cs] and B(k,j) = b[k·b_rs + j·b_cs]: strides instead of NN/NT/TN,
 * so that the training step can hand over transposed views without copying.
 *
 * The register tile is MR rows × NR columns of C: NR along a row (vectors loaded from B),
 * MR rows (scalars of A broadcast). The loop nest is BLIS's five loops on that tile:
 *   for ic in M by MC       packed A block  MC×KC   (L3: shared by the NC loop)
 *    for pc in K by KC
 *     for jc in N by NC     packed B block  KC×NC   (L2: re-used by every MR row panel)
 *      for ir by MR         A micro-panel   MR×KC   (L1: re-used by every NR column panel)
 *       for jr by NR        micro-kernel on one MR×NR tile of C
 */
#ifndef FIFTYX_CPU_H
#define FIFTYX_CPU_H
#include <stdint.h>
#include "../fiftyx.h"

/* One MR×NR tile for a micro-kernel: acc = Σ_{k<kc} A(r,k)·B(k,j), then the epilogue. */
typedef struct {
    long kc;
    const float *a;
    long a_rs, a_cs; /* A(r,k) = a[r·a_rs + k·a_cs] for r < mr */
    const float *b;
    long b_rs;       /* B(k,j) = b[k·b_rs + j] for j < nr (unit column stride) */
    int mr, nr;      /* the valid part of the tile */
    int a_packed;    /* a_rs == 1, a_cs == MR and rows mr..MR-1 hold zeros */
    int b_padded;    /* packed B: every row has NR floats, zeros past nr */
    /* Where the sum goes. K is cut into blocks: the first block starts from 0, later ones add
     * the partial sum p; only the last applies the epilogue to c. p == c except for SGD, whose
     * c holds weights that must not see a partial sum. */
    int first, last;
    fx_epilogue epi;
    float *c;
    long ldc;
    float *p;
    long ldp;
    uint8_t *mask; /* same layout as c */
    float lr;
} fx_cpu_tile;

/* How the AVX-512 and AVX2 micro-kernels pick an instance of their inlined
 * TILE(t, rows, vectors, edge, rs, cs): 1 or 2 vectors of B, whole or masked at B's edge, each a
 * compile-time constant, so that every instance is straight-line code. */
#define FX_CPU_TILE_VARIANTS(TILE, t, rows, nv, edge, rs, cs)                                      \
    do {                                                                                           \
        if ((nv) == 2 && !(edge))                                                                  \
            TILE(t, rows, 2, 0, rs, cs);                                                           \
        else if ((nv) == 2)                                                                        \
            TILE(t, rows, 2, 1, rs, cs);                                                           \
        else if (!(edge))                                                                          \
            TILE(t, rows, 1, 0, rs, cs);                                                           \
        else                                                                                       \
            TILE(t, rows, 1, 1, rs, cs);                                                           \
    } while (0)

/* A weight update whose A is mostly zeros: C[m×n] −= lr · A[m×k]·B[k×n], every operand
 * row-major with unit column stride, A's zeros skipped. The step's w1ᵀ update is one: A = ghᵀ,
 * zero wherever the ReLU mask is (about half of it), B = x. fx_cpu_sparse_compact lists each row
 * of A's non-zeros (column index and value), fx_cpu_sparse_sgd then runs on the lists alone.
 * Rows go in pairs (0 and 1, 2 and 3, ...; an odd last row alone): within each k block a pair's
 * lists start with the columns where both rows are non-zero, in the same order in both, so
 * that one load of B's row serves the two rows (NOTES.md, entry 32); each row's own columns
 * follow.
 * B is read in blocks of FX_SPARSE_KB rows × FX_SPARSE_NB columns (32 KiB: L1); the sums of the
 * k blocks before the last wait in part. */
#define FX_SPARSE_KB 64
#define FX_SPARSE_NB 128
typedef struct {
    long m, n, k;
    const float *a;
    long lda;
    const float *b;
    long ldb;
    float *c;
    long ldc;
    float lr;
    long ld;         /* row stride of idx and val: fx_cpu_sparse_ld(k) */
    int32_t *idx;    /* [m × ld] the columns of A's non-zeros, row by row, k block by k block;
                      * the second row of a pair leaves its slots of the shared columns unwritten
                      * (they are read from the first row's) */
    float *val;      /* [m × ld] their values */
    int32_t *starts; /* [m × fx_cpu_sparse_sld(k)] see fx_cpu_sparse_sld */
    float *part;     /* [m × FX_SPARSE_NB] partial sums when k > FX_SPARSE_KB, else unused */
} fx_cpu_sparse;

/* Where the step takes it (NOTES.md, entry 31, `make sparse-sweep`): a thread's share of the
 * hidden units (m) at most FX_SPARSE_MAX_ROWS, D_in (n) at least FX_SPARSE_MIN_COLS, the lists
 * (8 bytes per element of ghᵀ) within FX_SPARSE_MAX_LIST elements (16 MiB), and ghᵀ's slice at
 * most FX_SPARSE_MAX_DENSITY non-zero in that step; elsewhere the dense GEMM was as fast or
 * faster (entry 31: the density crossover at 0.63–0.70; 0.99–1.5x the GEMM's time with 256–512
 * rows, 1.85x at n = 16). With entry 32's shared loads the crossover is 0.65 at 128x4096x256 and
 * 0.75–0.82 at 100 rows of 1000, and 256–512 rows take 0.89–1.08x the GEMM's time at the
 * tutorial's density: the limits stay, on the side of the slowest case measured. */
#define FX_SPARSE_MAX_ROWS 128
#define FX_SPARSE_MIN_COLS 128
#define FX_SPARSE_MAX_LIST (1L << 21)
#define FX_SPARSE_MAX_DENSITY 0.6

/* The row stride the step keeps x at (B of the sparse update): D_in rounded up to whole cache
 * lines, so that no vector load of a row straddles two (at D_in = 1000, rows 4000 bytes apart,
 * every other row did), and an odd number of lines, so that the 64 rows of a block of x fall
 * into different sets of L1 (at 4096 floats, rows 16 KiB apart, all of them shared 8 sets of
 * 12 ways): NOTES.md, entry 31. Short rows stay as they are, where padding would be most of x. */
static inline long fx_cpu_x_stride(long d_in)
{
    long lines = (d_in + 15) / 16;
    return d_in < 64 ? d_in : (lines | 1) * 16;
}

static inline long fx_cpu_sparse_kblocks(long k) { return (k + FX_SPARSE_KB - 1) / FX_SPARSE_KB; }
/* idx's and val's row stride: k rounded up to whole vectors, and one vector more (the compaction
 * stores whole vectors at the running count, which can run up to k) */
static inline long fx_cpu_sparse_ld(long k) { return (k + 15) / 16 * 16 + 16; }
/* starts's row stride: each k block's start in the row's list and the list's end (kblocks + 1),
 * then, in the first row of each pair, how many entries of each k block the pair shares */
static inline long fx_cpu_sparse_sld(long k) { return 2 * fx_cpu_sparse_kblocks(k) + 1; }

/* An instruction set: its micro-kernel, its blocking, its element-wise kernels. */
typedef struct {
    const char *name;     /* avx512 | avx2 | generic (the FIFTYX_ISA value) */
    const char *ukernel;  /* how the micro-kernel works, for describe() */
    int mr, nr;           /* register tile */
    long kc, nc, mc;      /* cache blocks: see the table in isa.c */
    long pack_bytes;      /* operands this large (per thread) ...                            */
    long pack_reuse;      /* ... and re-read by this many rows/columns of C or more are packed */
    int (*supported)(void);
    void (*tile)(const fx_cpu_tile *t);
    /* g = 2(yp − y), returns Σ(yp − y)² (accumulated in double) */
    double (*loss_grad)(long n, const float *yp, const float *y, float *g);
    void (*sgd)(long n, float *w, const float *g, float lr);
    /* the sparse update (NULL where this ISA has none): compact returns the non-zeros' count */
    long (*sparse_compact)(const fx_cpu_sparse *s);
    void (*sparse_sgd)(const fx_cpu_sparse *s);
} fx_cpu_isa;

extern const fx_cpu_isa fx_cpu_isa_avx512, fx_cpu_isa_avx2, fx_cpu_isa_generic;

/* The ISA the `cpu` backend uses: FIFTYX_ISA if set (NULL and *why if that one cannot run
 * here or is unknown), else the best this CPU supports; FIFTYX_BLOCKS=KC,NC,MC overrides its
 * cache blocks (for tuning). */
const fx_cpu_isa *fx_cpu_isa_select(const char **why);
/* isa with FIFTYX_BLOCKS's cache blocks when it is set; NULL (and *why) when it is malformed. */
const fx_cpu_isa *fx_cpu_isa_with_blocks(const fx_cpu_isa *isa, const char **why);

/* A GEMM problem with strided operands (see the top of this file). */
typedef struct {
    long m, n, k;
    const float *a;
    long a_rs, a_cs;
    const float *b;
    long b_rs, b_cs;
    fx_epilogue epi;
    float *c;
    long ldc;
    uint8_t *mask; /* layout of c */
    float lr;
    /* SGD with K longer than one KC block needs somewhere to keep the partial sums:
     * at least m·n floats (row stride n); NULL lets the driver allocate it. */
    float *work;
} fx_cpu_gemm;

/* fx_gemm_args (NN/NT/TN, compact) as strides. */
fx_cpu_gemm fx_cpu_gemm_from_args(const fx_gemm_args *g);

/* Whole GEMM, on `threads` OpenMP threads (fewer when it is too small to pay for them). */
int fx_cpu_gemm_run(const fx_cpu_isa *isa, const fx_cpu_gemm *g, int threads, fx_err *e);

/* Whole GEMM on the calling thread alone, for callers that share out the work themselves (the
 * training step, inside its parallel region). g->work must be set if fx_cpu_gemm_needs_work. */
int fx_cpu_gemm_one(const fx_cpu_isa *isa, const fx_cpu_gemm *g);
int fx_cpu_gemm_needs_work(const fx_cpu_isa *isa, const fx_cpu_gemm *g);

/* How many of `threads` a GEMM of this size is worth. */
int fx_cpu_gemm_threads(const fx_cpu_gemm *g, int threads);

/* The thread count to use: fx_threads(), or OpenMP's default when that is 0. */
int fx_cpu_threads(void);

/* Scalar epilogue on one element (shared by the portable kernel and tests of the others). */
static inline void fx_cpu_epilogue1(const fx_cpu_tile *t, long ci, long pi, float acc)
{
    if (!t->first)
        acc += t->p[pi];
    if (!t->last) {
        t->p[pi] = acc;
        return;
    }
    switch (t->epi) {
    case FX_EPI_STORE:
        t->c[ci] = acc;
        break;
    case FX_EPI_RELU_MASK:
        t->mask[ci] = acc >= 0.0f;
        t->c[ci] = acc > 0.0f ? acc : 0.0f;
        break;
    case FX_EPI_MASK:
        t->c[ci] = t->mask[ci] ? acc : 0.0f;
        break;
    case FX_EPI_SGD:
        t->c[ci] -= t->lr * acc;
        break;
    }
}
#endif
