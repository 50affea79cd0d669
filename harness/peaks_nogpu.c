/* peaks_nogpu.c — linked instead of peaks_gpu.cu when the build has no nvcc. */
#include <stdio.h>
#include "peaks.h"

int fx_gpu_peaks(double *ffma_gflops, double *copy_gbs, char *note, int note_len)
{
    *ffma_gflops = *copy_gbs = 0;
    snprintf(note, (size_t)note_len, "this build has no CUDA support");
    return -1;
}
