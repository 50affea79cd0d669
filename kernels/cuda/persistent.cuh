// persistent.cuh — every step of the training loop inside one cooperative kernel launch.
//
// Decomposition (DESIGN.md, "latency-bound case"): block b owns HB hidden units j ∈ [b·HB, b·HB+HB).
// Then h[:, j], its mask, gw2[j, :], gh[:, j], gw1[:, j] and both weight updates are block-local;
// only y_pred = Σ_j h_relu[:, j]·w2[j, :] (and so g and the loss) crosses blocks.
//
// What lives where: x in shared memory (the first ks columns, as many as fit; the rest is read
// through L1/L2); w1[:, j], w2[j, :], h_relu, mask, gh and all of g in shared memory. Thread t alone
// touches w1 rows k ≡ t (mod 256), in registers only while it works on them (w1 in registers
// across the loop cost 255 registers and spills at HB = 2).
//
// One step (block b; all sums in a fixed order, so the losses are the same bits on every run):
//   A  part[b] = h_relu[:, J_b]·w2[J_b, :]                   N×D_out partial, to global
//   -- grid barrier --
//   two-barrier mode (default when P·N·D_out is large): block b sums the P partials of its slice
//      of the N·D_out elements (partials in block order), writes g and its loss share;
//      -- grid barrier --; every block reads all of g; block 0 adds the loss shares in block order.
//   one-barrier mode: every block sums all P partials of every element itself (P·N·D_out loads per
//      block); partials are double-buffered by step parity so that step t+1's writes cannot race
//      step t's reads.
//   C  gh = (g·w2ᵀ) ⊙ mask with the old w2; gw2 = h_reluᵀ·g; w2 −= lr·gw2
//   D  one pass over x: gw1[k, j] = Σ_n x[n,k]·gh[n,j]; w1[k, j] −= lr·gw1; and, with the column
//      x[:, k] still in registers, the next step's h[n, j] += x[n,k]·w1[k,j] — x is read once per
//      step instead of twice. The per-thread partial h (N×HB values) is reduced across the block by
//      a recursive-halving shuffle (reduce-scatter: 62 shuffles per warp for 64 values) and then
//      across warps in warp order.
//
// Grid barrier: cooperative_groups grid.sync() (FX_PSYNC_COOP) or an arrival counter that only
// grows (FX_PSYNC_FLAGS: barrier i of a launch waits for i·P arrivals; one thread per block spins
// with ld.acquire). Both need every block resident, which the cooperative launch guarantees.
#pragma once
#include <stddef.h>
#include "compat.cuh"

namespace fx {

constexpr int FX_P_THREADS = 256, FX_P_WARPS = FX_P_THREADS / 32;
constexpr int FX_P_NMAX = 64;  // batch rows: a thread keeps a column of x (and N×HB partial h) in registers
constexpr int FX_P_HBMAX = 2;
enum { FX_PSYNC_COOP = 0, FX_PSYNC_FLAGS = 1 };

struct PersistentParams {
    const float *x, *y;
    float *w1, *w2;          // [D_in][H], [H][D_out]: read at start, written back at the end
    float *part;             // [2][P][N·D_out] partial y_pred
    float *gbuf;             // [N·D_out] g (two-barrier mode)
    double *lp;              // [2][P] loss shares (two-barrier mode)
    double *losses;          // [steps]
    unsigned long long *bar; // arrival counter (flags mode), zero at launch
    int n, din, h, dout, steps;
    int ks;                  // columns of x held in shared memory (a multiple of 32, or D_in)
    int dinp;                // D_in rounded up to 256: row stride of w1's slice in shared memory
    int one_barrier, sync_mode;
    float lr;
};

// Shared-memory layout (byte offsets, each 16-byte aligned).
struct PersistentLayout {
    size_t xs, w1s, hr, mk, gh, g, w2s, gw2, red, wl, total;
};

__host__ __device__ inline size_t fx_p_take(size_t &off, size_t bytes)
{
    const size_t o = off;
    off += (bytes + 15) / 16 * 16;
    return o;
}

__host__ __device__ inline int fx_p_dinp(int din) { return (din + FX_P_THREADS - 1) / FX_P_THREADS * FX_P_THREADS; }

__host__ __device__ inline PersistentLayout fx_p_layout(int n, int ks, int hb, int dout, int din)
{
    PersistentLayout L;
    size_t off = 0;
    L.xs = fx_p_take(off, 4ul * n * ks);
    L.w1s = fx_p_take(off, 4ul * hb * fx_p_dinp(din));
    L.hr = fx_p_take(off, 4ul * FX_P_NMAX * hb);
    L.mk = fx_p_take(off, 4ul * FX_P_NMAX * hb);
    L.gh = fx_p_take(off, 4ul * FX_P_NMAX * hb);
    L.g = fx_p_take(off, 4ul * n * dout);
    L.w2s = fx_p_take(off, 4ul * hb * dout);
    L.gw2 = fx_p_take(off, 4ul * hb * dout);
    L.red = fx_p_take(off, 4ul * FX_P_WARPS * FX_P_NMAX * hb);
    L.wl = fx_p_take(off, 8ul * FX_P_WARPS);
    L.total = off;
    return L;
}

// Sum over the warp in a fixed order; valid in lane 0.
__device__ __forceinline__ float fx_warp_sum0(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
        v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// One halving step: lanes with BIT set keep the upper HALF of the segment, the others the lower;
// each adds its partner's copy of the half it keeps. (Templated so every index is a constant:
// a loop over the steps left the inner trip count unknown and put the array in local memory.)
template <int NV, int HALF, int BIT>
__device__ __forceinline__ void fx_rs_step(float (&v)[NV], int lane)
{
    const bool upper = (lane & BIT) != 0;
#pragma unroll
    for (int i = 0; i < HALF; i++) {
        const float send = upper ? v[i] : v[i + HALF];
        const float keep = upper ? v[i + HALF] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, BIT);
    }
}

// Recursive halving over the warp: afterwards lane L holds, in v[0 .. NV/32), the warp's totals of
// the original indices L·NV/32 + i. NV/2 + NV/4 + ... + NV/32 shuffles instead of 5·NV.
template <int NV>
__device__ __forceinline__ void fx_warp_reduce_scatter(float (&v)[NV], int lane)
{
    static_assert(NV % 32 == 0 && NV >= 64, "whole values per lane");
    fx_rs_step<NV, NV / 2, 16>(v, lane);
    fx_rs_step<NV, NV / 4, 8>(v, lane);
    fx_rs_step<NV, NV / 8, 4>(v, lane);
    fx_rs_step<NV, NV / 16, 2>(v, lane);
    fx_rs_step<NV, NV / 32, 1>(v, lane);
}

__device__ __forceinline__ void fx_p_grid_sync(const PersistentParams &p, unsigned long long &passed)
{
    if (p.sync_mode == FX_PSYNC_COOP) {
        fx_grid_sync_coop();
        return;
    }
    __syncthreads(); // the block's writes happen-before thread 0's release
    passed += 1;
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(p.bar, 1ull);
        const unsigned long long target = passed * gridDim.x;
        while (fx_ld_acquire(p.bar) < target)
            FX_SPIN_PAUSE();
        __threadfence();
    }
    __syncthreads();
}

// Phase D (and the first forward pass): over this thread's columns k of x,
//   backward: gw1[k, j] = Σ_n x[n,k]·gh[n,j]; w1[k, j] −= lr·gw1
//   forward:  h[n, j] += x[n,k]·w1[k,j]  → reduced over the block → h_relu, mask
template <int HB>
__device__ __forceinline__ void fx_p_column_pass(const PersistentParams &p, const float *xs, float *w1s,
                                                 const float *ghs, float *red, float *hr, float *mk, bool backward,
                                                 bool forward)
{
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, N = p.n;
    float hacc[FX_P_NMAX * HB];
#pragma unroll
    for (int i = 0; i < FX_P_NMAX * HB; i++)
        hacc[i] = 0.f;
#pragma unroll 1
    for (int k = tid; k < p.din; k += FX_P_THREADS) {
        float xcol[FX_P_NMAX];
        const bool in_smem = k < p.ks; // uniform per warp: ks is a multiple of 32 (or D_in)
#pragma unroll
        for (int n = 0; n < FX_P_NMAX; n++)
            xcol[n] = n < N ? (in_smem ? xs[n * p.ks + k] : fx_ldg(p.x + (long)n * p.din + k)) : 0.f;
        float w[HB];
#pragma unroll
        for (int jj = 0; jj < HB; jj++)
            w[jj] = w1s[jj * p.dinp + k];
        if (backward) {
            float gw[HB];
#pragma unroll
            for (int jj = 0; jj < HB; jj++)
                gw[jj] = 0.f;
#pragma unroll
            for (int n = 0; n < FX_P_NMAX; n++)
                if (n < N)
#pragma unroll
                    for (int jj = 0; jj < HB; jj++)
                        gw[jj] = fmaf(xcol[n], ghs[n * HB + jj], gw[jj]);
#pragma unroll
            for (int jj = 0; jj < HB; jj++) {
                w[jj] -= p.lr * gw[jj];
                w1s[jj * p.dinp + k] = w[jj];
            }
        }
        if (forward)
#pragma unroll
            for (int n = 0; n < FX_P_NMAX; n++)
#pragma unroll
                for (int jj = 0; jj < HB; jj++)
                    hacc[n * HB + jj] = fmaf(xcol[n], w[jj], hacc[n * HB + jj]);
    }
    if (!forward)
        return;
    constexpr int NV = FX_P_NMAX * HB, V = NV / 32;
    fx_warp_reduce_scatter<NV>(hacc, lane);
#pragma unroll
    for (int v = 0; v < V; v++)
        red[warp * NV + lane * V + v] = hacc[v];
    __syncthreads();
    for (int idx = tid; idx < N * HB; idx += FX_P_THREADS) {
        float h = red[idx];
        for (int w = 1; w < FX_P_WARPS; w++)
            h += red[w * NV + idx];
        mk[idx] = h >= 0.f ? 1.f : 0.f;
        hr[idx] = h > 0.f ? h : 0.f;
    }
    __syncthreads();
}

template <int HB>
__global__ void __launch_bounds__(FX_P_THREADS, 1) persistent_kernel(const PersistentParams p)
{
    unsigned char *sm = fx_dynamic_smem();
    const PersistentLayout L = fx_p_layout(p.n, p.ks, HB, p.dout, p.din);
    float *xs = (float *)(sm + L.xs), *w1s = (float *)(sm + L.w1s), *hr = (float *)(sm + L.hr), *mk = (float *)(sm + L.mk);
    float *ghs = (float *)(sm + L.gh), *gs = (float *)(sm + L.g), *w2s = (float *)(sm + L.w2s);
    float *gw2s = (float *)(sm + L.gw2), *red = (float *)(sm + L.red);
    double *wl = (double *)(sm + L.wl);

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int b = blockIdx.x, P = gridDim.x;
    const int N = p.n, Dout = p.dout, NE = p.n * p.dout;
    const int j0 = b * HB, nj = min(HB, p.h - j0); // the last block may own fewer units
    unsigned long long passed = 0;

    for (int i = tid; i < N * p.ks; i += FX_P_THREADS)
        xs[i] = p.x[(long)(i / p.ks) * p.din + i % p.ks];
    for (int i = tid; i < HB * p.dinp; i += FX_P_THREADS) { // w1s[jj][k]: k is owned by thread k % 256
        const int jj = i / p.dinp, k = i % p.dinp;
        w1s[i] = jj < nj && k < p.din ? p.w1[(long)k * p.h + j0 + jj] : 0.f;
    }
    for (int i = tid; i < HB * Dout; i += FX_P_THREADS)
        w2s[i] = i / Dout < nj ? p.w2[(long)(j0 + i / Dout) * Dout + i % Dout] : 0.f;
    __syncthreads();
    fx_p_column_pass<HB>(p, xs, w1s, ghs, red, hr, mk, false, true);

    for (int t = 0; t < p.steps; t++) {
        const int par = t & 1;
        float *part = p.part + (size_t)par * P * NE;
        // A: this block's share of y_pred
        for (int idx = tid; idx < NE; idx += FX_P_THREADS) {
            const int n = idx / Dout, o = idx % Dout;
            float s = 0.f;
#pragma unroll
            for (int jj = 0; jj < HB; jj++)
                s = fmaf(hr[n * HB + jj], w2s[jj * Dout + o], s);
            part[(size_t)b * NE + idx] = s;
        }
        fx_p_grid_sync(p, passed);

        // B: y_pred = Σ_b part[b] (block order within each lane's stride, then a fixed tree);
        //    g = 2(y_pred − y); the loss in double
        const int e0 = p.one_barrier ? 0 : (int)((long)b * ((NE + P - 1) / P));
        const int e1 = p.one_barrier ? NE : min(NE, e0 + (NE + P - 1) / P);
        double wsum = 0;
        for (int e = e0 + warp; e < e1; e += FX_P_WARPS) {
            float s = 0.f;
            for (int bb = lane; bb < P; bb += 32)
                s += fx_ldcg(part + (size_t)bb * NE + e);
            s = fx_warp_sum0(s);
            if (lane == 0) {
                const float d = s - fx_ldg(p.y + e);
                if (p.one_barrier)
                    gs[e] = 2.0f * d;
                else
                    p.gbuf[e] = 2.0f * d;
                wsum += (double)d * (double)d;
            }
        }
        if (lane == 0)
            wl[warp] = wsum;
        __syncthreads();
        if (tid == 0) {
            double l = wl[0];
            for (int w = 1; w < FX_P_WARPS; w++)
                l += wl[w];
            if (p.one_barrier) {
                if (b == 0)
                    p.losses[t] = l;
            } else {
                p.lp[par * P + b] = l;
            }
        }
        if (!p.one_barrier) {
            fx_p_grid_sync(p, passed);
            for (int idx = tid; idx < NE; idx += FX_P_THREADS)
                gs[idx] = fx_ldcg(p.gbuf + idx);
            if (b == 0 && tid == 0) {
                double l = fx_ldcg(p.lp + par * P);
                for (int bb = 1; bb < P; bb++)
                    l += fx_ldcg(p.lp + par * P + bb);
                p.losses[t] = l;
            }
        }
        __syncthreads();

        // C: gh with the old w2, gw2, then the w2 update
        for (int idx = tid; idx < N * HB; idx += FX_P_THREADS) {
            const int n = idx / HB, jj = idx % HB;
            float s = 0.f;
            for (int o = 0; o < Dout; o++)
                s = fmaf(gs[n * Dout + o], w2s[jj * Dout + o], s);
            ghs[idx] = mk[idx] != 0.f ? s : 0.f;
        }
        for (int idx = tid; idx < HB * Dout; idx += FX_P_THREADS) {
            const int jj = idx / Dout, o = idx % Dout;
            float s = 0.f;
            for (int n = 0; n < N; n++)
                s = fmaf(hr[n * HB + jj], gs[n * Dout + o], s);
            gw2s[idx] = s;
        }
        __syncthreads();
        for (int idx = tid; idx < HB * Dout; idx += FX_P_THREADS)
            w2s[idx] -= p.lr * gw2s[idx];

        // D: w1 update and the next step's forward pass, one read of x
        fx_p_column_pass<HB>(p, xs, w1s, ghs, red, hr, mk, true, t + 1 < p.steps);
    }

    __syncthreads(); // w1s and w2s were last written by other threads
    for (int i = tid; i < HB * p.dinp; i += FX_P_THREADS) {
        const int jj = i / p.dinp, k = i % p.dinp;
        if (jj < nj && k < p.din)
            p.w1[(long)k * p.h + j0 + jj] = w1s[i];
    }
    for (int i = tid; i < HB * Dout; i += FX_P_THREADS)
        if (i / Dout < nj)
            p.w2[(long)(j0 + i / Dout) * Dout + i % Dout] = w2s[i];
}

} // namespace fx
