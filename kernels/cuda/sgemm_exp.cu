// sgemm_exp.cu — the SGEMM experiments' kernels (sgemm.cuh: CfgLarge2, CfgLargeBk8; 2 configs × 3
// ops × 4 epilogues × general/fast loads). Only FIFTYX_SGEMM_CFG=large2|large-bk8 runs them: the
// heuristic never picks them until a GPU has measured them against 128x128 (NOTES.md).
#include "fx_cuda.h"
#include "sgemm_launch.cuh"

using namespace fx;

int fx_sgemm_launch_exp(const SgemmParams &p, const SgemmPlan &pl, fx_op op, fx_epilogue epi, cudaStream_t st,
                        fx_err *e)
{
    switch (pl.cfg) {
    case FX_CFG_LARGE2: return launch_cfg<CfgLarge2>(p, pl, op, epi, st, e);
    case FX_CFG_LARGE_BK8: return launch_cfg<CfgLargeBk8>(p, pl, op, epi, st, e);
    }
    return fx_fail(e, "sgemm: %d is not an experimental config", pl.cfg);
}

int fx_sgemm_occupancy_exp(int occupancy[FX_NCFG_ALL], fx_err *e)
{
    FX_TRY(sgemm_occupancy<CfgLarge2>(&occupancy[FX_CFG_LARGE2], e));
    FX_TRY(sgemm_occupancy<CfgLargeBk8>(&occupancy[FX_CFG_LARGE_BK8], e));
    return 0;
}
