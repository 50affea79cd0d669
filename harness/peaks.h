/* peaks.h — measured peaks that bound every benchmark figure. */
#ifndef FIFTYX_PEAKS_H
#define FIFTYX_PEAKS_H

typedef struct {
    double fma_gflops[3][2]; /* [isa: avx512, avx2, generic][1 thread, all cores]; 0 = not run */
    double triad_gbs[2];     /* STREAM-triad-like bandwidth, 1 thread and all cores (memory) */
    /* the same triad on each thread's own arrays in half of its core's L2 (l2_bytes per core) */
    double triad_l2_gbs[2];
    long l2_bytes;
    int threads_all;
    int gpu; /* 1 when the GPU figures were measured */
    double gpu_ffma_gflops, gpu_copy_gbs;
    char gpu_note[160];
    /* "" or why the all-cores FMA figure is suspect: it stayed close to one thread's after
     * re-measuring (another load sharing the cores; percentages of peak then read too high) */
    char cpu_note[200];
} fx_peaks;

enum { FX_ISA_AVX512, FX_ISA_AVX2, FX_ISA_GENERIC };
extern const char *const fx_isa_names[3];

/* Measures everything this machine can run (~5-10 s; quick: ~1-2 s). */
void fx_peaks_measure(fx_peaks *p, int threads_all, int quick);
/* Whether FMA figures are believable together: 0 when they are (or there is nothing to judge:
 * one core, a figure missing), -1 when the all-cores figure `all` on `cores` cores is too low
 * beside the one-thread figure `one`, 1 when `one` is too low beside `all` per core. */
/* The triad on `bytes` (3 arrays in all, shared out among `threads` threads, each its own) kept
 * hot: the bandwidth bound of an elementwise kernel that moves as many bytes on operands left
 * resident (the kernels suite), whichever cache or memory holds them. in_place: a += s·b (two
 * arrays, as SGD's update) instead of a = b + s·c. GB/s (12 bytes an element), best of 3. */
double fx_triad_hot_gbs(int threads, double bytes, int in_place);
int fx_peak_plausible(double one, double all, int cores);
/* The FMA peak of the best ISA here at this thread count (1 or all cores). */
double fx_peak_cpu(const fx_peaks *p, int threads);
/* The same for one ISA (an index of fx_isa_names); 0 when it was not measured (not supported). */
double fx_peak_cpu_isa(const fx_peaks *p, int isa, int threads);

/* Per-ISA FMA loops: each runs `iters` iterations of 12 independent FMA chains and returns a
 * value that depends on all of them. mul and add come from volatile storage at run time, so the
 * compiler cannot fold the chains into constants (gcc did, for the SSE loop, before). */
float fx_fma_loop_avx512(long iters, float mul, float add);
float fx_fma_loop_avx2(long iters, float mul, float add);
float fx_fma_loop_generic(long iters, float mul, float add);
#define FX_FMA_FLOPS_AVX512 (12 * 16 * 2)
#define FX_FMA_FLOPS_AVX2 (12 * 8 * 2)
#define FX_FMA_FLOPS_GENERIC (12 * 4 * 2)

/* GPU: FFMA throughput and device copy bandwidth (harness/peaks_gpu.cu); -1 without a GPU. */
int fx_gpu_peaks(double *ffma_gflops, double *copy_gbs, char *note, int note_len);
#endif
