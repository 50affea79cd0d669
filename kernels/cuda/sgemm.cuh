// sgemm.cuh — FP32 GEMM on the FFMA units (no tensor cores), one loop nest for every variant.
//
//   C[M×N] = epilogue(op(A)·op(B)),  row-major, compact; op ∈ {NN, NT, TN} as in fiftyx.h.
//
// Structure (after siboehm/SGEMM_CUDA kernel 10 "warptiling", rewritten with bounds and epilogues):
//   block tile BM×BN, K in steps of BK; A and B tiles live in shared memory k-major
//   (As[k][m], Bs[k][n]) so that the inner loop reads both with 16-byte loads;
//   each warp owns a WM×WN tile, split into WMITER×WNITER sub-tiles of 16×32; in a sub-tile the
//   32 lanes form 4×8 micro-tiles of 4×4 (one float4 of A, one of B per k).
//   Loads are register-staged and double-buffered: the next K tile is fetched into registers while
//   the current one is multiplied, then stored into the other shared buffer — one __syncthreads
//   per K tile. Operands whose memory layout is k-contiguous (A of NN/NT, B of NT) are transposed
//   on that store; cp.async cannot transpose, which is why this kernel stages through registers
//   (ASYNC_B, an experiment for a GPU session, sends B by cp.async where it is k-major: NOTES.md).
//   Bounds: every load is predicated (zero fill) and every store checked, for any M, N, K ≥ 1;
//   16-byte loads/stores where the operand is 16-byte aligned and its contiguous extent is a
//   multiple of 4 (then a 4-group is wholly in or out of bounds), 4 scalar accesses otherwise.
//   Split-K: blockIdx.y is the K slice; each slice stores raw partial sums to a workspace, the
//   last slice of a tile to arrive (integer ticket) sums all partials in slice order 0..S−1 — a
//   fixed order, so results are reproducible — and then applies the epilogue. The epilogue never
//   sees a partial sum (ReLU and SGD are not linear in the split).
#pragma once
#include <stdint.h>
#include "../fiftyx.h"
#include "compat.cuh"

namespace fx {

// ---- tile configurations -------------------------------------------------------------------

template <int BM_, int BN_, int BK_, int WM_, int WN_, int THREADS_, int MIN_BLOCKS_>
struct SgemmConfig {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, THREADS = THREADS_;
    static constexpr int MIN_BLOCKS = MIN_BLOCKS_; // __launch_bounds__: caps registers at 64K/(THREADS·MIN_BLOCKS)
    static constexpr int TM = 4, TN = 4;             // a lane's micro-tile: one float4 of A, of B
    static constexpr int LM = 4, LN = 8;             // lanes of a warp as LM×LN micro-tiles
    static constexpr int WSUBM = LM * TM, WSUBN = LN * TN;
    static constexpr int WMITER = WM / WSUBM, WNITER = WN / WSUBN;
    static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN;
    static constexpr int PAD = 4;                    // floats: keeps rows 16-byte aligned, eases
                                                     // the transposing stores' bank conflicts
    static constexpr int A_LOADS = BM * BK / 4 / THREADS, B_LOADS = BN * BK / 4 / THREADS;
    static_assert(LM * LN == 32, "a warp's lanes cover LM×LN micro-tiles");
    static_assert(WM % WSUBM == 0 && WN % WSUBN == 0, "warp tile is whole sub-tiles");
    static_assert(BM % WM == 0 && BN % WN == 0, "block tile is whole warp tiles");
    static_assert(WARPS_M * WARPS_N * 32 == THREADS, "one warp per warp tile");
    static_assert(BK % 4 == 0, "K tile is whole float4s");
    static_assert(BM * BK % (4 * THREADS) == 0 && BN * BK % (4 * THREADS) == 0,
                  "every thread loads the same number of float4s of each tile");
    static_assert(A_LOADS >= 1 && B_LOADS >= 1, "at least one float4 per thread");
    static_assert(((BM + PAD) * 4) % 16 == 0 && ((BN + PAD) * 4) % 16 == 0,
                  "shared rows stay 16-byte aligned for float4 reads");
};

// Registers (ptxas, sm_90, nvcc 13.0): Large 168–187 with no spills at MIN_BLOCKS 1; capped at 128
// (MIN_BLOCKS 2) it spills 60–150 bytes, with BK 8 too — which wins is for a GPU to say (NOTES.md).
// Mid 128 (NN: 8-byte stack frame, used outside the K loop), Small 112–121.
//                       BM   BN  BK  WM  WN threads blocks/SM   per-thread tile
using CfgLarge = SgemmConfig<128, 128, 16, 32, 64, 256, 1>; // 8×8: large squares
using CfgMid = SgemmConfig<64, 64, 16, 32, 32, 128, 4>;     // 8×4: mid sizes, more blocks
using CfgSmall = SgemmConfig<32, 32, 16, 16, 32, 64, 8>;    // 4×4: skinny shapes, split-K
// Experiments for a GPU session (NOTES.md, "Predictions": the first two for 4096³), built in
// sgemm_exp.cu and run only where FIFTYX_SGEMM_CFG names them — the heuristic never picks them:
using CfgLarge2 = SgemmConfig<128, 128, 16, 32, 64, 256, 2>;  // 8×8 capped at 128 regs: 16 warps/SM
using CfgLargeBk8 = SgemmConfig<128, 128, 8, 32, 64, 256, 2>; // the same with half the K tile
// and `large-async`: CfgLarge with B's tiles by cp.async (sgemm_kernel's ASYNC_B), where K allows

enum {
    FX_CFG_LARGE = 0, FX_CFG_MID = 1, FX_CFG_SMALL = 2,
    FX_NCFG = 3,                                                   // the configs the heuristic chooses from
    FX_CFG_LARGE2 = 3, FX_CFG_LARGE_BK8 = 4, FX_CFG_LARGE_ASYNC = 5, // experiments (forced only)
    FX_NCFG_ALL = 6
};
static const int fx_cfg_bm[FX_NCFG_ALL] = {128, 64, 32, 128, 128, 128};
static const int fx_cfg_bn[FX_NCFG_ALL] = {128, 64, 32, 128, 128, 128};
static const int fx_cfg_threads[FX_NCFG_ALL] = {256, 128, 64, 256, 256, 256};
static const char *const fx_cfg_name[FX_NCFG_ALL] = {"128x128", "64x64", "32x32", "128x128/2", "128x128x8/2",
                                                     "128x128 cp.async"};
static const char *const fx_cfg_alias[FX_NCFG_ALL] = {"large", "mid", "small", "large2", "large-bk8", "large-async"};
constexpr int FX_SGEMM_BK = 16; // K slices are multiples of this: whole K tiles of every config
static_assert(FX_SGEMM_BK % CfgLarge::BK == 0 && FX_SGEMM_BK % CfgMid::BK == 0 && FX_SGEMM_BK % CfgSmall::BK == 0 &&
                  FX_SGEMM_BK % CfgLarge2::BK == 0 && FX_SGEMM_BK % CfgLargeBk8::BK == 0,
              "a split-K slice is whole K tiles of every config");
constexpr int FX_SGEMM_GROUP_M = 8; // tile rows per L2-friendly group of the launch order
constexpr int FX_SGEMM_MAX_SPLITS = 64;

// Everything a launch needs, by value.
struct SgemmParams {
    const float *a, *b;
    float *c;
    uint8_t *mask;
    float lr;
    int m, n, k;
    int kchunk, splits;     // K slice per blockIdx.y (a multiple of BK), number of slices
    int vec_a, vec_b, vec_c; // 16-byte paths allowed (alignment and extents checked on the host)
    float *ws;              // split-K partials [splits][m][ldw]
    int ldw;                // n rounded up to 4
    int *counters;          // split-K tickets, one per tile, zero between launches
};

// ---- device code ---------------------------------------------------------------------------

// One operand's BK×TILE slice [k0, k0+BK) × [mn0, mn0+TILE), fetched into registers as float4s
// running along the operand's contiguous dimension.
//   K_CONTIG: element (k, mn) at p[mn*ld + k] (A of NN/NT, B of NT);  else at p[k*ld + mn].
template <int TILE, int BK, int THREADS, bool K_CONTIG>
struct TileLoader {
    static constexpr int LOADS = TILE * BK / 4 / THREADS;
    static constexpr int PAD = 4;
    float4 r[LOADS];

    // Coordinates (within the tile) of the first element of this thread's i-th float4.
    __device__ __forceinline__ static void coords(int tid, int i, int &k, int &mn)
    {
        const int f = tid + i * THREADS;
        if (K_CONTIG) {
            mn = f / (BK / 4);
            k = (f % (BK / 4)) * 4;
        } else {
            k = f / (TILE / 4);
            mn = (f % (TILE / 4)) * 4;
        }
    }

    // k_end: end of this block's K slice; mn_end: M or N. vec: 16-byte path allowed.
    __device__ __forceinline__ void load(const float *__restrict__ p, long ld, int mn0, int mn_end, int k0,
                                         int k_end, bool vec, int tid)
    {
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            int k, mn;
            coords(tid, i, k, mn);
            const int gk = k0 + k, gmn = mn0 + mn;
            float v[4] = {0.f, 0.f, 0.f, 0.f};
            if (K_CONTIG) {
                if (gmn < mn_end) {
                    const float *src = p + (long)gmn * ld + gk;
                    if (vec) { // k_end and gk are multiples of 4: the group is in or out whole
                        if (gk < k_end) {
                            const float4 q = fx_ldg4(src);
                            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
                        }
                    } else {
#pragma unroll
                        for (int c = 0; c < 4; c++)
                            if (gk + c < k_end)
                                v[c] = fx_ldg(src + c);
                    }
                }
            } else {
                if (gk < k_end) {
                    const float *src = p + (long)gk * ld + gmn;
                    if (vec) { // mn_end and gmn are multiples of 4
                        if (gmn < mn_end) {
                            const float4 q = fx_ldg4(src);
                            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
                        }
                    } else {
#pragma unroll
                        for (int c = 0; c < 4; c++)
                            if (gmn + c < mn_end)
                                v[c] = fx_ldg(src + c);
                    }
                }
            }
            r[i] = make_float4(v[0], v[1], v[2], v[3]);
        }
    }

    // The fast path (vec known true, whole K tiles): each float4's address, fixed for the slice and
    // moved by a constant per K tile. A row (K_CONTIG) or 4-column group past mn_end is clamped
    // onto the last valid one: its values land only in accumulators of rows or columns ≥ M or N.
    // No store to C or the mask reads those; the split-K workspace's padding columns N..ldw−1
    // (NT with N % 4 ≠ 0) get copies where the general path has zeros, summed by the last slice
    // but never stored. So whole K tiles load with no predicate and no zero fill, and C and the
    // mask are bit for bit the general path's.
    const float *q[LOADS];
    long step; // floats between K tiles

    __device__ __forceinline__ void fast_init(const float *__restrict__ p, long ld, int mn0, int mn_end, int k0,
                                              int tid)
    {
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            int k, mn;
            coords(tid, i, k, mn);
            int gmn = mn0 + mn;
            if (K_CONTIG)
                q[i] = p + (long)min(gmn, mn_end - 1) * ld + (k0 + k);
            else // mn_end is a multiple of 4 (the 16-byte path's condition), so mn_end − 4 ≥ 0
                q[i] = p + (long)(k0 + k) * ld + min(gmn, mn_end - 4);
        }
        step = K_CONTIG ? BK : BK * ld;
    }

    // The next whole K tile, unpredicated (see fast_init).
    __device__ __forceinline__ void fast_load()
    {
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            r[i] = fx_ldg4(q[i]);
            q[i] += step;
        }
    }

    // The next whole K tile straight into the shared tile s[BK][TILE + PAD] with cp.async (the
    // fast path's addresses; operands laid out k-major only: cp.async cannot transpose).
    __device__ __forceinline__ void fast_async(float (*s)[TILE + PAD], int tid)
    {
        static_assert(!K_CONTIG, "cp.async copies rows as they are: no transposing store");
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            int k, mn;
            coords(tid, i, k, mn);
            fx_cp_async16(&s[k][mn], q[i]);
            q[i] += step;
        }
    }

    // Into the shared tile s[BK][TILE + PAD], k-major.
    __device__ __forceinline__ void store(float (*s)[TILE + PAD], int tid) const
    {
#pragma unroll
        for (int i = 0; i < LOADS; i++) {
            int k, mn;
            coords(tid, i, k, mn);
            if (K_CONTIG) { // transpose: four k rows, one column
                s[k + 0][mn] = r[i].x;
                s[k + 1][mn] = r[i].y;
                s[k + 2][mn] = r[i].z;
                s[k + 3][mn] = r[i].w;
            } else {
                *reinterpret_cast<float4 *>(&s[k][mn]) = r[i];
            }
        }
    }
};

// The epilogue on four consecutive outputs C[row, col..col+3] (cols ≥ n are skipped).
template <int EPI>
__device__ __forceinline__ void sgemm_epilogue4(const SgemmParams &p, int row, int col, const float acc[4])
{
    const long off = (long)row * p.n + col;
    float *c = p.c + off;
    if (p.vec_c && col + 3 < p.n) { // c, mask and n % 4 == 0 checked on the host
        float o[4];
        if (EPI == FX_EPI_STORE) {
#pragma unroll
            for (int j = 0; j < 4; j++)
                o[j] = acc[j];
        } else if (EPI == FX_EPI_RELU_MASK) {
            unsigned char m[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                m[j] = acc[j] >= 0.f;
                o[j] = acc[j] > 0.f ? acc[j] : 0.f;
            }
            *reinterpret_cast<uchar4 *>(p.mask + off) = make_uchar4(m[0], m[1], m[2], m[3]);
        } else if (EPI == FX_EPI_MASK) {
            const uchar4 m = *reinterpret_cast<const uchar4 *>(p.mask + off);
            o[0] = m.x ? acc[0] : 0.f, o[1] = m.y ? acc[1] : 0.f;
            o[2] = m.z ? acc[2] : 0.f, o[3] = m.w ? acc[3] : 0.f;
        } else { // FX_EPI_SGD
            const float4 w = *reinterpret_cast<const float4 *>(c);
            o[0] = w.x - p.lr * acc[0], o[1] = w.y - p.lr * acc[1];
            o[2] = w.z - p.lr * acc[2], o[3] = w.w - p.lr * acc[3];
        }
        *reinterpret_cast<float4 *>(c) = make_float4(o[0], o[1], o[2], o[3]);
        return;
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        if (col + j >= p.n)
            break;
        if (EPI == FX_EPI_STORE) {
            c[j] = acc[j];
        } else if (EPI == FX_EPI_RELU_MASK) {
            p.mask[off + j] = acc[j] >= 0.f;
            c[j] = acc[j] > 0.f ? acc[j] : 0.f;
        } else if (EPI == FX_EPI_MASK) {
            c[j] = p.mask[off + j] ? acc[j] : 0.f;
        } else {
            c[j] -= p.lr * acc[j];
        }
    }
}

// Which tile this block computes: a linear tile id walked in groups of GROUP_M tile rows, so that
// blocks running together share A rows and B columns in L2.
__device__ __forceinline__ void sgemm_tile_of(int t, int tiles_m, int tiles_n, int &tm, int &tn)
{
    const int width = FX_SGEMM_GROUP_M * tiles_n;
    const int first = (t / width) * FX_SGEMM_GROUP_M;
    const int rows = min(tiles_m - first, FX_SGEMM_GROUP_M);
    tm = first + (t % width) % rows;
    tn = (t % width) / rows;
}

// FAST: the host found both operands on the 16-byte path (vec_a and vec_b); every whole K tile of
// the slice then loads through TileLoader::fast_load (fixed addresses, no predicates, no branches:
// the general loader's bounds tests and its scalar fallback were ~8% of the 128x128 K loop's
// instructions in SASS). The slice's last K tile, if partial, still goes through the general,
// predicated loader. Results are bit for bit those of FAST = false: the same products are summed
// in the same order into every accumulator that is stored.
//
// ASYNC_B (an experiment, session 12; only with FAST, and ignored where B is k-contiguous, NT): B's
// K tiles go global → shared by cp.async into three stages, two tiles ahead, instead of through
// registers; A stays register-staged. The host takes it only where every K tile of every slice is
// whole (K a multiple of BK), so no partial tile needs the general loader. Same products in the same
// order: bit for bit the other paths' results.
template <class C, int OP, int EPI, bool FAST = false, bool ASYNC_B = false>
__global__ void __launch_bounds__(C::THREADS, C::MIN_BLOCKS) sgemm_kernel(const SgemmParams p)
{
    constexpr bool A_KC = OP != FX_TN; // A is M×K (NN, NT) or K×M (TN)
    constexpr bool B_KC = OP == FX_NT; // B is N×K (NT) or K×N (NN, TN)
    constexpr bool ASYNC = ASYNC_B && FAST && !B_KC;
    __shared__ __align__(16) float As[2][C::BK][C::BM + C::PAD];
    __shared__ __align__(16) float Bs[ASYNC ? 3 : 2][C::BK][C::BN + C::PAD];
    __shared__ int s_last;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int tiles_m = (p.m + C::BM - 1) / C::BM, tiles_n = (p.n + C::BN - 1) / C::BN;
    int tm, tn;
    sgemm_tile_of(blockIdx.x, tiles_m, tiles_n, tm, tn);
    const int m0 = tm * C::BM, n0 = tn * C::BN;
    const int kbeg = blockIdx.y * p.kchunk;
    const int kend = min(p.k, kbeg + p.kchunk);

    // This lane's place: warp tile (wm, wn), micro-tile (lm, ln) within each sub-tile.
    const int wm = (warp / C::WARPS_N) * C::WM, wn = (warp % C::WARPS_N) * C::WN;
    const int lm = (lane / C::LN) * C::TM, ln = (lane % C::LN) * C::TN;

    TileLoader<C::BM, C::BK, C::THREADS, A_KC> la;
    TileLoader<C::BN, C::BK, C::THREADS, B_KC> lb;
    const long lda = A_KC ? p.k : p.m, ldb = B_KC ? p.k : p.n;

    float acc[C::WMITER * C::TM][C::WNITER * C::TN];
#pragma unroll
    for (int i = 0; i < C::WMITER * C::TM; i++)
#pragma unroll
        for (int j = 0; j < C::WNITER * C::TN; j++)
            acc[i][j] = 0.f;

    // acc += the K tile in as (BK×BM) times the one in bs (BK×BN).
    auto mma = [&](const float (*as)[C::BM + C::PAD], const float (*bs)[C::BN + C::PAD]) {
#pragma unroll
        for (int k = 0; k < C::BK; k++) {
            float a[C::WMITER * C::TM], b[C::WNITER * C::TN];
#pragma unroll
            for (int i = 0; i < C::WMITER; i++) {
                const float4 v = *reinterpret_cast<const float4 *>(&as[k][wm + i * C::WSUBM + lm]);
                a[i * 4 + 0] = v.x, a[i * 4 + 1] = v.y, a[i * 4 + 2] = v.z, a[i * 4 + 3] = v.w;
            }
#pragma unroll
            for (int j = 0; j < C::WNITER; j++) {
                const float4 v = *reinterpret_cast<const float4 *>(&bs[k][wn + j * C::WSUBN + ln]);
                b[j * 4 + 0] = v.x, b[j * 4 + 1] = v.y, b[j * 4 + 2] = v.z, b[j * 4 + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < C::WMITER * C::TM; i++)
#pragma unroll
                for (int j = 0; j < C::WNITER * C::TN; j++)
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
    };

    const int ntiles = (kend - kbeg + C::BK - 1) / C::BK; // ≥ 1: the host makes no empty slice
    if constexpr (ASYNC) {
        // Every K tile whole (the host's condition). Groups: one per K tile of B, committed in
        // order (an empty group where no tile is left, so that the count stays uniform).
        la.fast_init(p.a, lda, m0, p.m, kbeg, tid);
        lb.fast_init(p.b, ldb, n0, p.n, kbeg, tid);
        lb.fast_async(Bs[0], tid);
        fx_cp_async_commit();
        if (ntiles > 1)
            lb.fast_async(Bs[1], tid);
        fx_cp_async_commit();
        la.fast_load();
        la.store(As[0], tid);
        fx_cp_async_wait<1>(); // B's tile 0 has landed (this thread's copies)
        __syncthreads();       // ... and everyone's, with A's tile 0
        for (int t = 0; t < ntiles; t++) {
            // stage (t+2) % 3 was last read in iteration t−1, before the barrier that ended it
            if (t + 2 < ntiles)
                lb.fast_async(Bs[(t + 2) % 3], tid);
            fx_cp_async_commit();
            if (t + 1 < ntiles)
                la.fast_load();
            mma(As[t & 1], Bs[t % 3]);
            if (t + 1 < ntiles)
                la.store(As[(t + 1) & 1], tid);
            fx_cp_async_wait<1>(); // B's tile t+1 has landed; only tile t+2 may be in flight
            __syncthreads();
        }
    } else {
        const int nwhole = FAST ? (kend - kbeg) / C::BK : 0;   // K tiles loaded by the fast path
        if (FAST) {
            la.fast_init(p.a, lda, m0, p.m, kbeg, tid);
            lb.fast_init(p.b, ldb, n0, p.n, kbeg, tid);
        }
        if (FAST && nwhole > 0) {
            la.fast_load();
            lb.fast_load();
        } else {
            la.load(p.a, lda, m0, p.m, kbeg, kend, p.vec_a, tid);
            lb.load(p.b, ldb, n0, p.n, kbeg, kend, p.vec_b, tid);
        }
        la.store(As[0], tid);
        lb.store(Bs[0], tid);
        __syncthreads();

        // One K tile: `next` fetches tile t+1 into registers (in flight while tile t is multiplied),
        // which then go into the other buffer (last read in iteration t−1, before the barrier that
        // ended it).
        auto k_tile = [&](int t, bool more, auto next) {
            const int cur = t & 1;
            if (more)
                next();
            mma(As[cur], Bs[cur]);
            if (more) {
                la.store(As[cur ^ 1], tid);
                lb.store(Bs[cur ^ 1], tid);
            }
            __syncthreads();
        };
        int t = 0;
        if (FAST) // the main loop: the next tile is whole, its loads unpredicated
            for (; t + 1 < nwhole; t++)
                k_tile(t, true, [&] {
                    la.fast_load();
                    lb.fast_load();
                });
        for (; t < ntiles; t++) // the rest: the general loader
            k_tile(t, t + 1 < ntiles, [&] {
                la.load(p.a, lda, m0, p.m, kbeg + (t + 1) * C::BK, kend, p.vec_a, tid);
                lb.load(p.b, ldb, n0, p.n, kbeg + (t + 1) * C::BK, kend, p.vec_b, tid);
            });
    }

    if (p.splits > 1) {
        // Raw partial sums to this slice's workspace; columns up to ldw (a multiple of 4).
        float *ws = p.ws + (long)blockIdx.y * p.m * p.ldw;
#pragma unroll
        for (int i = 0; i < C::WMITER; i++)
#pragma unroll
            for (int r = 0; r < C::TM; r++) {
                const int row = m0 + wm + i * C::WSUBM + lm + r;
                if (row >= p.m)
                    continue;
#pragma unroll
                for (int j = 0; j < C::WNITER; j++) {
                    const int col = n0 + wn + j * C::WSUBN + ln;
                    if (col < p.ldw) {
                        const float *v = &acc[i * C::TM + r][j * C::TN];
                        *reinterpret_cast<float4 *>(ws + (long)row * p.ldw + col) = make_float4(v[0], v[1], v[2], v[3]);
                    }
                }
            }
        __threadfence(); // partials visible device-wide before the ticket is taken
        __syncthreads();
        if (tid == 0) {
            const int ticket = atomicAdd(&p.counters[blockIdx.x], 1);
            s_last = ticket == p.splits - 1;
        }
        __syncthreads();
        if (!s_last)
            return; // the whole block leaves together
        __threadfence();
        // The last slice sums every slice's partials in slice order (its own included, from
        // memory), so the result does not depend on which slice came last.
#pragma unroll
        for (int i = 0; i < C::WMITER; i++)
#pragma unroll
            for (int r = 0; r < C::TM; r++) {
                const int row = m0 + wm + i * C::WSUBM + lm + r;
                if (row >= p.m)
                    continue;
#pragma unroll
                for (int j = 0; j < C::WNITER; j++) {
                    const int col = n0 + wn + j * C::WSUBN + ln;
                    if (col >= p.ldw)
                        continue;
                    const float *src = p.ws + (long)row * p.ldw + col;
                    float4 s = fx_ldcg4(src);
                    for (int z = 1; z < p.splits; z++) {
                        const float4 q = fx_ldcg4(src + (long)z * p.m * p.ldw);
                        s.x += q.x, s.y += q.y, s.z += q.z, s.w += q.w;
                    }
                    float *v = &acc[i * C::TM + r][j * C::TN];
                    v[0] = s.x, v[1] = s.y, v[2] = s.z, v[3] = s.w;
                }
            }
        if (tid == 0)
            p.counters[blockIdx.x] = 0; // every slice of this tile has taken its ticket
    }

#pragma unroll
    for (int i = 0; i < C::WMITER; i++)
#pragma unroll
        for (int r = 0; r < C::TM; r++) {
            const int row = m0 + wm + i * C::WSUBM + lm + r;
            if (row >= p.m)
                continue;
#pragma unroll
            for (int j = 0; j < C::WNITER; j++) {
                const int col = n0 + wn + j * C::WSUBN + ln;
                if (col < p.n)
                    sgemm_epilogue4<EPI>(p, row, col, &acc[i * C::TM + r][j * C::TN]);
            }
        }
}

// ---- the plan: which variant, how many K slices (host) -------------------------------------

struct SgemmPlan {
    int cfg;            // FX_CFG_*
    int splits;         // K slices (1: no split)
    int kchunk;         // K per slice, a multiple of BK
    int tiles;          // blocks per slice (gridDim.x)
    int vec_a, vec_b, vec_c;
    int fast;           // vec_a && vec_b, unless FIFTYX_SGEMM_FAST=0: sgemm_kernel<..., FAST = true>
    int async_b;        // large-async only: fast, B k-major (NN, TN) and K a multiple of BK (ASYNC_B)
    long ws_floats;     // workspace for split-K partials (0 without split)
};

// What the heuristic knows about the GPU: SM count and resident blocks per SM of each config.
struct SgemmMachine {
    int sms;
    int occupancy[FX_NCFG_ALL];
};

static inline long fx_cdiv(long a, long b) { return (a + b - 1) / b; }

// A config with a given number of K slices, made exact: K per slice rounded up to whole K tiles,
// then as many slices as that needs (no empty slice).
static inline SgemmPlan sgemm_plan_for(int cfg, int splits, long m, long n, long k)
{
    SgemmPlan p = {};
    p.cfg = cfg;
    p.tiles = (int)(fx_cdiv(m, fx_cfg_bm[cfg]) * fx_cdiv(n, fx_cfg_bn[cfg]));
    if (splits > FX_SGEMM_MAX_SPLITS)
        splits = FX_SGEMM_MAX_SPLITS;
    if (splits < 1)
        splits = 1;
    p.kchunk = (int)(fx_cdiv(fx_cdiv(k, splits), FX_SGEMM_BK) * FX_SGEMM_BK);
    p.splits = (int)fx_cdiv(k, p.kchunk);
    p.ws_floats = p.splits > 1 ? (long)p.splits * m * (fx_cdiv(n, 4) * 4) : 0;
    return p;
}

// Estimated cost of a plan in cycles of the busiest SM (a model to rank plans, not a prediction):
// waves of blocks × the FMA time of the blocks an SM runs at once (at the config's assumed
// efficiency), plus a latency floor per K tile and wave (a lone block cannot hide its loads), plus
// split-K's partial sums (written, re-read) and its ticket.
static inline double sgemm_plan_cost(const SgemmPlan &p, long m, long n, const SgemmMachine &mach)
{
    static const double fma_per_clk[FX_NCFG_ALL] = {0.80 * 128, 0.65 * 128, 0.40 * 128, 0.80 * 128,
                                                    0.80 * 128, 0.80 * 128}; // per SM
    const int bm = fx_cfg_bm[p.cfg], bn = fx_cfg_bn[p.cfg];
    const long blocks = (long)p.tiles * p.splits;
    const long slots = (long)mach.sms * mach.occupancy[p.cfg];
    const long waves = fx_cdiv(blocks, slots);
    const long per_sm = blocks >= slots ? mach.occupancy[p.cfg] : fx_cdiv(blocks, mach.sms);
    double cost = (double)waves * per_sm * ((double)bm * bn * p.kchunk) / fma_per_clk[p.cfg];
    cost += (double)waves * (p.kchunk / FX_SGEMM_BK) * 400.0;
    if (p.splits > 1)
        cost += 2000.0 + 2.0 * 4.0 * (double)p.splits * m * n / (mach.sms * 32.0);
    return cost;
}

// The best split of one config: every count from 1 up to one slice per 4 K tiles (and 64).
static inline SgemmPlan sgemm_best_for(int cfg, long m, long n, long k, const SgemmMachine &mach, double *cost)
{
    SgemmPlan best = sgemm_plan_for(cfg, 1, m, n, k);
    double best_cost = sgemm_plan_cost(best, m, n, mach);
    const long max_splits = fx_cdiv(k, 4 * FX_SGEMM_BK) < FX_SGEMM_MAX_SPLITS ? fx_cdiv(k, 4 * FX_SGEMM_BK)
                                                                              : FX_SGEMM_MAX_SPLITS;
    for (int s = 2; s <= max_splits; s++) {
        SgemmPlan p = sgemm_plan_for(cfg, s, m, n, k);
        if (p.splits != s)
            continue; // rounding made it another count, already seen
        const double c = sgemm_plan_cost(p, m, n, mach);
        if (c < best_cost)
            best = p, best_cost = c;
    }
    if (cost)
        *cost = best_cost;
    return best;
}

// The heuristic: each config with its best split, the cheapest by the model above. It puts large
// squares on 128x128 (4096³: 1024 tiles, no split), 1024³ on 128x128 with 2 K slices (64 tiles
// alone would leave half the SMs idle), and skinny shapes on 32x32 with split-K (the tutorial's
// 64x100x1000: 8 tiles × 16 slices of K = 64). kernels/cuda/emu prints the table.
static inline SgemmPlan sgemm_choose(long m, long n, long k, const SgemmMachine &mach)
{
    double best_cost, c;
    SgemmPlan best = sgemm_best_for(FX_CFG_SMALL, m, n, k, mach, &best_cost);
    for (int cfg = FX_CFG_LARGE; cfg < FX_CFG_SMALL; cfg++) {
        SgemmPlan p = sgemm_best_for(cfg, m, n, k, mach, &c);
        if (c < best_cost)
            best = p, best_cost = c;
    }
    return best;
}

// The 16-byte paths: pointer alignment and the operand's contiguous extent a multiple of 4.
static inline void sgemm_plan_vectors(SgemmPlan &p, fx_op op, long m, long n, long k, const void *a, const void *b,
                                      const void *c, const void *mask)
{
    const bool a_kc = op != FX_TN, b_kc = op == FX_NT;
    p.vec_a = ((uintptr_t)a % 16 == 0) && (a_kc ? k : m) % 4 == 0;
    p.vec_b = ((uintptr_t)b % 16 == 0) && (b_kc ? k : n) % 4 == 0;
    p.vec_c = ((uintptr_t)c % 16 == 0) && ((uintptr_t)mask % 4 == 0) && n % 4 == 0;
    p.fast = p.vec_a && p.vec_b;
    p.async_b = p.cfg == FX_CFG_LARGE_ASYNC && p.fast && !b_kc && k % CfgLarge::BK == 0;
}

static inline SgemmParams sgemm_params(const SgemmPlan &pl, const fx_gemm_args &g, float *ws, int *counters)
{
    SgemmParams p;
    p.a = g.a, p.b = g.b, p.c = g.c, p.mask = g.mask, p.lr = g.lr;
    p.m = (int)g.m, p.n = (int)g.n, p.k = (int)g.k;
    p.kchunk = pl.kchunk, p.splits = pl.splits;
    p.vec_a = pl.vec_a, p.vec_b = pl.vec_b, p.vec_c = pl.vec_c;
    p.ws = ws, p.ldw = (int)(fx_cdiv(g.n, 4) * 4), p.counters = counters;
    return p;
}

} // namespace fx
