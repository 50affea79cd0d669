// common.cu — availability, error text and the shared small kernels of the CUDA backends.
#include <cstdio>
#include <cstring>
#include "elementwise.cuh"
#include "fx_cuda.h"

int fx_cuda_fail(fx_err *e, const char *file, int line, const char *what, cudaError_t err)
{
    const char *base = strrchr(file, '/');
    return fx_fail(e, "%s:%d: %s: %s: %s", base ? base + 1 : file, line, what, cudaGetErrorName(err),
                   cudaGetErrorString(err));
}

static fx_cuda_device g_dev;

extern "C" const char *fx_cuda_unavailable(void)
{
    static int done;
    static char why[400];
    if (done)
        return why[0] ? why : NULL;
    done = 1;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, sizeof why, "no CUDA device: %s", cudaGetErrorString(err));
        return why;
    }
    if (count == 0) {
        snprintf(why, sizeof why, "no CUDA device: none present");
        return why;
    }
    cudaDeviceProp p;
    if ((err = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, sizeof why, "no usable CUDA device: cudaGetDeviceProperties: %s", cudaGetErrorString(err));
        return why;
    }
    if (p.major < 9) { // the build carries sm_90 code (and compute_90 PTX for later GPUs) only
        snprintf(why, sizeof why, "GPU %s has compute capability %d.%d; this build targets sm_90 (Hopper) and later",
                 p.name, p.major, p.minor);
        return why;
    }
    snprintf(g_dev.name, sizeof g_dev.name, "%s", p.name);
    g_dev.sms = p.multiProcessorCount;
    g_dev.cc_major = p.major;
    g_dev.cc_minor = p.minor;
    g_dev.smem_optin = p.sharedMemPerBlockOptin;
    g_dev.coop_launch = p.cooperativeLaunch;
    g_dev.global_mem = p.totalGlobalMem;
    return NULL;
}

const fx_cuda_device *fx_cuda_dev(void) { return fx_cuda_unavailable() ? NULL : &g_dev; }

int fx_event_seconds(cudaEvent_t a, cudaEvent_t b, double *seconds, fx_err *e)
{
    float ms = 0;
    FX_CU(cudaEventSynchronize(b));
    FX_CU(cudaEventElapsedTime(&ms, a, b));
    *seconds = 1e-3 * ms;
    return 0;
}

// ---- launchers -------------------------------------------------------------------------------

int fx_loss_scratch::alloc(long n, fx_err *e)
{
    FX_TRY(partials.alloc(fx::FX_LOSS_MAX_BLOCKS, e));
    FX_TRY(ticket.alloc(1, e));
    FX_TRY(ticket.zero(e));
    (void)n;
    return 0;
}

int fx_launch_loss_grad(long n, const float *yp, const float *y, float *g, double *loss, int *step,
                        fx_loss_scratch &s, cudaStream_t st, fx_err *e)
{
    fx::LossGradParams p = {n, yp, y, g, s.partials.p, s.ticket.p, loss, step};
    fx_cuda_clear_stale_error();
    fx::loss_grad_kernel<<<fx::loss_grad_blocks(n), fx::FX_EW_THREADS, 0, st>>>(p);
    FX_LAUNCHED("loss_grad_kernel");
    return 0;
}

int fx_launch_sgd(long n, float *w, const float *g, float lr, cudaStream_t st, fx_err *e)
{
    fx_cuda_clear_stale_error();
    fx::sgd_kernel<<<fx::ew_blocks(n), fx::FX_EW_THREADS, 0, st>>>(n, w, g, lr);
    FX_LAUNCHED("sgd_kernel");
    return 0;
}

int fx_launch_relu_mask(long n, const float *h, float *h_relu, uint8_t *mask, cudaStream_t st, fx_err *e)
{
    fx_cuda_clear_stale_error();
    fx::relu_mask_kernel<<<fx::ew_blocks(n), fx::FX_EW_THREADS, 0, st>>>(n, h, h_relu, mask);
    FX_LAUNCHED("relu_mask_kernel");
    return 0;
}

int fx_launch_apply_mask(long n, float *c, const uint8_t *mask, cudaStream_t st, fx_err *e)
{
    fx_cuda_clear_stale_error();
    fx::apply_mask_kernel<<<fx::ew_blocks(n), fx::FX_EW_THREADS, 0, st>>>(n, c, mask);
    FX_LAUNCHED("apply_mask_kernel");
    return 0;
}

// ---- the kernels table's loss_grad and sgd, on host memory ------------------------------------

extern "C" int fx_cuda_host_loss_grad(long n, const float *yp, const float *y, float *g, double *loss, fx_err *e)
{
    fx_dev_buf<float> dyp, dy, dg;
    fx_dev_buf<double> dloss;
    fx_loss_scratch s;
    FX_TRY(dyp.upload(yp, (size_t)n, e));
    FX_TRY(dy.upload(y, (size_t)n, e));
    FX_TRY(dg.alloc((size_t)n, e));
    FX_TRY(dloss.alloc(1, e));
    FX_TRY(s.alloc(n, e));
    FX_TRY(fx_launch_loss_grad(n, dyp.p, dy.p, dg.p, dloss.p, NULL, s, 0, e));
    FX_CU(cudaMemcpy(g, dg.p, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    FX_CU(cudaMemcpy(loss, dloss.p, sizeof(double), cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int fx_cuda_host_sgd(long n, float *w, const float *g, float lr, fx_err *e)
{
    fx_dev_buf<float> dw, dg;
    FX_TRY(dw.upload(w, (size_t)n, e));
    FX_TRY(dg.upload(g, (size_t)n, e));
    FX_TRY(fx_launch_sgd(n, dw.p, dg.p, lr, 0, e));
    FX_CU(cudaMemcpy(w, dw.p, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

// ---- fx_graph_stepper ---------------------------------------------------------------------------

fx_graph_stepper::~fx_graph_stepper()
{
    if (g_many)
        cudaGraphExecDestroy(g_many);
    if (g_one)
        cudaGraphExecDestroy(g_one);
    cudaEvent_t ev[] = {fork, join, t0, t1};
    for (cudaEvent_t x : ev)
        if (x)
            cudaEventDestroy(x);
    if (s0)
        cudaStreamDestroy(s0);
    if (s1)
        cudaStreamDestroy(s1);
}

int fx_graph_stepper::init(fx_err *e)
{
    FX_CU(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
    FX_CU(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    FX_CU(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    FX_CU(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    FX_CU(cudaEventCreate(&t0));
    FX_CU(cudaEventCreate(&t1));
    FX_TRY(step.alloc(1, e));
    FX_TRY(step.zero(e));
    // Allocated once, before capture: the graphs hold this pointer.
    FX_TRY(losses.alloc(FX_LOSS_CHUNK, e));
    return 0;
}

static int capture_graph(fx_graph_stepper *g, fx_enqueue_step enqueue, void *ctx, int steps, cudaGraphExec_t *out,
                         fx_err *e)
{
    cudaGraph_t graph = nullptr;
    FX_CU(cudaStreamBeginCapture(g->s0, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < steps; i++)
        if (enqueue(ctx, g->s0, g->s1, g->fork, g->join, e)) {
            cudaStreamEndCapture(g->s0, &graph); // leave the stream usable; the error is e's
            if (graph)
                cudaGraphDestroy(graph);
            cudaGetLastError();
            return -1;
        }
    FX_CU(cudaStreamEndCapture(g->s0, &graph));
    cudaError_t err = cudaGraphInstantiate(out, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess)
        return fx_cuda_fail(e, __FILE__, __LINE__, "cudaGraphInstantiate", err);
    FX_CU(cudaGraphUpload(*out, g->s0));
    return 0;
}

int fx_graph_stepper::capture(fx_enqueue_step enqueue, void *ctx, int many_steps, fx_err *e)
{
    many = many_steps;
    FX_TRY(capture_graph(this, enqueue, ctx, many, &g_many, e));
    FX_TRY(capture_graph(this, enqueue, ctx, 1, &g_one, e));
    return 0;
}

int fx_graph_stepper::run(int steps, int sync_every_step, double *host_losses, double *seconds, fx_err *e)
{
    if (steps <= 0) {
        if (seconds)
            *seconds = 0;
        return 0;
    }
    const size_t cap = (size_t)(steps < FX_LOSS_CHUNK ? steps : FX_LOSS_CHUNK); // losses holds FX_LOSS_CHUNK
    for (int done = 0; done < steps;) {
        const int chunk = steps - done < (int)cap ? steps - done : (int)cap;
        FX_CU(cudaMemsetAsync(step.p, 0, sizeof(int), s0));
        if (done == 0)
            FX_CU(cudaEventRecord(t0, s0));
        if (sync_every_step) {
            for (int i = 0; i < chunk; i++) {
                FX_CU(cudaGraphLaunch(g_one, s0));
                FX_CU(cudaMemcpyAsync(host_losses + done + i, losses.p + i, sizeof(double), cudaMemcpyDeviceToHost, s0));
                FX_CU(cudaStreamSynchronize(s0));
            }
        } else {
            for (int r = 0; r < chunk / many; r++)
                FX_CU(cudaGraphLaunch(g_many, s0));
            for (int r = 0; r < chunk % many; r++)
                FX_CU(cudaGraphLaunch(g_one, s0));
        }
        if (done + chunk == steps)
            FX_CU(cudaEventRecord(t1, s0));
        if (!sync_every_step)
            FX_CU(cudaMemcpyAsync(host_losses + done, losses.p, (size_t)chunk * sizeof(double), cudaMemcpyDeviceToHost, s0));
        FX_CU(cudaStreamSynchronize(s0));
        done += chunk;
    }
    if (seconds)
        FX_TRY(fx_event_seconds(t0, t1, seconds, e));
    return 0;
}

// ---- state shared by the backends -----------------------------------------------------------------

int fx_read_weights(fx_size s, const float *dw1, const float *dw2, float *w1, float *w2, fx_err *e)
{
    FX_CU(cudaMemcpy(w1, dw1, (size_t)(s.d_in * s.h) * sizeof(float), cudaMemcpyDeviceToHost));
    FX_CU(cudaMemcpy(w2, dw2, (size_t)(s.h * s.d_out) * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

const char *fx_cuda_check_memory(double need, char *why, size_t len)
{
    double have = (double)fx_cuda_dev()->global_mem;
    if (need > 0.9 * have) {
        snprintf(why, len, "needs %.1f GiB of device memory; the GPU has %.1f GiB", need / (1 << 30),
                 have / (1 << 30));
        return why;
    }
    return NULL;
}

double fx_step_bytes(fx_size s)
{
    double n = s.n, din = s.d_in, h = s.h, dout = s.d_out;
    return 4.0 * (n * din + n * dout + din * h + h * dout + 2 * n * h + 2 * n * dout) + n * h;
}

// ---- fx_step_state ------------------------------------------------------------------------------

int fx_step_state::init(const fx_problem *p, const fx_tensors *t, fx_err *e)
{
    s = p->size;
    const size_t N = (size_t)s.n, Din = (size_t)s.d_in, H = (size_t)s.h, Dout = (size_t)s.d_out;
    sync_every_step = p->sync_every_step;
    FX_TRY(x.upload(t->x, N * Din, e));
    FX_TRY(y.upload(t->y, N * Dout, e));
    FX_TRY(w1.upload(t->w1, Din * H, e));
    FX_TRY(w2.upload(t->w2, H * Dout, e));
    FX_TRY(h_relu.alloc(N * H, e));
    FX_TRY(gh.alloc(N * H, e));
    FX_TRY(y_pred.alloc(N * Dout, e));
    FX_TRY(g.alloc(N * Dout, e));
    FX_TRY(mask.alloc(N * H, e));
    FX_TRY(loss_scratch.alloc(s.n * s.d_out, e));
    const float lr = p->lr;
    args[FX_G_H] = {FX_NN, FX_EPI_RELU_MASK, s.n, s.h, s.d_in, x.p, w1.p, h_relu.p, mask.p, 0};
    args[FX_G_YPRED] = {FX_NN, FX_EPI_STORE, s.n, s.d_out, s.h, h_relu.p, w2.p, y_pred.p, nullptr, 0};
    args[FX_G_GH] = {FX_NT, FX_EPI_MASK, s.n, s.h, s.d_out, g.p, w2.p, gh.p, mask.p, 0};
    args[FX_G_W2] = {FX_TN, FX_EPI_SGD, s.h, s.d_out, s.n, h_relu.p, g.p, w2.p, nullptr, lr};
    args[FX_G_W1] = {FX_TN, FX_EPI_SGD, s.d_in, s.h, s.n, x.p, gh.p, w1.p, nullptr, lr};
    return 0;
}

int fx_step_state::enqueue_loss(cudaStream_t st, fx_err *e)
{
    const long ne = s.n * s.d_out;
    return fx_launch_loss_grad(ne, y_pred.p, y.p, g.p, graphs.losses.p, graphs.step.p, loss_scratch, st, e);
}

int fx_step_state::capture(fx_enqueue_step enqueue, void *ctx, fx_err *e)
{
    FX_TRY(graphs.capture(enqueue, ctx, FX_STEPS_PER_GRAPH, e));
    // The zeroing memsets ran on the legacy stream, which the non-blocking streams do not wait for.
    FX_CU(cudaDeviceSynchronize());
    return 0;
}

// ---- fx_dev_gemm_operands ---------------------------------------------------------------------------

int fx_dev_gemm_operands::upload(const fx_gemm_args &g, fx_gemm_args *d, fx_err *e)
{
    const size_t na = (size_t)(g.m * g.k), nb = (size_t)(g.k * g.n), nc = (size_t)(g.m * g.n);
    const bool has_mask = g.epi == FX_EPI_RELU_MASK || g.epi == FX_EPI_MASK;
    FX_TRY(a.upload(g.a, na, e));
    FX_TRY(b.upload(g.b, nb, e));
    FX_TRY(c.upload(g.c, nc, e)); // the caller's C (poisoned, or the weights for SGD) goes in
    if (has_mask)
        FX_TRY(mask.upload(g.mask, nc, e));
    *d = g;
    d->a = a.p, d->b = b.p, d->c = c.p, d->mask = has_mask ? mask.p : nullptr;
    return 0;
}

int fx_dev_gemm_operands::download(const fx_gemm_args &g, fx_err *e) const
{
    const size_t nc = (size_t)(g.m * g.n);
    FX_CU(cudaMemcpy(g.c, c.p, nc * sizeof(float), cudaMemcpyDeviceToHost));
    if (g.epi == FX_EPI_RELU_MASK)
        FX_CU(cudaMemcpy(g.mask, mask.p, nc, cudaMemcpyDeviceToHost));
    return 0;
}

// ---- fx_dev_gemm_sets -------------------------------------------------------------------------------

fx_dev_gemm_sets::~fx_dev_gemm_sets()
{
    delete[] a;
    delete[] b;
    delete[] c;
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
}

int fx_dev_gemm_sets::upload(fx_op op_, long m_, long n_, long k_, int nsets_, const float *const *ha,
                             const float *const *hb, fx_err *e)
{
    op = op_, m = m_, n = n_, k = k_, nsets = nsets_;
    a = new (std::nothrow) fx_dev_buf<float>[nsets];
    b = new (std::nothrow) fx_dev_buf<float>[nsets];
    c = new (std::nothrow) fx_dev_buf<float>[nsets];
    if (!a || !b || !c)
        return fx_fail(e, "out of memory");
    for (int s = 0; s < nsets; s++) {
        FX_TRY(a[s].upload(ha[s], (size_t)(m * k), e));
        FX_TRY(b[s].upload(hb[s], (size_t)(k * n), e));
        FX_TRY(c[s].alloc((size_t)(m * n), e));
        FX_CU(cudaMemset(c[s].p, 0xFF, (size_t)(m * n) * sizeof(float))); // NaN: a set no product wrote fails
    }
    return 0;
}

int fx_dev_gemm_sets::create_events(fx_err *e)
{
    FX_CU(cudaEventCreate(&t0));
    FX_CU(cudaEventCreate(&t1));
    return 0;
}

int fx_dev_gemm_sets::result(int set, float *hc, fx_err *e) const
{
    FX_CU(cudaMemcpy(hc, c[set].p, (size_t)(m * n) * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

// ---- fx_dev_kernel_call -------------------------------------------------------------------------------

fx_dev_kernel_call::~fx_dev_kernel_call()
{
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
}

int fx_dev_kernel_call::init(const fx_kernel_call *call, fx_err *e)
{
    host = dev = *call;
    switch (call->kind) {
    case FX_KERNEL_GEMM: {
        const fx_gemm_args &g = call->gemm;
        FX_TRY(a.upload(g.a, (size_t)(g.m * g.k), e));
        FX_TRY(b.upload(g.b, (size_t)(g.k * g.n), e));
        FX_TRY(c.alloc((size_t)(g.m * g.n), e));
        if (g.mask)
            FX_TRY(mask.alloc((size_t)(g.m * g.n), e));
        dev.gemm.a = a.p, dev.gemm.b = b.p, dev.gemm.c = c.p, dev.gemm.mask = g.mask ? mask.p : nullptr;
        break;
    }
    case FX_KERNEL_LOSS_GRAD: {
        const size_t n = (size_t)call->loss_grad.n;
        FX_TRY(a.upload(call->loss_grad.yp, n, e));
        FX_TRY(b.upload(call->loss_grad.y, n, e));
        FX_TRY(c.alloc(n, e));
        FX_TRY(loss.alloc(1, e));
        FX_TRY(scratch.alloc(call->loss_grad.n, e));
        dev.loss_grad.yp = a.p, dev.loss_grad.y = b.p, dev.loss_grad.g = c.p, dev.loss_grad.loss = loss.p;
        break;
    }
    case FX_KERNEL_SGD: {
        const size_t n = (size_t)call->sgd.n;
        FX_TRY(b.upload(call->sgd.g, n, e));
        FX_TRY(c.alloc(n, e));
        dev.sgd.g = b.p, dev.sgd.w = c.p;
        break;
    }
    default:
        return fx_fail(e, "unknown kernel kind %d", (int)call->kind);
    }
    FX_TRY(restore(e));
    FX_CU(cudaEventCreate(&t0));
    FX_CU(cudaEventCreate(&t1));
    return 0;
}

int fx_dev_kernel_call::restore(fx_err *e)
{
    switch (host.kind) {
    case FX_KERNEL_GEMM: {
        const size_t mn = (size_t)(host.gemm.m * host.gemm.n);
        FX_CU(cudaMemcpy(c.p, host.gemm.c, mn * sizeof(float), cudaMemcpyHostToDevice));
        if (host.gemm.mask)
            FX_CU(cudaMemcpy(mask.p, host.gemm.mask, mn, cudaMemcpyHostToDevice));
        break;
    }
    case FX_KERNEL_LOSS_GRAD: // g and the loss as given (poisoned): a launch that writes neither fails
        FX_CU(cudaMemcpy(c.p, host.loss_grad.g, (size_t)host.loss_grad.n * sizeof(float), cudaMemcpyHostToDevice));
        FX_CU(cudaMemcpy(loss.p, host.loss_grad.loss, sizeof(double), cudaMemcpyHostToDevice));
        break;
    case FX_KERNEL_SGD:
        FX_CU(cudaMemcpy(c.p, host.sgd.w, (size_t)host.sgd.n * sizeof(float), cudaMemcpyHostToDevice));
        break;
    }
    return 0;
}

int fx_dev_kernel_call::download(fx_err *e) const
{
    switch (host.kind) {
    case FX_KERNEL_GEMM: {
        const size_t mn = (size_t)(host.gemm.m * host.gemm.n);
        FX_CU(cudaMemcpy(host.gemm.c, c.p, mn * sizeof(float), cudaMemcpyDeviceToHost));
        if (host.gemm.epi == FX_EPI_RELU_MASK)
            FX_CU(cudaMemcpy(host.gemm.mask, mask.p, mn, cudaMemcpyDeviceToHost));
        break;
    }
    case FX_KERNEL_LOSS_GRAD:
        FX_CU(cudaMemcpy(host.loss_grad.g, c.p, (size_t)host.loss_grad.n * sizeof(float), cudaMemcpyDeviceToHost));
        FX_CU(cudaMemcpy(host.loss_grad.loss, loss.p, sizeof(double), cudaMemcpyDeviceToHost));
        break;
    case FX_KERNEL_SGD:
        FX_CU(cudaMemcpy(host.sgd.w, c.p, (size_t)host.sgd.n * sizeof(float), cudaMemcpyDeviceToHost));
        break;
    }
    return 0;
}
