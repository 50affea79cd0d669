// sgemm_launch.cuh — the launch of one SGEMM config for any op and epilogue (host side), shared by
// sgemm.cu (the heuristic's configs) and sgemm_exp.cu (the experiments, a translation unit of their
// own so that the two compile in parallel).
#pragma once
#include "fx_cuda.h"

namespace fx {

template <class C, int OP, int EPI, bool ASYNC_B = false>
static inline int launch_cfg_op_epi(const SgemmParams &p, const SgemmPlan &pl, cudaStream_t st, fx_err *e)
{
    fx_cuda_clear_stale_error();
    const dim3 grid((unsigned)pl.tiles, (unsigned)pl.splits);
    if constexpr (ASYNC_B) // the caller checked pl.async_b (so pl.fast, and B k-major)
        sgemm_kernel<C, OP, EPI, true, true><<<grid, C::THREADS, 0, st>>>(p);
    else if (pl.fast)
        sgemm_kernel<C, OP, EPI, true><<<grid, C::THREADS, 0, st>>>(p);
    else
        sgemm_kernel<C, OP, EPI, false><<<grid, C::THREADS, 0, st>>>(p);
    FX_LAUNCHED("sgemm_kernel");
    return 0;
}

template <class C, int OP, bool ASYNC_B = false>
static inline int launch_cfg_op(const SgemmParams &p, const SgemmPlan &pl, fx_epilogue epi, cudaStream_t st, fx_err *e)
{
    switch (epi) {
    case FX_EPI_STORE: return launch_cfg_op_epi<C, OP, FX_EPI_STORE, ASYNC_B>(p, pl, st, e);
    case FX_EPI_RELU_MASK: return launch_cfg_op_epi<C, OP, FX_EPI_RELU_MASK, ASYNC_B>(p, pl, st, e);
    case FX_EPI_MASK: return launch_cfg_op_epi<C, OP, FX_EPI_MASK, ASYNC_B>(p, pl, st, e);
    case FX_EPI_SGD: return launch_cfg_op_epi<C, OP, FX_EPI_SGD, ASYNC_B>(p, pl, st, e);
    }
    return fx_fail(e, "sgemm: unknown epilogue %d", (int)epi);
}

template <class C>
static inline int launch_cfg(const SgemmParams &p, const SgemmPlan &pl, fx_op op, fx_epilogue epi, cudaStream_t st, fx_err *e)
{
    switch (op) {
    case FX_NN: return launch_cfg_op<C, FX_NN>(p, pl, epi, st, e);
    case FX_NT: return launch_cfg_op<C, FX_NT>(p, pl, epi, st, e);
    case FX_TN: return launch_cfg_op<C, FX_TN>(p, pl, epi, st, e);
    }
    return fx_fail(e, "sgemm: unknown op %d", (int)op);
}

// Resident blocks per SM of config C (its NN kernel; the epilogue does not change the registers).
template <class C, bool ASYNC_B = false>
static inline int sgemm_occupancy(int *blocks, fx_err *e)
{
    FX_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, sgemm_kernel<C, FX_NN, FX_EPI_STORE, ASYNC_B, ASYNC_B>,
                                                        C::THREADS, 0));
    return 0;
}

} // namespace fx
