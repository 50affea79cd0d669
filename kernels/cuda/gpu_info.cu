// gpu_info.cu — fx_gpu_query: what the CUDA runtime says of device 0.
#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>
#include "../fiftyx.h"

extern "C" int fx_gpu_query(fx_gpu_info *g, fx_err *e)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError(); // clear the (non-sticky) error so later calls start clean
        return fx_fail(e, "no usable CUDA device (cudaGetDeviceCount: %s)", cudaGetErrorString(err));
    }
    if (count == 0)
        return fx_fail(e, "no CUDA device present");
    cudaDeviceProp p;
    if ((err = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
        cudaGetLastError();
        return fx_fail(e, "cudaGetDeviceProperties: %s", cudaGetErrorString(err));
    }
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", p.name);
    g->sms = p.multiProcessorCount;
    g->cc_major = p.major;
    g->cc_minor = p.minor;
    g->memory_gib = (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0);
    g->mem_bus_bits = p.memoryBusWidth;
    g->l2_kib = p.l2CacheSize / 1024;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0) == cudaSuccess)
        g->sm_clock_mhz = khz / 1000;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess)
        g->mem_clock_mhz = khz / 1000;
    cudaRuntimeGetVersion(&g->runtime_version);
    cudaDriverGetVersion(&g->driver_version);
    cudaGetLastError(); // an optional query that failed must not surface at the next kernel launch
    return 0;
}
