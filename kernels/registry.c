/* registry.c — every backend by name. A backend compiled out (no nvcc, no OpenBLAS) is simply
 * absent; one compiled in but unusable here (no GPU) says why through unavailable(). */
#include <string.h>
#include "fiftyx.h"

extern const fx_backend fx_backend_reference, fx_backend_naive;

static const fx_backend *const backends[] = {
    &fx_backend_reference,
    &fx_backend_naive,
};

const fx_backend *const *fx_backends(size_t *count)
{
    *count = sizeof backends / sizeof backends[0];
    return backends;
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
