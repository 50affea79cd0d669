/* atomic_file.c — see atomic_file.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic_file.h"

/* mkstemp creates the file 0600; give it the mode a plain fopen would have. */
static int chmod_default(const char *path)
{
    mode_t mask = umask(0);
    umask(mask);
    return chmod(path, 0666 & ~mask);
}

int fx_atomic_open(fx_atomic_file *f, const char *path, fx_err *e)
{
    f->fp = NULL;
    if (strlen(path) + 16 > sizeof f->tmp)
        return fx_fail(e, "%s: path too long", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(f->tmp);
    if (fd < 0)
        return fx_fail(e, "%s: cannot write: %s", path, strerror(errno));
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int err = errno;
        close(fd);
        unlink(f->tmp);
        return fx_fail(e, "%s: cannot write: %s", path, strerror(err));
    }
    return 0;
}

int fx_atomic_commit(fx_atomic_file *f, int ok, fx_err *e)
{
    int err = ok ? 0 : EIO;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        err = err ? err : errno;
    if (fclose(f->fp) != 0 && !err)
        err = errno;
    f->fp = NULL;
    if (!err && chmod_default(f->tmp) != 0)
        err = errno;
    if (!err && rename(f->tmp, f->path) != 0)
        err = errno;
    if (err) {
        unlink(f->tmp);
        return fx_fail(e, "%s: write failed: %s", f->path, strerror(err));
    }
    return 0;
}
