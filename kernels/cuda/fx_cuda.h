// fx_cuda.h — host-side pieces shared by the CUDA backends (cuda, cuda-persistent, cublas):
// error reporting, availability, device buffers, and launchers of the shared kernels.
//
// Errors: every CUDA call goes through FX_CU, every launch is followed by FX_LAUNCHED; both turn a
// failure into "file:line: what: cudaErrorX: text" in the caller's fx_err *e and return -1.
// Nothing here exits or aborts.
#pragma once
#include <cuda_runtime.h>
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

// The plan for op(A)·op(B) on this GPU (heuristic of sgemm.cuh; FIFTYX_SGEMM_CFG=large|mid|small and
// FIFTYX_SGEMM_SPLITS=S override it, for experiments), with the 16-byte paths set for these pointers.
int fx_sgemm_plan(fx_op op, long m, long n, long k, const void *a, const void *b, const void *c, const void *mask,
                  fx::SgemmPlan *plan, fx_err *e);
// One GEMM as planned; ws (plan.ws_floats) and counters (plan.tiles ints, zeroed) when plan.splits > 1.
int fx_sgemm_launch(const fx::SgemmPlan &plan, const fx_gemm_args &g, float *ws, int *counters, cudaStream_t st,
                    fx_err *e);
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
