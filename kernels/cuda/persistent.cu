// persistent.cu — the `cuda-persistent` backend: all steps of a run() in one cooperative launch
// (persistent.cuh has the design). For sizes it cannot hold, unsupported() says why.
//
// Experiment switches (read at create; describe() records them):
//   FIFTYX_PERSISTENT_SYNC=coop|flags     grid barrier: cooperative groups (default) or arrival counter
//   FIFTYX_PERSISTENT_REDUCE=one|two      cross-block sum: one barrier per step (every block sums all
//                                         partials) or two (scattered sums); default by P·N·D_out
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include "fx_cuda.h"
#include "persistent.cuh"

using namespace fx;

// One barrier per step when a block's redundant read of all partials is this small (floats).
static const long ONE_BARRIER_MAX_FLOATS = 16384;

struct pers_plan {
    int hb, blocks, ks, dinp, one_barrier, sync_mode;
    size_t smem;
};

template <int HB>
static int occupancy(size_t smem, int *blocks_per_sm, fx_err *e)
{
    FX_CU(cudaFuncSetAttribute(persistent_kernel<HB>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    FX_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, persistent_kernel<HB>, FX_P_THREADS, smem));
    return 0;
}

// The plan for a size, or why not (why[0] set; -1 with e for CUDA errors).
static int make_plan(fx_size s, pers_plan *pl, char *why, size_t why_len, fx_err *e)
{
    why[0] = 0;
    const fx_cuda_device *d = fx_cuda_dev();
    if (!d) {
        snprintf(why, why_len, "%s", fx_cuda_unavailable());
        return 0;
    }
    if (!d->coop_launch) {
        snprintf(why, why_len, "GPU %s does not support cooperative launches", d->name);
        return 0;
    }
    if (s.n > FX_P_NMAX) {
        snprintf(why, why_len, "batch N = %ld > %d (a thread keeps a column of x in registers)", s.n, FX_P_NMAX);
        return 0;
    }
    if (s.h > INT_MAX || s.d_in > INT_MAX / 4 || s.d_out > INT_MAX || s.n * s.d_out > INT_MAX) {
        snprintf(why, why_len, "H, D_in or N·D_out exceeds the kernel's int indexing");
        return 0;
    }
    const int n = (int)s.n, dout = (int)s.d_out, din = (int)s.d_in;
    for (int hb = 1; hb <= FX_P_HBMAX; hb++) {
        const size_t fixed_hb = fx_p_layout(n, 0, hb, dout, din).total;
        if (fixed_hb > d->smem_optin) {
            snprintf(why, why_len, "w1's and w2's slices, g and h need %zu bytes of shared memory; the GPU has %zu",
                     fixed_hb, d->smem_optin);
            return 0;
        }
        long ks = (long)((d->smem_optin - fixed_hb) / (4ul * (size_t)n)) / 32 * 32;
        if (ks >= s.d_in)
            ks = s.d_in;
        const size_t smem = fx_p_layout(n, (int)ks, hb, dout, din).total;
        int per_sm = 0;
        if (hb == 1)
            FX_TRY(occupancy<1>(smem, &per_sm, e));
        else
            FX_TRY(occupancy<2>(smem, &per_sm, e));
        const long blocks = (s.h + hb - 1) / hb, resident = (long)per_sm * d->sms;
        if (blocks > resident)
            continue;
        pl->hb = hb;
        pl->blocks = (int)blocks;
        pl->ks = (int)ks;
        pl->dinp = fx_p_dinp(din);
        pl->smem = smem;
        pl->one_barrier = blocks * s.n * s.d_out <= ONE_BARRIER_MAX_FLOATS;
        pl->sync_mode = FX_PSYNC_COOP;
        const char *r = getenv("FIFTYX_PERSISTENT_REDUCE"), *y = getenv("FIFTYX_PERSISTENT_SYNC");
        if (r && *r) {
            if (strcmp(r, "one") && strcmp(r, "two"))
                return fx_fail(e, "FIFTYX_PERSISTENT_REDUCE='%s': expected one or two", r);
            pl->one_barrier = !strcmp(r, "one");
        }
        if (y && *y) {
            if (strcmp(y, "coop") && strcmp(y, "flags"))
                return fx_fail(e, "FIFTYX_PERSISTENT_SYNC='%s': expected coop or flags", y);
            pl->sync_mode = !strcmp(y, "flags") ? FX_PSYNC_FLAGS : FX_PSYNC_COOP;
        }
        return 0;
    }
    snprintf(why, why_len, "H = %ld needs more than %d hidden units per block on %d SMs", s.h, FX_P_HBMAX, d->sms);
    return 0;
}

static const char *pers_unavailable(void) { return fx_cuda_unavailable(); }

static const char *pers_unsupported(const fx_problem *p)
{
    static char why[300];
    pers_plan pl;
    fx_err e = {{0}};
    if (make_plan(p->size, &pl, why, sizeof why, &e))
        snprintf(why, sizeof why, "%s", e.msg);
    return why[0] ? why : NULL;
}

struct pers_state {
    fx_size s;
    float lr;
    int sync_every_step;
    pers_plan plan;
    fx_dev_buf<float> x, y, w1, w2, part, gbuf;
    fx_dev_buf<double> lp, losses;
    fx_dev_buf<unsigned long long> bar;
    cudaStream_t st = nullptr;
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    ~pers_state()
    {
        if (t0)
            cudaEventDestroy(t0);
        if (t1)
            cudaEventDestroy(t1);
        if (st)
            cudaStreamDestroy(st);
    }
};

static void pers_destroy(void *p) { delete (pers_state *)p; }

static int create_state(pers_state *st, const fx_problem *p, const fx_tensors *init, fx_err *e)
{
    const fx_size s = p->size;
    const size_t N = (size_t)s.n, Din = (size_t)s.d_in, H = (size_t)s.h, Dout = (size_t)s.d_out;
    char why[300];
    FX_TRY(make_plan(s, &st->plan, why, sizeof why, e));
    if (why[0])
        return fx_fail(e, "%s", why);
    st->s = s;
    st->lr = p->lr;
    st->sync_every_step = p->sync_every_step;
    FX_TRY(st->x.upload(init->x, N * Din, e));
    FX_TRY(st->y.upload(init->y, N * Dout, e));
    FX_TRY(st->w1.upload(init->w1, Din * H, e));
    FX_TRY(st->w2.upload(init->w2, H * Dout, e));
    FX_TRY(st->part.alloc(2 * (size_t)st->plan.blocks * N * Dout, e));
    FX_TRY(st->gbuf.alloc(N * Dout, e));
    FX_TRY(st->lp.alloc(2 * (size_t)st->plan.blocks, e));
    FX_TRY(st->bar.alloc(1, e));
    FX_CU(cudaStreamCreateWithFlags(&st->st, cudaStreamNonBlocking));
    FX_CU(cudaEventCreate(&st->t0));
    FX_CU(cudaEventCreate(&st->t1));
    // The zeroing memsets ran on the legacy stream, which the non-blocking streams do not wait for.
    FX_CU(cudaDeviceSynchronize());
    return 0;
}

static int pers_create(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e)
{
    if (const char *why = fx_cuda_unavailable())
        return fx_fail(e, "%s", why);
    return fx_new<pers_state>(state, [&](pers_state *st) { return create_state(st, p, init, e); }, e);
}

// One cooperative launch of `steps` steps writing losses.p[0 .. steps).
static int launch(pers_state *st, int steps, fx_err *e)
{
    const pers_plan &pl = st->plan;
    PersistentParams prm;
    prm.x = st->x.p, prm.y = st->y.p, prm.w1 = st->w1.p, prm.w2 = st->w2.p;
    prm.part = st->part.p, prm.gbuf = st->gbuf.p, prm.lp = st->lp.p, prm.losses = st->losses.p, prm.bar = st->bar.p;
    prm.n = (int)st->s.n, prm.din = (int)st->s.d_in, prm.h = (int)st->s.h, prm.dout = (int)st->s.d_out;
    prm.steps = steps, prm.ks = pl.ks, prm.dinp = pl.dinp, prm.one_barrier = pl.one_barrier;
    prm.sync_mode = pl.sync_mode, prm.lr = st->lr;
    if (pl.sync_mode == FX_PSYNC_FLAGS)
        FX_CU(cudaMemsetAsync(st->bar.p, 0, sizeof(unsigned long long), st->st));
    void *args[] = {&prm};
    const void *fn = pl.hb == 1 ? (const void *)persistent_kernel<1> : (const void *)persistent_kernel<2>;
    // The limit is per function; a plan made since (another size) may have lowered it.
    FX_CU(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pl.smem));
    fx_cuda_clear_stale_error();
    FX_CU(cudaLaunchCooperativeKernel(fn, dim3((unsigned)pl.blocks), dim3(FX_P_THREADS), args, pl.smem, st->st));
    FX_LAUNCHED("persistent_kernel");
    return 0;
}

static int pers_run(void *state, int steps, double *losses, double *seconds, fx_err *e)
{
    pers_state *st = (pers_state *)state;
    if (steps <= 0) {
        if (seconds)
            *seconds = 0;
        return 0;
    }
    const int per_launch = st->sync_every_step ? 1 : (steps < FX_LOSS_CHUNK ? steps : FX_LOSS_CHUNK);
    if (st->losses.n < (size_t)per_launch)
        FX_TRY(st->losses.alloc((size_t)per_launch, e));
    FX_CU(cudaEventRecord(st->t0, st->st));
    for (int done = 0; done < steps;) {
        const int n = steps - done < per_launch ? steps - done : per_launch;
        FX_TRY(launch(st, n, e));
        if (done + n == steps)
            FX_CU(cudaEventRecord(st->t1, st->st));
        FX_CU(cudaMemcpyAsync(losses + done, st->losses.p, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost, st->st));
        FX_CU(cudaStreamSynchronize(st->st));
        done += n;
    }
    if (seconds)
        FX_TRY(fx_event_seconds(st->t0, st->t1, seconds, e));
    return 0;
}

static int pers_read_weights(void *state, float *w1, float *w2, fx_err *e)
{
    const pers_state *st = (const pers_state *)state;
    return fx_read_weights(st->s, st->w1.p, st->w2.p, w1, w2, e);
}

static const char *pers_describe(void)
{
    static char buf[700];
    const fx_cuda_device *d = fx_cuda_dev();
    if (!d)
        return "no CUDA device";
    if (buf[0])
        return buf;
    pers_plan pl;
    char why[300];
    fx_err e = {{0}};
    const fx_size tut = {64, 1000, 100, 10};
    if (make_plan(tut, &pl, why, sizeof why, &e))
        snprintf(why, sizeof why, "%s", e.msg);
    if (why[0])
        snprintf(buf, sizeof buf, "%s, %d SMs; tutorial size unsupported: %s", d->name, d->sms, why);
    else
        snprintf(buf, sizeof buf,
                 "%s, %d SMs; one cooperative launch per run; tutorial: %d blocks x %d hidden unit(s), "
                 "x %d/%d columns in %zu B shared, %s barrier, %s per step",
                 d->name, d->sms, pl.blocks, pl.hb, pl.ks, 1000, pl.smem,
                 pl.sync_mode == FX_PSYNC_COOP ? "cooperative-groups" : "arrival-counter",
                 pl.one_barrier ? "one barrier" : "two barriers");
    return buf;
}

extern "C" const fx_backend fx_backend_cuda_persistent = {
    .name = "cuda-persistent",
    .device = FX_GPU,
    .summary = "one cooperative CUDA launch for the whole loop: hidden units split across blocks, grid barriers",
    .unavailable = pers_unavailable,
    .unsupported = pers_unsupported,
    .create = pers_create,
    .run = pers_run,
    .read_weights = pers_read_weights,
    .destroy = pers_destroy,
    .kernels = nullptr,
    .gemm_bench = nullptr,
    .describe = pers_describe,
    .hidden = 0,
    // one family for validation by agreement: the three GPU backends share the loss and SGD
    // kernels of common.cu (and its device plumbing), so their agreement proves little
    .family = "cuda",
};
