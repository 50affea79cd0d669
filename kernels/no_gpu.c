/* no_gpu.c — linked instead of kernels/cuda/ when the build has no nvcc. */
#include "fiftyx.h"

int fx_gpu_query(fx_gpu_info *g, fx_err *e)
{
    (void)g;
    return fx_fail(e, "this build has no CUDA support (nvcc was not found at build time)");
}
