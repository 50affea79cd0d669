// elementwise.cuh — the step's small kernels: loss + gradient (fixed-order reduction), SGD, and
// the ReLU/mask passes the cuBLAS baseline needs around its GEMMs.
#pragma once
#include <stdint.h>
#include "block_sum.cuh"
#include "compat.cuh"

namespace fx {

constexpr int FX_EW_THREADS = 256;
constexpr int FX_LOSS_MAX_BLOCKS = 64;

struct LossGradParams {
    long n;
    const float *yp, *y;
    float *g;
    double *partials; // one per block (grid > 1)
    unsigned *ticket; // zero between launches (grid > 1)
    double *loss;     // written at loss[*step] (or loss[0] without step); step then advances
    int *step;        // may be NULL
};

// Blocks for n elements: a function of n alone, so the summation order is too.
static inline int loss_grad_blocks(long n)
{
    long b = (n + 8L * FX_EW_THREADS - 1) / (8L * FX_EW_THREADS);
    return (int)(b < 1 ? 1 : b > FX_LOSS_MAX_BLOCKS ? FX_LOSS_MAX_BLOCKS : b);
}

// g = 2(yp − y); loss = Σ(yp − y)², accumulated in double. Each thread walks a fixed strided set
// of elements, blocks reduce with fx_block_sum, and the last block to finish (integer ticket)
// adds the block partials in block order: no float atomics, the same bits on every run.
__global__ void __launch_bounds__(FX_EW_THREADS) loss_grad_kernel(const LossGradParams p)
{
    __shared__ double scratch[FX_EW_THREADS / 32];
    __shared__ int s_last;
    double s = 0;
    const long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += stride) {
        const float d = p.yp[i] - p.y[i];
        p.g[i] = 2.0f * d;
        s += (double)d * (double)d;
    }
    s = fx_block_sum(s, scratch);
    double total = s;
    if (gridDim.x > 1) {
        if (threadIdx.x == 0) {
            p.partials[blockIdx.x] = s;
            __threadfence();
            s_last = atomicAdd(p.ticket, 1u) == gridDim.x - 1;
        }
        __syncthreads();
        if (!s_last)
            return;
        if (threadIdx.x == 0) {
            __threadfence();
            total = fx_ldcg(&p.partials[0]);
            for (unsigned b = 1; b < gridDim.x; b++)
                total += fx_ldcg(&p.partials[b]);
            *p.ticket = 0;
        }
    }
    if (threadIdx.x == 0) {
        const int t = p.step ? *p.step : 0;
        p.loss[t] = total;
        if (p.step)
            *p.step = t + 1;
    }
}

// w −= lr·g
__global__ void __launch_bounds__(FX_EW_THREADS) sgd_kernel(long n, float *w, const float *g, float lr)
{
    const long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        w[i] -= lr * g[i];
}

// h_relu = max(h, 0), mask = h ≥ 0 (h_relu may be h itself)
__global__ void __launch_bounds__(FX_EW_THREADS) relu_mask_kernel(long n, const float *h, float *h_relu, uint8_t *mask)
{
    const long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = h[i];
        mask[i] = v >= 0.f;
        h_relu[i] = v > 0.f ? v : 0.f;
    }
}

// c = mask ? c : 0
__global__ void __launch_bounds__(FX_EW_THREADS) apply_mask_kernel(long n, float *c, const uint8_t *mask)
{
    const long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        if (!mask[i])
            c[i] = 0.f;
}

// Blocks for a grid-stride elementwise kernel over n elements.
static inline int ew_blocks(long n)
{
    long b = (n + FX_EW_THREADS - 1) / FX_EW_THREADS;
    return (int)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

} // namespace fx
