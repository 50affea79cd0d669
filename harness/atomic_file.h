/* atomic_file.h — write a file whole or not at all: a temporary beside it, then rename(2). */
#ifndef FIFTYX_ATOMIC_FILE_H
#define FIFTYX_ATOMIC_FILE_H
#include <stdio.h>
#include "../kernels/fiftyx.h"

typedef struct {
    FILE *fp;
    char tmp[4096];
    char path[4096];
} fx_atomic_file;

int fx_atomic_open(fx_atomic_file *f, const char *path, fx_err *e);
/* ok = 0 means the writing failed: the temporary is removed and the target left untouched. */
int fx_atomic_commit(fx_atomic_file *f, int ok, fx_err *e);
#endif
