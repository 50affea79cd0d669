/* bench.h — what a benchmark run produces: rows (one per suite, backend, size, threads),
 * the peaks that bound them, and the verdict. Shared by bench.c and results.c. */
#ifndef FIFTYX_BENCH_H
#define FIFTYX_BENCH_H
#include "../kernels/fiftyx.h"
#include "peaks.h"
#include "timing.h"
#include "topo.h"

typedef enum { FX_SUITE_STEP, FX_SUITE_GEMM, FX_SUITE_KERNELS } fx_suite;
#define FX_MAX_ROUNDS 20 /* bench --rounds */
/* a step row's validation while its reference is over budget: fx_bench_validate_by_agreement decides */
#define FX_PENDING_AGREEMENT "pending agreement"
typedef enum { FX_ROW_PENDING, FX_ROW_RAN, FX_ROW_SKIPPED, FX_ROW_FAILED } fx_row_status;

typedef struct {
    fx_suite suite;
    const fx_backend *b;
    int threads;         /* CPU backends: threads; GPU backends: 0 */
    int sync_every_step; /* GPU step rows: loss read back every step */
    char size[64];       /* NxD_INxHxD_OUT (step, kernels) or MxNxK[:op] (gemm) */
    fx_size ss;
    fx_op op;
    long m, n, k;
    double flops, lr;
    /* kernels suite: which kernel of the step (its name, and what it computes), its epilogue, its
     * element count (loss_grad, sgd), its shape as text, and the minimum bytes it moves */
    int kernel_index;
    const char *kernel, *kernel_what;
    fx_kernel_kind kind;
    fx_epilogue epi;
    long elems;
    char shape[64];
    double bytes, gbs, peak_gbs; /* peak_gbs > 0: the bound is bandwidth, not FMA throughput */

    fx_row_status status;
    char note[256];
    fx_timing t;
    double gflops, peak_gflops;
    const char *peak_name;
    int validated;
    char validation[256];
    char config[512]; /* the backend's describe() as this row ran (threads, ISA, ...) */
    double max_rel_err; /* kernels suite: the largest |error| / tolerance instead */
    int have_loss;
    double loss[2];
    double after_timing; /* step rows: fx_bench_check_next_step's error over tolerance; NaN: not checked */
    /* bench --rounds: the rounds this row ran and validated, each timed on its own (round_t);
     * t is their merge (median of the rounds' medians, min of the mins, max of the maxes, sums of
     * the repetitions and wall times). 0: t was filled another way (check's synthetic rows). */
    int rounds;
    fx_timing round_t[FX_MAX_ROUNDS];
} fx_bench_row;

/* One comparison of the verdict: the best GPU time against a CPU time at one size. */
typedef struct {
    char size[64];
    double flops;
    const fx_bench_row *gpu, *cpu;
    const char *against; /* "naive-1-thread", "best-cpu-1-thread", "best-cpu-all-cores" */
    double speedup;
} fx_speedup;

typedef struct {
    int argc;
    char **argv;
    int quick;
    int backends_named; /* --backend given */
    double budget;
    int rounds; /* --rounds: each group of rows (one suite and size) timed in turn this often */
    int threads_all;
    char binding[160];
    fx_topo topo;
    fx_peaks peaks;
    int have_gpu;
    fx_gpu_info gpu;
    char gpu_note[256];
    fx_bench_row *rows;
    int nrows;
    int rows_done; /* rows attempted so far: < nrows in a file written while the run goes on */
    fx_speedup *speedups;
    int nspeedups;
    char verdict[8192];
} fx_bench_run;

int fx_results_write(const char *path, const fx_bench_run *run, fx_err *e);

/* The default results file's stem, <host>-<cpu>-<cores>c[-<gpu>]: the CPU model without "(R)",
 * "(TM)", " Processor", " CPU", then every run of characters other than ASCII letters and digits
 * as one '-'. tools/fiftyx_results.py's results_stem is the same rule (check: tools/results_stem). */
void fx_results_stem(char *out, size_t len, const char *host, const char *cpu_model, int cores, const char *gpu);
/* The next fx_results_write asks git for the tree's commit again (for check). */
void fx_results_forget_git(void);

/* One case of the kernels suite (kernel_index: h_relu, y_pred, loss_grad, gh, w2_update, w1_update,
 * sgd_w1) of backend b at a step size, 1 thread, timed briefly and validated as bench does: 0 when
 * it ran (row->validated says whether its result was right), -1 when it could not run. */
int fx_bench_kernel_row(const fx_backend *b, fx_size size, int kernel_index, fx_bench_row *row);

/* A step row's check after timing: backend b's state takes one more step, and the double
 * reference takes it from the same weights (read from the state; x, y the row's inputs). The loss
 * must agree within 1e-3 relative plus float32's rounding spread at those weights, and each weight
 * update (w after − w before) with the reference's within 1e-3 of its size (Frobenius) plus its
 * rounding spread (fx_ref_step_spread: near convergence float losses sit at their rounding floor,
 * not near the exact one, and the updates are mostly rounding). Returns 0 with why empty when
 * they agree, 0 with why saying what differs when not, -1 when it could not run (e); *over: the
 * largest error over its tolerance (NaN: not known). */
int fx_bench_check_next_step(const fx_backend *b, void *state, const fx_problem *p, const float *x,
                             const float *y, double *over, char *why, size_t len, fx_err *e);

/* Step rows left "pending agreement" (the reference over budget at their size): their first two
 * losses put to a vote of one row per backend family (fx_backend.family), theirs included;
 * validated when more than half agree within 1e-3 and at least one other family voted. */
void fx_bench_validate_by_agreement(fx_bench_run *run);

/* The peak that bounds row r (peak_gflops or peak_gbs, and peak_name) from run->peaks: FMA rate
 * of the row's thread count, of the backend's own ISA where it has one; bandwidth for the
 * kernels suite's elementwise rows. */
void fx_bench_set_peak(const fx_bench_run *run, fx_bench_row *r);

/* The verdict on "50x" from the validated step rows (speedups, crossovers, a sentence per size),
 * into run->verdict and run->speedups; redone from scratch at every call. */
void fx_bench_verdict(fx_bench_run *run);
#endif
