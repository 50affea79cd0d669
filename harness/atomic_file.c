/* atomic_file.c — see atomic_file.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
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

/* ---- temporaries removed when the process is interrupted (SIGINT, SIGTERM, SIGHUP) ---- */

#define LIVE_MAX 4
static char live_tmp[LIVE_MAX][4096 + 16];
static volatile sig_atomic_t live_used[LIVE_MAX];

static void on_signal(int sig)
{
    for (int i = 0; i < LIVE_MAX; i++)
        if (live_used[i])
            unlink(live_tmp[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void watch_signals(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa = {0};
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue; /* nohup and friends: leave it ignored */
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

static void live_add(fx_atomic_file *f)
{
    watch_signals();
    f->slot = -1;
    for (int i = 0; i < LIVE_MAX; i++)
        if (!live_used[i]) {
            snprintf(live_tmp[i], sizeof live_tmp[i], "%s", f->tmp);
            live_used[i] = 1;
            f->slot = i;
            return;
        }
}

static void live_drop(fx_atomic_file *f)
{
    if (f->slot >= 0)
        live_used[f->slot] = 0;
    f->slot = -1;
}

/* ---- the target ---- */

/* Where the file goes: path itself, or the file a symbolic link at path points to (the link
 * stays a link); an existing target must be a regular file (never replace /dev/null). */
static int resolve(const char *path, char *out, size_t len, fx_err *e)
{
    if (!*path)
        return fx_fail(e, "an empty file name");
    struct stat st;
    char real[PATH_MAX];
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        if (stat(path, &st) || !realpath(path, real))
            return fx_fail(e, "%s: a symbolic link to nothing", path);
        path = real;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return fx_fail(e, "%s: %s", path, S_ISDIR(st.st_mode) ? "a directory, not a file" : "not a regular file");
    if (strlen(path) + 16 > len)
        return fx_fail(e, "path too long (%zu characters)", strlen(path));
    snprintf(out, len, "%s", path);
    return 0;
}

/* "cannot write" with the reason first, so that a long path cannot crowd it out of the message */
static int cannot_write(fx_err *e, int err, const char *path)
{
    return fx_fail(e, "cannot write (%s): %s", strerror(err), path);
}

int fx_atomic_open(fx_atomic_file *f, const char *path, fx_err *e)
{
    f->fp = NULL;
    f->slot = -1;
    if (resolve(path, f->path, sizeof f->path, e))
        return -1;
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.XXXXXX", f->path);
    int fd = mkstemp(f->tmp);
    if (fd < 0)
        return cannot_write(e, errno, f->path);
    live_add(f);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int err = errno;
        close(fd);
        unlink(f->tmp);
        live_drop(f);
        return cannot_write(e, err, f->path);
    }
    return 0;
}

int fx_atomic_close(fx_atomic_file *f, int ok, fx_err *e)
{
    int err = ok ? 0 : EIO;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        err = err ? err : errno;
    if (fclose(f->fp) != 0 && !err)
        err = errno;
    f->fp = NULL;
    if (!err && chmod_default(f->tmp) != 0)
        err = errno;
    if (err) {
        fx_atomic_discard(f);
        return fx_fail(e, "%s: write failed: %s", f->path, strerror(err));
    }
    return 0;
}

int fx_atomic_rename(fx_atomic_file *f, fx_err *e)
{
    if (rename(f->tmp, f->path) != 0) {
        int err = errno;
        fx_atomic_discard(f);
        return fx_fail(e, "%s: write failed: %s", f->path, strerror(err));
    }
    live_drop(f);
    return 0;
}

void fx_atomic_discard(fx_atomic_file *f)
{
    if (f->fp)
        fclose(f->fp);
    f->fp = NULL;
    unlink(f->tmp);
    live_drop(f);
}

int fx_atomic_commit(fx_atomic_file *f, int ok, fx_err *e)
{
    return fx_atomic_close(f, ok, e) ? -1 : fx_atomic_rename(f, e);
}

int fx_atomic_check(const char *path, fx_err *e)
{
    fx_atomic_file f;
    if (fx_atomic_open(&f, path, e))
        return -1;
    fx_atomic_discard(&f);
    return 0;
}
