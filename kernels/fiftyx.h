/* fiftyx.h — the one interface every backend implements (BabelStream's shape).
 *
 * The training loop, the checks and the benchmarks reach a backend only through
 * fx_backend. Kernels know nothing of the CLI, of JSON or of timing policy.
 *
 * Conventions: row-major float32, compact (no leading dimensions). The problem is
 * the PyTorch tensor tutorial's two-layer ReLU net:
 *   h = x·w1, h_relu = max(h,0), y_pred = h_relu·w2, loss = Σ(y_pred−y)²,
 *   g = 2(y_pred−y), gw2 = h_reluᵀ·g, gh = (g·w2ᵀ)⊙[h≥0], gw1 = xᵀ·gh,
 *   w1 −= lr·gw1, w2 −= lr·gw2   (loss is the one computed before the update).
 */
#ifndef FIFTYX_H
#define FIFTYX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes of the problem: batch N, input D_in, hidden H, output D_out. */
typedef struct {
    long n, d_in, h, d_out;
} fx_size;

/* FLOPs of one training step (two GEMMs forward, three backward, elementwise ignored). */
double fx_step_flops(fx_size s);

/* An error message filled in by whatever failed; functions return 0 or -1. */
typedef struct {
    char msg[256];
} fx_err;

/* Formats into e (if non-NULL) and returns -1, so that `return fx_fail(e, ...)` reads well. */
int fx_fail(fx_err *e, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* n floats from src in a new malloc'd array (uninitialised when src is NULL); NULL if out of memory. */
float *fx_floats_dup(const float *src, size_t n);

typedef struct {
    fx_size size;
    float lr;
    int sync_every_step; /* GPU backends: read the loss back after every step, like .item() */
} fx_problem;

/* Initial tensors on the host: x [N×D_in], y [N×D_out], w1 [D_in×H], w2 [H×D_out]. */
typedef struct {
    const float *x, *y, *w1, *w2;
} fx_tensors;

typedef enum { FX_CPU = 0, FX_GPU = 1 } fx_device;

/* C[M×N] = op(A)·op(B) with K the inner dimension.
 * FX_NN: A is M×K, B is K×N.  FX_NT: A is M×K, B is N×K.  FX_TN: A is K×M, B is K×N. */
typedef enum { FX_NN = 0, FX_NT = 1, FX_TN = 2 } fx_op;

/* What happens to the accumulator acc = op(A)·op(B) on its way to C.
 *   STORE:      C = acc
 *   RELU_MASK:  C = max(acc, 0); mask = (acc >= 0)   (layer-1 forward; mask for backward)
 *   MASK:       C = mask ? acc : 0                    (masked backward; h == 0 passes)
 *   SGD:        C = C − lr·acc                        (C holds the weights) */
typedef enum { FX_EPI_STORE = 0, FX_EPI_RELU_MASK = 1, FX_EPI_MASK = 2, FX_EPI_SGD = 3 } fx_epilogue;

typedef struct {
    fx_op op;
    fx_epilogue epi;
    long m, n, k;
    const float *a, *b;
    float *c;
    uint8_t *mask; /* M×N; written by RELU_MASK, read by MASK, unused otherwise */
    float lr;      /* SGD only */
} fx_gemm_args;

/* The kernels of a backend, on host memory (a GPU backend copies in and out).
 * These exist so that `fiftyx check` can test every kernel of every backend alike. */
typedef struct {
    int (*gemm)(const fx_gemm_args *args, fx_err *e);
    /* g = 2(yp − y) and *loss = Σ(yp − y)² over n elements. */
    int (*loss_grad)(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e);
    /* w −= lr·g over n elements. */
    int (*sgd)(long n, float *w, const float *g, float lr, fx_err *e);
} fx_kernels;

/* GEMM benchmark hooks: operands resident where the backend computes.
 * nsets input sets are uploaded and each set's C is NaN until a product writes it; run() performs
 * `iters` products back to back, rotating over the sets from where the previous run() call
 * stopped (so that operands which fit in a cache are not re-used hot, even when every call
 * makes one product), and returns the elapsed seconds measured with the backend's own clock
 * (CUDA events on a GPU). One caller per handle at a time (run() is not reentrant). */
typedef struct {
    int (*create)(fx_op op, long m, long n, long k, int nsets, const float *const *a,
                  const float *const *b, void **handle, fx_err *e);
    int (*run)(void *handle, long iters, double *seconds, fx_err *e);
    int (*result)(void *handle, int set, float *c, fx_err *e); /* C of the last product on set */
    void (*destroy)(void *handle);
} fx_gemm_bench;

/* The state a CPU backend's GEMM benchmark needs (kernels/common.c): the operand sets and one
 * 64-byte-aligned output per set; each backend supplies only run(), its own product loop. */
typedef struct {
    fx_op op;
    long m, n, k;
    int nsets;
    const float *const *a, *const *b;
    float **c;
    const void *ctx; /* the backend's own (e.g. its ISA table) */
    int next;        /* the set the next product uses: the rotation goes on across run() calls */
} fx_host_gemm;

/* The operand set for the next product of a GEMM benchmark, advancing the rotation. run() is
 * called once per timed repetition, often with a single iteration at large sizes: a count that
 * started again at 0 in every call would time set 0, hot in cache, again and again. */
int fx_host_gemm_next_set(fx_host_gemm *g);

int fx_host_gemm_create(const void *ctx, fx_op op, long m, long n, long k, int nsets, const float *const *a,
                        const float *const *b, void **handle, fx_err *e);
int fx_host_gemm_result(void *handle, int set, float *c, fx_err *e);
void fx_host_gemm_destroy(void *handle);

/* One kernel call of the step, for `bench --suite kernels`: the arguments of an fx_kernels call
 * on host arrays. The arrays hold the call's inputs (GEMM: a, b, the initial C — the weights for
 * SGD, NaN elsewhere — and the mask, MASK's input or RELU_MASK's 0xAA poison; LOSS_GRAD: yp, y
 * and a poisoned g and loss; SGD: the initial w and g); result() writes the outputs over them. */
typedef enum { FX_KERNEL_GEMM = 0, FX_KERNEL_LOSS_GRAD = 1, FX_KERNEL_SGD = 2 } fx_kernel_kind;

typedef struct {
    fx_kernel_kind kind;
    fx_gemm_args gemm;
    struct {
        long n;
        const float *yp, *y;
        float *g;
        double *loss;
    } loss_grad;
    struct {
        long n;
        float *w;
        const float *g;
        float lr;
    } sgd;
} fx_kernel_call;

struct fx_backend;

/* Kernel benchmark hooks: one kernel call timed on operands resident where the backend computes,
 * as the step leaves them (in the step every operand was just written or read, so nothing is
 * rotated: the operands are as hot as the caches allow).
 *   create: the call's inputs copied in (the call's arrays stay valid until destroy);
 *   run:    `iters` calls back to back, *seconds by the backend's own clock (CUDA events on a GPU:
 *           calls launched one after another on a stream); an SGD call keeps updating the same
 *           weights (by the same amount each time: they grow linearly, never overflow in practice);
 *   result: the call's inputs put back, the kernel once more, its outputs over the call's arrays.
 * A CPU backend with kernels and no hooks of its own is timed by fx_host_kernel_bench (common.c),
 * which calls its kernels table directly. */
typedef struct {
    int (*create)(const struct fx_backend *b, const fx_kernel_call *call, void **handle, fx_err *e);
    int (*run)(void *handle, long iters, double *seconds, fx_err *e);
    int (*result)(void *handle, fx_err *e);
    void (*destroy)(void *handle);
} fx_kernel_bench;

extern const fx_kernel_bench fx_host_kernel_bench;

typedef struct fx_backend {
    const char *name;
    fx_device device;
    const char *summary;
    /* NULL when the backend can run here, else a one-line reason why not. */
    const char *(*unavailable)(void);
    /* For sizes a backend cannot hold: NULL if fine, else why not (may be NULL itself). */
    const char *(*unsupported)(const fx_problem *p);
    int (*create)(const fx_problem *p, const fx_tensors *init, void **state, fx_err *e);
    /* Runs `steps` training steps; losses[t] receives the loss of step t (before its update).
     * *seconds (if non-NULL) receives the time of the steps by the backend's own clock. */
    int (*run)(void *state, int steps, double *losses, double *seconds, fx_err *e);
    int (*read_weights)(void *state, float *w1, float *w2, fx_err *e);
    void (*destroy)(void *state);
    const fx_kernels *kernels;       /* NULL when the backend has no separate kernels */
    const fx_gemm_bench *gemm_bench; /* NULL when it has no GEMM of its own to time */
    /* Optional: one line on how it is configured here (ISA and micro-kernel, library and the
     * kernel it chose, GPU variant...), recorded in results files. */
    const char *(*describe)(void);
    /* A variant (e.g. one ISA path forced) that `check` covers but `bench` runs only when named. */
    int hidden;
    /* NULL: a CPU backend's kernels table is timed directly (fx_host_kernel_bench); a GPU backend
     * without hooks has no kernels suite. */
    const fx_kernel_bench *kernel_bench;
    /* Optional, CPU backends: the instruction set whose FMA rate bounds its GEMMs here ("avx512",
     * "avx2", "generic"), so that its rows are rated against that peak; NULL (or a NULL answer):
     * the best this CPU has. */
    const char *(*isa)(void);
    /* Optional: backends that share the code their losses come from carry one family name
     * (validation by agreement takes one vote per family); NULL: the backend's own name. */
    const char *family;
    /* Optional, CPU backends: how many of its threads its loss_grad and sgd kernels use on n
     * elements (a small call stays on one), so that their rows are rated against a bound measured
     * on as many; NULL: all of them. */
    int (*elementwise_threads)(long n);
} fx_backend;

/* The GPU, when the build has CUDA and the machine has a device (device 0). */
typedef struct {
    char name[256];
    int sms, cc_major, cc_minor;
    double memory_gib;
    int sm_clock_mhz, mem_clock_mhz, mem_bus_bits, l2_kib;
    int runtime_version, driver_version;
} fx_gpu_info;

/* 0 with *g filled, or -1 with the reason (no CUDA in this build, no device, driver error). */
int fx_gpu_query(fx_gpu_info *g, fx_err *e);

/* CLOCK_MONOTONIC in seconds: the clock of the CPU backends' run(). */
double fx_wall_seconds(void);

/* The registry (kernels/registry.c). A backend is registered by defining one of the names it
 * lists (fx_backend_cpu, fx_backend_cuda, ...); a name no file defines is simply absent. */
const fx_backend *const *fx_backends(size_t *count);
const fx_backend *fx_backend_find(const char *name);
/* Whether name is a backend of fiftyx that this build does not have (no nvcc: the GPU ones; no
 * OpenBLAS: openblas). */
int fx_backend_not_built(const char *name);
/* The names of all such backends (at most max of them), in the registry's order; their count. */
size_t fx_backends_not_built(const char **names, size_t max);
/* Why such a backend is not in this build, in a line ("not in this build (...)"); NULL when it is
 * built or not a backend of fiftyx. */
const char *fx_backend_not_built_why(const char *name);
/* The device of a backend of fiftyx, built or not (FX_CPU for unknown names). */
fx_device fx_backend_device(const char *name);

/* Thread count the CPU backends use (set by the harness; 0 = OpenMP's default). */
void fx_set_threads(int threads);
int fx_threads(void);

#ifdef __cplusplus
}
#endif
#endif
