// fx_cuda.h — host-side pieces shared by the CUDA backends (cuda, cuda-persistent, cublas):
// error reporting, availability, device buffers, launchers of the shared kernels, and the state
// cuda and cublas share (the step's tensors and graph loop, the GEMM benchmark's operand sets).
//
// Errors: every CUDA call goes through FX_CU, every launch is followed by FX_LAUNCHED; both turn a
// failure into "file:line: what: cudaErrorX: text" in the caller's fx_err *e and return -1.
// Nothing here exits or aborts.
#pragma once
#include <cuda_runtime.h>
#include <new>
#include <stddef.h>
#include <stdint.h>
#include "../fiftyx.h"
#include "sgemm.cuh"

int fx_cuda_fail(fx_err *e, const char *file, int line, const char *what, cudaError_t err);

#define FX_CU(call)                                                                                \
    do {                                                                                           \
        cudaError_t fx_cu_err_ = (call);                                                           \
        if (fx_cu_err_ != cudaSuccess)                                                             \
            return fx_cuda_fail(e, __FILE__, __LINE__, #call, fx_cu_err_);                         \
    } while (0)

#define FX_LAUNCHED(what)                                                                          \
    do {                                                                                           \
        cudaError_t fx_cu_err_ = cudaGetLastError();                                               \
        if (fx_cu_err_ != cudaSuccess)                                                             \
            return fx_cuda_fail(e, __FILE__, __LINE__, "launch of " what, fx_cu_err_);             \
    } while (0)

// Before a launch checked by FX_LAUNCHED: clears the error an earlier runtime call left behind (one
// already reported to its caller, or ignored in a destructor), so that FX_LAUNCHED reports this
// launch's own error. A sticky error (a kernel fault) is not cleared: the launch then fails with it.
static inline void fx_cuda_clear_stale_error(void) { (void)cudaGetLastError(); }

#define FX_TRY(call)                                                                               \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return -1;                                                                             \
    } while (0)

// NULL when device 0 is usable by this build, else why not ("no CUDA device: ..."). Cached.
extern "C" const char *fx_cuda_unavailable(void);

// What the backends need to know of device 0 (valid once fx_cuda_unavailable() returned NULL).
struct fx_cuda_device {
    char name[256];
    int sms, cc_major, cc_minor;
    size_t smem_optin; // shared memory per block with the opt-in attribute
    int coop_launch;   // cudaLaunchCooperativeKernel supported
    size_t global_mem;
};
const fx_cuda_device *fx_cuda_dev(void);

// A device allocation freed by its destructor.
template <class T>
struct fx_dev_buf {
    T *p = nullptr;
    size_t n = 0;
    fx_dev_buf() = default;
    fx_dev_buf(const fx_dev_buf &) = delete;
    fx_dev_buf &operator=(const fx_dev_buf &) = delete;
    ~fx_dev_buf() { reset(); }
    void reset()
    {
        if (p)
            cudaFree(p);
        p = nullptr;
        n = 0;
    }
    int alloc(size_t count, fx_err *e)
    {
        reset();
        if (count == 0)
            count = 1;
        FX_CU(cudaMalloc((void **)&p, count * sizeof(T)));
        n = count;
        return 0;
    }
    int upload(const T *src, size_t count, fx_err *e)
    {
        FX_TRY(alloc(count, e));
        FX_CU(cudaMemcpy(p, src, count * sizeof(T), cudaMemcpyHostToDevice));
        return 0;
    }
    int zero(fx_err *e)
    {
        FX_CU(cudaMemset(p, 0, n * sizeof(T)));
        return 0;
    }
};

// ---- shared kernels (common.cu) -------------------------------------------------------------

// Scratch of the loss kernel: block partials and the ticket, sized for n elements.
struct fx_loss_scratch {
    fx_dev_buf<double> partials;
    fx_dev_buf<unsigned> ticket;
    int alloc(long n, fx_err *e);
};
// g = 2(yp − y); loss[*step] = Σ(yp − y)² (fixed order); *step += 1 (step may be NULL: loss[0]).
int fx_launch_loss_grad(long n, const float *yp, const float *y, float *g, double *loss, int *step,
                        fx_loss_scratch &s, cudaStream_t st, fx_err *e);
int fx_launch_sgd(long n, float *w, const float *g, float lr, cudaStream_t st, fx_err *e);
int fx_launch_relu_mask(long n, const float *h, float *h_relu, uint8_t *mask, cudaStream_t st, fx_err *e);
int fx_launch_apply_mask(long n, float *c, const uint8_t *mask, cudaStream_t st, fx_err *e);

// The kernels table's loss_grad and sgd on host memory (copies in and out), shared by cuda and cublas.
extern "C" int fx_cuda_host_loss_grad(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e);
extern "C" int fx_cuda_host_sgd(long n, float *w, const float *g, float lr, fx_err *e);

// ---- our SGEMM (sgemm.cu) -------------------------------------------------------------------

// The plan for op(A)·op(B) on this GPU (heuristic of sgemm.cuh; FIFTYX_SGEMM_CFG=large|mid|small —
// or an experiment, large2|large-bk8|large-async — and FIFTYX_SGEMM_SPLITS=S override it, FIFTYX_SGEMM_FAST=0
// keeps the general loader, for experiments),
// with the 16-byte paths and the fast loads set for these pointers.
int fx_sgemm_plan(fx_op op, long m, long n, long k, const void *a, const void *b, const void *c, const void *mask,
                  fx::SgemmPlan *plan, fx_err *e);
// One GEMM as planned; ws (plan.ws_floats) and counters (plan.tiles ints, zeroed) when plan.splits > 1.
int fx_sgemm_launch(const fx::SgemmPlan &plan, const fx_gemm_args &g, float *ws, int *counters, cudaStream_t st,
                    fx_err *e);
// The experiments' kernels (sgemm_exp.cu): launch, and resident blocks per SM of each.
int fx_sgemm_launch_exp(const fx::SgemmParams &p, const fx::SgemmPlan &pl, fx_op op, fx_epilogue epi,
                        cudaStream_t st, fx_err *e);
int fx_sgemm_occupancy_exp(int occupancy[fx::FX_NCFG_ALL], fx_err *e);
// "128x128 split 1" etc.
void fx_sgemm_plan_text(const fx::SgemmPlan &p, char *buf, size_t len);

// A GEMM call site with its plan and split-K workspace, sized once (the pointers must not change
// alignment class between prepare and run: they are device buffers of a backend's state).
struct fx_gemm_site {
    fx::SgemmPlan plan = {};
    fx_dev_buf<float> ws;
    fx_dev_buf<int> counters;
    int prepare(const fx_gemm_args &g, fx_err *e);
    int run(const fx_gemm_args &g, cudaStream_t st, fx_err *e) const
    {
        return fx_sgemm_launch(plan, g, ws.p, counters.p, st, e);
    }
};

// Elapsed seconds between two recorded events (after synchronising on the second).
int fx_event_seconds(cudaEvent_t a, cudaEvent_t b, double *seconds, fx_err *e);

// ---- the training loop as CUDA graphs (common.cu), shared by cuda and cublas ----------------
//
// enqueue() puts one training step on stream s0 (it may fork work onto s1 with the events fork and
// join, and must join s1 back into s0). The stepper captures it twice: a graph of `many` steps and
// a graph of one step. A run of T steps replays the first T / many times and the second T % many
// times; with sync_every_step it replays the one-step graph and reads that step's loss back after
// each (like PyTorch's .item()). The loss kernel writes losses[*step] and advances *step on the
// device, so graphs need no per-step parameters; the losses are copied back once per run() (per
// chunk of FX_LOSS_CHUNK steps for longer runs). Time: CUDA events around the replays.
typedef int (*fx_enqueue_step)(void *ctx, cudaStream_t s0, cudaStream_t s1, cudaEvent_t fork, cudaEvent_t join,
                               fx_err *e);

constexpr int FX_LOSS_CHUNK = 1 << 16; // losses per device buffer (512 KiB); longer runs go in chunks

struct fx_graph_stepper {
    cudaStream_t s0 = nullptr, s1 = nullptr;
    cudaEvent_t fork = nullptr, join = nullptr, t0 = nullptr, t1 = nullptr;
    cudaGraphExec_t g_many = nullptr, g_one = nullptr;
    int many = 0;
    fx_dev_buf<double> losses; // FX_LOSS_CHUNK, allocated by init(): captured graphs hold the pointer
    fx_dev_buf<int> step;      // where the next loss goes
    ~fx_graph_stepper();
    // Streams, events, losses and step; then capture(). Nothing the graphs point to may be
    // reallocated after capture().
    int init(fx_err *e);
    int capture(fx_enqueue_step enqueue, void *ctx, int many_steps, fx_err *e);
    int run(int steps, int sync_every_step, double *host_losses, double *seconds, fx_err *e);
};

// ---- state shared by the backends (common.cu) -------------------------------------------------

// A new S (value-initialised) on which init(S *) returned 0; else -1 with e set (by init, or "out of
// memory") and the S deleted again. The create() hooks of the backends and their GEMM benchmarks.
template <class S, class Init>
int fx_new(void **out, Init &&init, fx_err *e)
{
    S *s = new (std::nothrow) S();
    if (!s)
        return fx_fail(e, "out of memory");
    if (init(s)) {
        delete s;
        return -1;
    }
    *out = s;
    return 0;
}

// read_weights(): w1 [D_in×H] and w2 [H×D_out] from the device copies dw1, dw2 to the host.
int fx_read_weights(fx_size s, const float *dw1, const float *dw2, float *w1, float *w2, fx_err *e);

// NULL when `need` bytes fit in 90% of the GPU's memory, else why not (written to why).
const char *fx_cuda_check_memory(double need, char *why, size_t len);

// The training step of cuda and cublas (cuda.cu has the step): its device tensors, its five GEMMs
// (args[FX_G_...], pointing at those tensors), the loss kernel's scratch and the graph loop.
enum { FX_G_H, FX_G_YPRED, FX_G_GH, FX_G_W2, FX_G_W1, FX_NGEMM };

constexpr int FX_STEPS_PER_GRAPH = 20; // steps in the many-step graph

// Device bytes of fx_step_state's tensors (without a backend's workspaces).
double fx_step_bytes(fx_size s);

struct fx_step_state {
    fx_size s = {};
    int sync_every_step = 0;
    fx_dev_buf<float> x, y, w1, w2, h_relu, y_pred, g, gh;
    fx_dev_buf<uint8_t> mask;
    fx_loss_scratch loss_scratch;
    fx_gemm_args args[FX_NGEMM] = {};
    fx_graph_stepper graphs; // last: its graphs are destroyed before the buffers they point to
    // Uploads x, y, w1, w2, allocates the rest and fills args. Then the backend prepares its GEMMs,
    // graphs.init() and capture(): nothing here is reallocated after that.
    int init(const fx_problem *p, const fx_tensors *t, fx_err *e);
    // The loss kernel of the step on stream st: g, losses[*step] from y_pred and y.
    int enqueue_loss(cudaStream_t st, fx_err *e);
    // graphs.capture() of FX_STEPS_PER_GRAPH steps, then a device synchronisation (the zeroing
    // memsets ran on the legacy stream, which the non-blocking streams do not wait for).
    int capture(fx_enqueue_step enqueue, void *ctx, fx_err *e);
    int run(int steps, double *losses, double *seconds, fx_err *e)
    {
        return graphs.run(steps, sync_every_step, losses, seconds, e);
    }
    int read_weights(float *hw1, float *hw2, fx_err *e) const { return fx_read_weights(s, w1.p, w2.p, hw1, hw2, e); }
};

// The kernels table's gemm on host memory, shared by cuda and cublas: upload() puts A, B, C (the
// caller's C goes in: poisoned, or the weights for SGD) and, for the mask epilogues, the mask on the
// device and fills *d with g's arguments on them; download() copies C (and a RELU_MASK mask) back.
struct fx_dev_gemm_operands {
    fx_dev_buf<float> a, b, c;
    fx_dev_buf<uint8_t> mask;
    int upload(const fx_gemm_args &g, fx_gemm_args *d, fx_err *e);
    int download(const fx_gemm_args &g, fx_err *e) const;
};

// The operand sets of a GEMM benchmark (fx_gemm_bench) of cuda and cublas: nsets of A and B on the
// device, one C per set, and the two events of run(); the backend adds its GEMM. Sets are made by
// upload(), then (after the backend's own preparation) create_events().
struct fx_dev_gemm_sets {
    fx_op op = FX_NN;
    long m = 0, n = 0, k = 0;
    int nsets = 0;
    int next = 0; // the set of the next product: the rotation goes on across run() calls
    fx_dev_buf<float> *a = nullptr, *b = nullptr, *c = nullptr; // nsets each
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    fx_dev_gemm_sets() = default;
    fx_dev_gemm_sets(const fx_dev_gemm_sets &) = delete;
    fx_dev_gemm_sets &operator=(const fx_dev_gemm_sets &) = delete;
    ~fx_dev_gemm_sets();
    int upload(fx_op op_, long m_, long n_, long k_, int nsets_, const float *const *ha, const float *const *hb,
               fx_err *e);
    int create_events(fx_err *e);
    fx_gemm_args args(int set) const
    {
        return {op, FX_EPI_STORE, m, n, k, a[set].p, b[set].p, c[set].p, nullptr, 0};
    }
    // The hook's run(): `iters` calls gemm(args(s)) (each enqueues one product on the legacy stream,
    // 0 or -1) between the events, s rotating over the sets from where the previous call left it
    // (see fx_host_gemm_next_set); *seconds between them.
    template <class Gemm>
    int run(long iters, Gemm &&gemm, double *seconds, fx_err *e)
    {
        FX_CU(cudaEventRecord(t0, 0));
        for (long i = 0; i < iters; i++) {
            int s = next;
            next = (s + 1) % nsets;
            FX_TRY(gemm(args(s)));
        }
        FX_CU(cudaEventRecord(t1, 0));
        return fx_event_seconds(t0, t1, seconds, e);
    }
    int result(int set, float *hc, fx_err *e) const;
};

// A kernel benchmark call (fx_kernel_bench) of cuda and cublas: the call's inputs on the device, the
// loss kernel's scratch and the events; the backend supplies its GEMM (a callable taking the device
// fx_gemm_args and enqueueing one product on the legacy stream, 0 or -1). loss_grad and sgd are the
// shared kernels of common.cu, the ones both steps run.
struct fx_dev_kernel_call {
    fx_kernel_call host = {}; // the caller's arrays
    fx_kernel_call dev = {};  // the same call on device buffers
    fx_dev_buf<float> a, b, c; // GEMM: A, B, C; LOSS_GRAD: yp, y, g; SGD: -, g, w
    fx_dev_buf<uint8_t> mask;
    fx_dev_buf<double> loss;
    fx_loss_scratch scratch;
    cudaEvent_t t0 = nullptr, t1 = nullptr;
    fx_dev_kernel_call() = default;
    fx_dev_kernel_call(const fx_dev_kernel_call &) = delete;
    fx_dev_kernel_call &operator=(const fx_dev_kernel_call &) = delete;
    ~fx_dev_kernel_call();
    int init(const fx_kernel_call *call, fx_err *e); // buffers, the inputs uploaded, events
    int restore(fx_err *e);                          // the inputs that change (C or w; poisoned outputs)
    int download(fx_err *e) const;                   // the outputs into the caller's arrays
    template <class Gemm>
    int once(Gemm &&gemm, fx_err *e)
    {
        switch (dev.kind) {
        case FX_KERNEL_GEMM:
            return gemm(dev.gemm);
        case FX_KERNEL_LOSS_GRAD:
            return fx_launch_loss_grad(dev.loss_grad.n, dev.loss_grad.yp, dev.loss_grad.y, dev.loss_grad.g,
                                       dev.loss_grad.loss, nullptr, scratch, 0, e);
        case FX_KERNEL_SGD:
            return fx_launch_sgd(dev.sgd.n, dev.sgd.w, dev.sgd.g, dev.sgd.lr, 0, e);
        }
        return fx_fail(e, "unknown kernel kind %d", (int)dev.kind);
    }
    // The hook's run(): `iters` calls launched back to back on the legacy stream between the events.
    template <class Gemm>
    int run(long iters, Gemm &&gemm, double *seconds, fx_err *e)
    {
        FX_CU(cudaEventRecord(t0, 0));
        for (long i = 0; i < iters; i++)
            FX_TRY(once(gemm, e));
        FX_CU(cudaEventRecord(t1, 0));
        return fx_event_seconds(t0, t1, seconds, e);
    }
    // The hook's result(): inputs restored, the kernel once, the outputs to the host.
    template <class Gemm>
    int result(Gemm &&gemm, fx_err *e)
    {
        FX_TRY(restore(e));
        FX_TRY(once(gemm, e));
        return download(e); // cudaMemcpy waits for the kernel
    }
};
