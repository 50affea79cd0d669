// block_sum.cuh — a block-wide sum in a fixed order, for the kernels whose results must be the same
// bits on every run (the loss kernel of elementwise.cuh, the fused middle step of midstep.cuh).
#pragma once
#include "compat.cuh"

namespace fx {

// Sum of v over the block in a fixed order (a shuffle tree per warp, then warps in order);
// the result is valid in thread 0. scratch: one slot per warp. Ends with the block synchronised.
template <class T>
__device__ __forceinline__ T fx_block_sum(T v, T *scratch)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
#pragma unroll
    for (int off = 16; off > 0; off /= 2)
        v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    T total = 0;
    if (threadIdx.x == 0) {
        total = scratch[0];
        for (int w = 1; w < warps; w++)
            total += scratch[w];
    }
    __syncthreads(); // scratch may be reused right away
    return total;
}

} // namespace fx
