/* atomic_file.h — write a file whole or not at all: a temporary beside it, then rename(2).
 * An existing target must be a regular file (a symbolic link is followed and stays a link); the
 * temporaries of files being written are removed if SIGINT, SIGTERM or SIGHUP ends the process. */
#ifndef FIFTYX_ATOMIC_FILE_H
#define FIFTYX_ATOMIC_FILE_H
#include <stdio.h>
#include "../kernels/fiftyx.h"

typedef struct {
    FILE *fp;
    char tmp[4096 + 16];
    char path[4096];
    int slot; /* in the list of temporaries to remove on a signal */
} fx_atomic_file;

int fx_atomic_open(fx_atomic_file *f, const char *path, fx_err *e);
/* ok = 0 means the writing failed: the temporary is removed and the target left untouched. */
int fx_atomic_commit(fx_atomic_file *f, int ok, fx_err *e);
/* commit in two halves, for several files that should all be written or none: close every one
 * (fx_atomic_close; a failure removes that temporary), then rename every one. */
int fx_atomic_close(fx_atomic_file *f, int ok, fx_err *e);
int fx_atomic_rename(fx_atomic_file *f, fx_err *e);
void fx_atomic_discard(fx_atomic_file *f); /* remove the temporary (open or closed) */
/* Whether path could be written: a valid target, and a temporary can be made beside it. */
int fx_atomic_check(const char *path, fx_err *e);
#endif
