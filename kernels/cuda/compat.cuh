// compat.cuh — the few device primitives the kernels use, under nvcc or under the host emulator.
//
// The kernel headers (sgemm.cuh, elementwise.cuh, persistent.cuh, midstep.cuh, block_sum.cuh)
// include only this file and each other, so that kernels/cuda/emu/ can compile the very same
// kernel code with g++ and run it on the CPU (fibers for threads) to test index math, bounds and
// barrier placement where no GPU is at hand. Nothing here changes what nvcc generates.
#pragma once

#ifdef FX_EMU
#include "emu/cuda_emu.h"
#else
#include <cooperative_groups.h>
#include <cuda_runtime.h>

// 16-byte read-only load (the operands of a GEMM are never written by the kernel that reads them).
__device__ __forceinline__ float4 fx_ldg4(const float *p) { return __ldg(reinterpret_cast<const float4 *>(p)); }
__device__ __forceinline__ float fx_ldg(const float *p) { return __ldg(p); }
// Loads that bypass L1: data another block wrote during this kernel (split-K partials, the
// persistent kernel's cross-block sums). L1 is not coherent across SMs.
__device__ __forceinline__ float4 fx_ldcg4(const float *p) { return __ldcg(reinterpret_cast<const float4 *>(p)); }
__device__ __forceinline__ float fx_ldcg(const float *p) { return __ldcg(p); }
__device__ __forceinline__ double fx_ldcg(const double *p) { return __ldcg(p); }
__device__ __forceinline__ unsigned long long fx_ld_acquire(const unsigned long long *p)
{
    unsigned long long v;
    asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
// cp.async (sm_80+): a 16-byte copy global → shared that bypasses the registers (.cg: not kept in
// L1), grouped by commit; wait<N> returns when at most N of this thread's groups are in flight.
// Copies are visible to the issuing thread after the wait, to the block after a __syncthreads.
// Built for an architecture before sm_80 (CUDA_ARCH overridden), a plain copy: correct, synchronous.
__device__ __forceinline__ void fx_cp_async16(void *smem, const void *gmem)
{
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
#else
    *static_cast<float4 *>(smem) = *static_cast<const float4 *>(gmem);
#endif
}
__device__ __forceinline__ void fx_cp_async_commit()
{
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void fx_cp_async_wait()
{
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}
// Grid-wide barrier of a cooperative launch (no -rdc needed since CUDA 11).
__device__ __forceinline__ void fx_grid_sync_coop() { cooperative_groups::this_grid().sync(); }
// The block's dynamic shared memory (16-byte aligned).
__device__ __forceinline__ unsigned char *fx_dynamic_smem()
{
    extern __shared__ float4 fx_dynamic_smem_[];
    return reinterpret_cast<unsigned char *>(fx_dynamic_smem_);
}
#define FX_SPIN_PAUSE() ((void)0)
#endif
