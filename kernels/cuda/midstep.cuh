// midstep.cuh — the middle of the `cuda` step as one block, where its tensors fit in shared memory
// (the tutorial's 64x1000x100x10 needs 58 KB):
//
//   y_pred = h_relu·w2                      N×D_out, K = H
//   loss[*step] = Σ(y_pred − y)², g = 2(y_pred − y)     (sum in double, fixed order; *step advances)
//   gh     = (g·w2ᵀ) ⊙ mask                 N×H, K = D_out   (the old w2)
//   w2    −= lr·h_reluᵀ·g                   H×D_out, K = N
//
// In the general step these are four kernels (three GEMMs and the loss kernel), four dependent
// graph nodes of ~1–2 µs each at this size for ~0.2 MFLOP of work. Here they are one kernel: the
// block stages h_relu and w2 in shared memory once and runs the phases between __syncthreads.
// Every sum has a fixed order (slices added in slice order, the loss through fx_block_sum), so
// repeated runs give the same bits.
//
// Layout (floats, shared memory): h [N][HP] (HP = H rounded up to odd: lanes reading one column of
// 32 rows hit 32 banks), w2 [H][OP] and g [N][OP] (OP = D_out rounded up to 4 for float4 reads,
// the padding zero), and the partial sums of phase 1 or phase 4 (one buffer, used in turn).
// Work is spread so that the 32 lanes of a warp read the same w2 or g row (a broadcast) and
// different h rows or columns (no bank conflicts):
//   phase 1: thread = (j-slice s, row r), lanes along r; D_out accumulators in registers.
//   phase 3: thread = (row slice s, column j), lanes along j; holds w2 row j, walks its rows.
//   phase 4: thread = (row slice s, column j), lanes along j; D_out accumulators over its rows.
#pragma once
#include <stdint.h>
#include "block_sum.cuh"
#include "compat.cuh"

namespace fx {

constexpr int FX_MID_THREADS = 512;
constexpr int FX_MID_MAXO = 16;                // D_out limit: accumulators and a w2 row in registers
constexpr long FX_MID_MAX_FMA = 1L << 19;      // 3·N·H·D_out at most: beyond, one block is too slow
constexpr long FX_MID_MAX_SMEM = 160L * 1024;  // bytes (opt-in dynamic shared memory)
static_assert(FX_MID_MAXO % 4 == 0, "w2 and g rows are read as float4");
static_assert(FX_MID_THREADS % 32 == 0, "whole warps");

struct MidStepLayout {
    int hp, op;       // padded row lengths of h and of w2 / g
    int s1, s4;       // slices: of H (phase 1), of N (phases 3 and 4)
    int lanes_h;      // H rounded up to whole warps
    long h_off, w_off, g_off, p_off, floats; // offsets into shared memory, total floats
};

static inline MidStepLayout mid_step_layout(long n, long h, long o)
{
    MidStepLayout L;
    L.hp = (int)(h % 2 ? h : h + 1);
    L.op = (int)((o + 3) / 4 * 4);
    L.lanes_h = (int)((h + 31) / 32 * 32);
    const long s1 = FX_MID_THREADS / n, s4 = FX_MID_THREADS / L.lanes_h;
    L.s1 = (int)(s1 < 1 ? 1 : s1 > h ? h : s1);
    L.s4 = (int)(s4 < 1 ? 1 : s4 > n ? n : s4);
    const long part1 = (long)L.s1 * n * L.op, part4 = (long)L.s4 * h * L.op;
    auto up4 = [](long f) { return (f + 3) / 4 * 4; }; // float4 reads: every array 16-byte aligned
    L.h_off = 0;
    L.w_off = up4(L.h_off + n * L.hp);
    L.g_off = up4(L.w_off + h * L.op);
    L.p_off = up4(L.g_off + n * L.op);
    L.floats = L.p_off + (part1 > part4 ? part1 : part4);
    return L;
}

constexpr long FX_MID_STATIC_SMEM = 1024; // bytes, an upper bound of the kernel's own (ptxas: 128)

// The dynamic shared memory the kernel may use on a device with smem_optin bytes per block (opt-in):
// FX_MID_MAX_SMEM, or less where the device has less. Set once per instance as its attribute.
static inline long mid_step_smem_limit(long smem_optin)
{
    const long dev = smem_optin - FX_MID_STATIC_SMEM;
    return dev < FX_MID_MAX_SMEM ? dev : FX_MID_MAX_SMEM;
}

// Whether the fused middle applies to this size on this device (else the step runs the four kernels).
static inline bool mid_step_fits(long n, long h, long o, long smem_optin)
{
    if (n < 1 || h < 1 || o < 1 || o > FX_MID_MAXO || n > FX_MID_MAX_FMA || h > FX_MID_MAX_FMA ||
        3 * n * h * o > FX_MID_MAX_FMA)
        return false;
    return mid_step_layout(n, h, o).floats * (long)sizeof(float) <= mid_step_smem_limit(smem_optin);
}

struct MidStepParams {
    int n, h, o;
    float lr;
    const float *h_relu, *y;
    const uint8_t *mask;
    float *w2, *gh;
    double *loss; // written at loss[*step]; *step then advances
    int *step;
    MidStepLayout L;
};

// acc[c] += s·row[c] for c < OPC, the row read as float4s (16-byte aligned in shared memory).
template <int OPC>
__device__ __forceinline__ void fx_mid_axpy(float (&acc)[OPC], float s, const float *row)
{
#pragma unroll
    for (int c4 = 0; c4 < OPC; c4 += 4) {
        const float4 v = *reinterpret_cast<const float4 *>(row + c4);
        acc[c4 + 0] = fmaf(s, v.x, acc[c4 + 0]);
        acc[c4 + 1] = fmaf(s, v.y, acc[c4 + 1]);
        acc[c4 + 2] = fmaf(s, v.z, acc[c4 + 2]);
        acc[c4 + 3] = fmaf(s, v.w, acc[c4 + 3]);
    }
}

// OPC: D_out rounded up to 4 (= L.op), a template parameter so the register arrays hold exactly the
// columns there are (no predicated-off FMAs for the tutorial's 10 → 12).
template <int OPC>
__global__ void __launch_bounds__(FX_MID_THREADS) mid_step_kernel(const MidStepParams p)
{
    static_assert(OPC % 4 == 0 && OPC >= 4 && OPC <= FX_MID_MAXO, "D_out rounded up to 4, within the limit");
    __shared__ double scratch[FX_MID_THREADS / 32];
    const MidStepLayout &L = p.L;
    float *sm = reinterpret_cast<float *>(fx_dynamic_smem());
    float *sh = sm + L.h_off, *sw = sm + L.w_off, *sg = sm + L.g_off, *part = sm + L.p_off;
    const int N = p.n, H = p.h, O = p.o, HP = L.hp, OP = OPC; // OPC == L.op (the host's dispatch)
    const int tid = threadIdx.x, T = blockDim.x;

    // Stage h_relu and w2 (written by earlier kernels: ordinary loads are coherent across launches).
    // (int indices: mid_step_fits bounds every tensor here far below 2^31 elements). h: a row per
    // warp, lanes along it — no integer division per element (the flat loop's i / H and i % H
    // made it 24 instructions per element in SASS against 2.4 for this one; NOTES.md).
    const int lane = tid % 32, warp = tid / 32, warps = T / 32;
    for (int r = warp; r < N; r += warps)
        for (int j = lane; j < H; j += 32)
            sh[r * HP + j] = p.h_relu[r * H + j];
    for (int i = tid; i < H * OP; i += T) {
        const int j = i / OP, c = i % OP;
        sw[i] = c < O ? p.w2[j * O + c] : 0.f;
    }
    __syncthreads();

    // Phase 1: partial y_pred over the j-slice s, for row r.
    for (int it = tid; it < L.s1 * N; it += T) {
        const int s = it / N, r = it % N;
        const int j0 = (int)((long)s * H / L.s1), j1 = (int)((long)(s + 1) * H / L.s1);
        float acc[OPC];
#pragma unroll
        for (int c = 0; c < OPC; c++)
            acc[c] = 0.f;
        for (int j = j0; j < j1; j++)
            fx_mid_axpy<OPC>(acc, sh[r * HP + j], &sw[j * OP]);
#pragma unroll
        for (int c = 0; c < OPC; c++)
            part[(s * N + r) * OP + c] = acc[c];
    }
    __syncthreads();

    // Phase 2: y_pred = the slices summed in slice order; g and the loss.
    double ls = 0;
    for (int i = tid; i < N * OP; i += T) {
        const int r = i / OP, c = i % OP;
        float g = 0.f;
        if (c < O) {
            float yp = part[r * OP + c];
            for (int s = 1; s < L.s1; s++)
                yp += part[(s * N + r) * OP + c];
            const float d = yp - p.y[r * O + c];
            g = 2.0f * d;
            ls += (double)d * (double)d;
        }
        sg[i] = g; // the padding columns zero
    }
    ls = fx_block_sum(ls, scratch); // ends with the block synchronised: g is complete
    if (tid == 0) {
        const int t = *p.step;
        p.loss[t] = ls;
        *p.step = t + 1;
    }

    // Phase 3: gh[r][j] = mask ? Σ_c g[r][c]·w2[j][c] : 0, rows of slice s.
    for (int it = tid; it < L.s4 * L.lanes_h; it += T) {
        const int s = it / L.lanes_h, j = it % L.lanes_h;
        if (j >= H)
            continue;
        float w[OPC];
#pragma unroll
        for (int c4 = 0; c4 < OPC; c4 += 4) {
            const float4 v = *reinterpret_cast<const float4 *>(&sw[j * OP + c4]);
            w[c4 + 0] = v.x, w[c4 + 1] = v.y, w[c4 + 2] = v.z, w[c4 + 3] = v.w;
        }
        const int r0 = (int)((long)s * N / L.s4), r1 = (int)((long)(s + 1) * N / L.s4);
        for (int r = r0; r < r1; r++) {
            float acc = 0.f;
#pragma unroll
            for (int c4 = 0; c4 < OPC; c4 += 4) {
                const float4 g = *reinterpret_cast<const float4 *>(&sg[r * OP + c4]);
                acc = fmaf(g.x, w[c4 + 0], acc);
                acc = fmaf(g.y, w[c4 + 1], acc);
                acc = fmaf(g.z, w[c4 + 2], acc);
                acc = fmaf(g.w, w[c4 + 3], acc);
            }
            const int x = r * H + j;
            p.gh[x] = p.mask[x] ? acc : 0.f;
        }
    }

    // Phase 4: partial h_reluᵀ·g over the row slice s, for column j (phase 1's partials are spent).
    for (int it = tid; it < L.s4 * L.lanes_h; it += T) {
        const int s = it / L.lanes_h, j = it % L.lanes_h;
        if (j >= H)
            continue;
        float acc[OPC];
#pragma unroll
        for (int c = 0; c < OPC; c++)
            acc[c] = 0.f;
        const int r0 = (int)((long)s * N / L.s4), r1 = (int)((long)(s + 1) * N / L.s4);
        for (int r = r0; r < r1; r++)
            fx_mid_axpy<OPC>(acc, sh[r * HP + j], &sg[r * OP]);
#pragma unroll
        for (int c = 0; c < OPC; c++)
            part[(s * H + j) * OP + c] = acc[c];
    }
    __syncthreads();

    // w2 −= lr·(the slices summed in slice order), from the old w2 staged in shared memory.
    for (int i = tid; i < H * O; i += T) {
        const int j = i / O, c = i % O;
        float sum = part[j * OP + c];
        for (int s = 1; s < L.s4; s++)
            sum += part[(s * H + j) * OP + c];
        p.w2[i] = sw[j * OP + c] - p.lr * sum;
    }
}

// Calls f with the instance for a layout's padded D_out (4, 8, 12 or 16); false for any other.
template <class F>
static inline bool mid_step_dispatch(int op, F &&f)
{
    switch (op) {
    case 4: f(mid_step_kernel<4>); return true;
    case 8: f(mid_step_kernel<8>); return true;
    case 12: f(mid_step_kernel<12>); return true;
    case 16: f(mid_step_kernel<16>); return true;
    }
    return false;
}

} // namespace fx
