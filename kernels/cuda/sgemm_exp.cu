// sgemm_exp.cu — the SGEMM experiments' kernels (sgemm.cuh: CfgLarge2, CfgLargeBk8 — 2 configs × 3
// ops × 4 epilogues × general/fast loads — and CfgLarge with B by cp.async, NN and TN × 4 epilogues).
// Only FIFTYX_SGEMM_CFG=large2|large-bk8|large-async runs them: the heuristic never picks them
// until a GPU has measured them against 128x128 (NOTES.md).
#include "fx_cuda.h"
#include "sgemm_launch.cuh"

using namespace fx;

int fx_sgemm_launch_exp(const SgemmParams &p, const SgemmPlan &pl, fx_op op, fx_epilogue epi, cudaStream_t st,
                        fx_err *e)
{
    switch (pl.cfg) {
    case FX_CFG_LARGE2: return launch_cfg<CfgLarge2>(p, pl, op, epi, st, e);
    case FX_CFG_LARGE_BK8: return launch_cfg<CfgLargeBk8>(p, pl, op, epi, st, e);
    case FX_CFG_LARGE_ASYNC: // sgemm.cu launches the default kernels where pl.async_b is 0
        if (!pl.async_b)
            break;
        if (op == FX_NN)
            return launch_cfg_op<CfgLarge, FX_NN, true>(p, pl, epi, st, e);
        if (op == FX_TN)
            return launch_cfg_op<CfgLarge, FX_TN, true>(p, pl, epi, st, e);
        break; // NT: B is k-contiguous, never planned with cp.async
    }
    return fx_fail(e, "sgemm: no experimental kernel for config %s, op %d", fx_cfg_name[pl.cfg], (int)op);
}

int fx_sgemm_occupancy_exp(int occupancy[FX_NCFG_ALL], fx_err *e)
{
    FX_TRY(sgemm_occupancy<CfgLarge2>(&occupancy[FX_CFG_LARGE2], e));
    FX_TRY(sgemm_occupancy<CfgLargeBk8>(&occupancy[FX_CFG_LARGE_BK8], e));
    FX_TRY((sgemm_occupancy<CfgLarge, true>(&occupancy[FX_CFG_LARGE_ASYNC], e)));
    return 0;
}
