// sgemm.cu — instantiates the SGEMM variants the heuristic chooses from (3 configs × 3 ops × 4
// epilogues × general/fast loads), plans and launches; the experiments' kernels are in sgemm_exp.cu.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "fx_cuda.h"
#include "sgemm_launch.cuh"

using namespace fx;

int fx_sgemm_launch(const SgemmPlan &pl, const fx_gemm_args &g, float *ws, int *counters, cudaStream_t st, fx_err *e)
{
    if (pl.splits > 1 && (!ws || !counters))
        return fx_fail(e, "sgemm: split-K plan without workspace");
    const SgemmParams p = sgemm_params(pl, g, ws, counters);
    switch (pl.cfg) {
    case FX_CFG_LARGE: return launch_cfg<CfgLarge>(p, pl, g.op, g.epi, st, e);
    case FX_CFG_MID: return launch_cfg<CfgMid>(p, pl, g.op, g.epi, st, e);
    case FX_CFG_SMALL: return launch_cfg<CfgSmall>(p, pl, g.op, g.epi, st, e);
    case FX_CFG_LARGE_ASYNC:
        if (!pl.async_b) // where K or the layout rules cp.async out: the default config's kernels
            return launch_cfg<CfgLarge>(p, pl, g.op, g.epi, st, e);
        return fx_sgemm_launch_exp(p, pl, g.op, g.epi, st, e);
    case FX_CFG_LARGE2:
    case FX_CFG_LARGE_BK8: return fx_sgemm_launch_exp(p, pl, g.op, g.epi, st, e);
    }
    return fx_fail(e, "sgemm: unknown config %d", pl.cfg);
}

// Resident blocks per SM of each config, from the runtime's occupancy calculator (once).
static int machine(SgemmMachine *mach, fx_err *e)
{
    static SgemmMachine cached;
    static int done;
    if (!done) {
        const fx_cuda_device *d = fx_cuda_dev();
        if (!d)
            return fx_fail(e, "%s", fx_cuda_unavailable());
        cached.sms = d->sms;
        FX_TRY(sgemm_occupancy<CfgLarge>(&cached.occupancy[FX_CFG_LARGE], e));
        FX_TRY(sgemm_occupancy<CfgMid>(&cached.occupancy[FX_CFG_MID], e));
        FX_TRY(sgemm_occupancy<CfgSmall>(&cached.occupancy[FX_CFG_SMALL], e));
        FX_TRY(fx_sgemm_occupancy_exp(cached.occupancy, e));
        for (int c = 0; c < FX_NCFG_ALL; c++)
            if (cached.occupancy[c] < 1)
                return fx_fail(e, "sgemm: config %s cannot be resident on this GPU", fx_cfg_name[c]);
        done = 1;
    }
    *mach = cached;
    return 0;
}

int fx_sgemm_plan(fx_op op, long m, long n, long k, const void *a, const void *b, const void *c, const void *mask,
                  SgemmPlan *plan, fx_err *e)
{
    // ≤ 2^30: the kernel's int arithmetic (kbeg + kchunk, tile origins + tile sizes) cannot overflow
    const long max_dim = 1L << 30;
    if (m < 1 || n < 1 || k < 1 || m > max_dim || n > max_dim || k > max_dim)
        return fx_fail(e, "sgemm: dimensions %ldx%ldx%ld out of range (1 to %ld)", m, n, k, max_dim);
    if (fx_cdiv(m, 32) * fx_cdiv(n, 32) > INT_MAX)
        return fx_fail(e, "sgemm: %ldx%ld needs more than 2^31 tiles", m, n);
    SgemmMachine mach = {};
    FX_TRY(machine(&mach, e));
    const char *cfg_env = getenv("FIFTYX_SGEMM_CFG"), *split_env = getenv("FIFTYX_SGEMM_SPLITS");
    const char *fast_env = getenv("FIFTYX_SGEMM_FAST");
    if (fast_env && *fast_env && strcmp(fast_env, "0") && strcmp(fast_env, "1"))
        return fx_fail(e, "FIFTYX_SGEMM_FAST='%s': expected 0 or 1", fast_env);
    int cfg = -1, splits = 0;
    if (cfg_env && *cfg_env) {
        for (int i = 0; i < FX_NCFG_ALL; i++)
            if (!strcmp(cfg_env, fx_cfg_name[i]) || !strcmp(cfg_env, fx_cfg_alias[i]))
                cfg = i;
        if (cfg < 0)
            return fx_fail(e, "FIFTYX_SGEMM_CFG='%s': expected large, mid, small, large2, large-bk8 or large-async",
                           cfg_env);
    }
    if (split_env && *split_env) {
        char *end;
        long v = strtol(split_env, &end, 10);
        if (*end || v < 1 || v > 4096)
            return fx_fail(e, "FIFTYX_SGEMM_SPLITS='%s': expected an integer from 1 to 4096", split_env);
        splits = (int)v;
    }
    SgemmPlan p;
    if (cfg < 0 && splits <= 0)
        p = sgemm_choose(m, n, k, mach);
    else if (splits <= 0)
        p = sgemm_best_for(cfg, m, n, k, mach, nullptr);
    else
        p = sgemm_plan_for(cfg < 0 ? FX_CFG_SMALL : cfg, splits, m, n, k);
    sgemm_plan_vectors(p, op, m, n, k, a, b, c, mask);
    if (fast_env && !strcmp(fast_env, "0"))
        p.fast = p.async_b = 0; // the general loader everywhere (to measure what the fast path gains)
    *plan = p;
    return 0;
}

void fx_sgemm_plan_text(const SgemmPlan &p, char *buf, size_t len)
{
    // said only where the fast loads were possible and FIFTYX_SGEMM_FAST=0 turned them off
    const char *off = p.vec_a && p.vec_b && !p.fast                  ? " general loads"
                      : p.cfg == FX_CFG_LARGE_ASYNC && !p.async_b ? " (cp.async not taken)"
                                                                  : "";
    if (p.splits > 1)
        snprintf(buf, len, "%s split-K %d×%d%s", fx_cfg_name[p.cfg], p.splits, p.kchunk, off);
    else
        snprintf(buf, len, "%s%s", fx_cfg_name[p.cfg], off);
}

int fx_gemm_site::prepare(const fx_gemm_args &g, fx_err *e)
{
    FX_TRY(fx_sgemm_plan(g.op, g.m, g.n, g.k, g.a, g.b, g.c, g.mask, &plan, e));
    if (plan.splits > 1) {
        FX_TRY(ws.alloc((size_t)plan.ws_floats, e));
        FX_TRY(counters.alloc((size_t)plan.tiles, e));
        FX_TRY(counters.zero(e));
    }
    return 0;
}
