/* registry.c — every backend by name. Each is a weak reference: a backend whose file is not
 * compiled (no nvcc, no OpenBLAS) is absent; one compiled in but unusable here (no GPU)
 * says why through unavailable(). The order is the order of reports. */
#include <string.h>
#include "fiftyx.h"

#define FX_BACKEND(sym) extern const fx_backend sym __attribute__((weak));
FX_BACKEND(fx_backend_reference)
FX_BACKEND(fx_backend_naive)
FX_BACKEND(fx_backend_cpu)
FX_BACKEND(fx_backend_cpu_avx512)
FX_BACKEND(fx_backend_cpu_avx2)
FX_BACKEND(fx_backend_cpu_generic)
FX_BACKEND(fx_backend_cpu_dense)
FX_BACKEND(fx_backend_openblas)
FX_BACKEND(fx_backend_cuda)
FX_BACKEND(fx_backend_cublas)
FX_BACKEND(fx_backend_cuda_persistent)

static const fx_backend *const known[] = {
    &fx_backend_reference, &fx_backend_naive,  &fx_backend_cpu,    &fx_backend_cpu_avx512,
    &fx_backend_cpu_avx2,  &fx_backend_cpu_generic, &fx_backend_cpu_dense, &fx_backend_openblas, &fx_backend_cuda,
    &fx_backend_cublas,    &fx_backend_cuda_persistent,
};

const fx_backend *const *fx_backends(size_t *count)
{
    static const fx_backend *present[sizeof known / sizeof known[0]];
    static size_t n;
    if (!n)
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (known[i])
                present[n++] = known[i];
    *count = n;
    return present;
}

/* Names in the order of known[], for the backends a build may lack. */
static const char *const known_names[] = {
    "reference", "naive", "cpu", "cpu-avx512", "cpu-avx2", "cpu-generic", "cpu-dense", "openblas", "cuda",
    "cublas", "cuda-persistent",
};
static const fx_device known_devices[] = {FX_CPU, FX_CPU, FX_CPU, FX_CPU, FX_CPU,
                                          FX_CPU, FX_CPU, FX_CPU, FX_GPU, FX_GPU, FX_GPU};
_Static_assert(sizeof known_names / sizeof known_names[0] == sizeof known / sizeof known[0],
               "one name per known backend");
_Static_assert(sizeof known_devices / sizeof known_devices[0] == sizeof known / sizeof known[0],
               "one device per known backend");

size_t fx_backends_not_built(const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!known[i] && n < max)
            names[n++] = known_names[i];
    return n;
}

fx_device fx_backend_device(const char *name)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known_names[i], name))
            return known_devices[i];
    return FX_CPU;
}

const char *fx_backend_not_built_why(const char *name)
{
    if (!fx_backend_not_built(name))
        return NULL;
    if (!strcmp(name, "openblas"))
        return "not in this build (OpenBLAS was not found at build time, or OPENBLAS=0)";
    if (fx_backend_device(name) == FX_GPU)
        return "not in this build (nvcc was not found at build time: CPU only)";
    return "not in this build";
}

int fx_backend_not_built(const char *name)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!known[i] && !strcmp(known_names[i], name))
            return 1;
    return 0;
}

const fx_backend *fx_backend_find(const char *name)
{
    size_t n;
    const fx_backend *const *b = fx_backends(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(b[i]->name, name))
            return b[i];
    return NULL;
}
