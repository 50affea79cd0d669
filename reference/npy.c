/* npy.c — NumPy .npy files: float32/float64, C order, header versions 1.0–3.0.
 * Format: "\x93NUMPY", major, minor, header length (u16 LE for 1.0, u32 LE for 2.0/3.0),
 * then a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...), }. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "reference.h"
#include "../harness/atomic_file.h"

/* Finds 'key' in the header dict and returns a pointer just past the ':' that follows. */
static const char *dict_value(const char *hdr, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(hdr, quoted);
    if (!p) {
        snprintf(quoted, sizeof quoted, "\"%s\"", key);
        p = strstr(hdr, quoted);
    }
    if (!p)
        return NULL;
    p += strlen(quoted);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static int parse_header(const char *hdr, const char *path, int *elem, fx_npy *out, fx_err *e)
{
    const char *d = dict_value(hdr, "descr");
    if (!d || (*d != '\'' && *d != '"'))
        return fx_fail(e, "%s: .npy header has no 'descr'", path);
    char q = *d++;
    const char *end = strchr(d, q);
    if (!end || end - d > 16)
        return fx_fail(e, "%s: malformed 'descr' in .npy header", path);
    char descr[20];
    memcpy(descr, d, (size_t)(end - d));
    descr[end - d] = 0;
    if (!strcmp(descr, "<f4"))
        *elem = 4;
    else if (!strcmp(descr, "<f8"))
        *elem = 8;
    else
        return fx_fail(e, "%s: dtype '%s' is not supported (need '<f4' or '<f8')", path, descr);

    const char *f = dict_value(hdr, "fortran_order");
    if (!f)
        return fx_fail(e, "%s: .npy header has no 'fortran_order'", path);
    if (!strncmp(f, "True", 4))
        return fx_fail(e, "%s: Fortran-order arrays are not supported (need C order)", path);
    if (strncmp(f, "False", 5))
        return fx_fail(e, "%s: malformed 'fortran_order' in .npy header", path);

    const char *s = dict_value(hdr, "shape");
    if (!s || *s != '(')
        return fx_fail(e, "%s: .npy header has no 'shape' tuple", path);
    s++;
    out->ndim = 0;
    for (;;) {
        while (*s == ' ')
            s++;
        if (*s == ')')
            break;
        if (*s < '0' || *s > '9')
            return fx_fail(e, "%s: malformed 'shape' in .npy header", path);
        errno = 0;
        char *next;
        long v = strtol(s, &next, 10);
        if (errno == ERANGE || v < 0)
            return fx_fail(e, "%s: dimension out of range in .npy header", path);
        if (out->ndim == 8)
            return fx_fail(e, "%s: more than 8 dimensions", path);
        out->shape[out->ndim++] = v;
        s = next;
        while (*s == ' ')
            s++;
        if (*s == ',')
            s++;
        else if (*s != ')')
            return fx_fail(e, "%s: malformed 'shape' in .npy header", path);
    }
    return 0;
}

int fx_npy_load(const char *path, fx_npy *out, fx_err *e)
{
    memset(out, 0, sizeof *out);
    /* a FIFO or a device would block or never end: regular files only (O_NONBLOCK: the open
     * itself must not wait for a FIFO's writer) */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return fx_fail(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return fx_fail(e, "%s: not a regular file", path);
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int err = errno;
        close(fd);
        return fx_fail(e, "%s: %s", path, strerror(err));
    }
    int rc = -1;
    char *hdr = NULL;
    void *raw = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 8, fp) != 8 || memcmp(pre, "\x93NUMPY", 6)) {
        fx_fail(e, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    unsigned major = pre[6];
    unsigned long hlen;
    if (major == 1) {
        if (fread(pre + 8, 1, 2, fp) != 2) {
            fx_fail(e, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = pre[8] | (unsigned long)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 8, 1, 4, fp) != 4) {
            fx_fail(e, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = pre[8] | (unsigned long)pre[9] << 8 | (unsigned long)pre[10] << 16 |
               (unsigned long)pre[11] << 24;
    } else {
        fx_fail(e, "%s: .npy format version %u.%u is not supported", path, major, pre[7]);
        goto done;
    }
    if (hlen > (1UL << 20)) {
        fx_fail(e, "%s: .npy header too long (%lu bytes)", path, hlen);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, fp) != hlen) {
        fx_fail(e, "%s: truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = 0;
    if (strlen(hdr) != hlen) {
        fx_fail(e, "%s: NUL byte inside .npy header", path);
        goto done;
    }
    int elem = 0;
    if (parse_header(hdr, path, &elem, out, e))
        goto done;
    size_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        size_t d = (size_t)out->shape[i];
        if (d && count > SIZE_MAX / 8 / d) {
            fx_fail(e, "%s: array too large", path);
            goto done;
        }
        count *= d;
    }
    size_t bytes = count * (size_t)elem;
    struct stat fst;
    long pos = ftell(fp);
    if (pos >= 0 && !fstat(fileno(fp), &fst) && (fst.st_size < pos || (size_t)(fst.st_size - pos) < bytes)) {
        /* before allocating: a short file must not cost its header's claim in memory */
        fx_fail(e, "%s: truncated .npy data (expected %zu bytes)", path, bytes);
        goto done;
    }
    raw = malloc(bytes ? bytes : 1);
    out->data = malloc(count ? count * sizeof(float) : sizeof(float));
    if (!raw || !out->data) {
        fx_fail(e, "%s: out of memory for %zu elements", path, count);
        goto done;
    }
    if (fread(raw, 1, bytes, fp) != bytes) {
        fx_fail(e, "%s: truncated .npy data (expected %zu bytes)", path, bytes);
        goto done;
    }
    if (fgetc(fp) != EOF) {
        fx_fail(e, "%s: trailing bytes after .npy data", path);
        goto done;
    }
    if (elem == 4)
        memcpy(out->data, raw, bytes);
    else
        for (size_t i = 0; i < count; i++)
            out->data[i] = (float)((const double *)raw)[i];
    rc = 0;
done:
    if (rc)
        fx_npy_free(out);
    free(raw);
    free(hdr);
    fclose(fp);
    return rc;
}

void fx_npy_free(fx_npy *a)
{
    free(a->data);
    a->data = NULL;
}

/* The .npy bytes of one array into f; 1 if every write succeeded. */
static int write_npy(FILE *f, const void *data, size_t elem, const char *descr, int ndim, const long *shape)
{
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%ld%s", shape[i],
                        ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        count *= (size_t)shape[i];
    }
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* pad with spaces so that data starts on a 64-byte boundary; end the header with '\n' */
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)len + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)len, f) == (size_t)len;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    return ok && fputc('\n', f) != EOF && fwrite(data, elem, count, f) == count;
}

static int save_any(const char *path, const void *data, size_t elem, const char *descr, int ndim,
                    const long *shape, fx_err *e)
{
    fx_atomic_file af;
    if (fx_atomic_open(&af, path, e))
        return -1;
    return fx_atomic_commit(&af, write_npy(af.fp, data, elem, descr, ndim, shape), e);
}

int fx_npy_save_set(int n, const char *const *paths, const float *const *data, const int *ndim,
                    const long *const *shape, fx_err *e)
{
    fx_atomic_file af[8];
    if (n > 8)
        return fx_fail(e, "too many files in one set");
    int k = 0;
    while (k < n && fx_atomic_open(&af[k], paths[k], e) == 0)
        k++;
    if (k < n) {
        for (int j = 0; j < k; j++)
            fx_atomic_discard(&af[j]);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (fx_atomic_close(&af[i], write_npy(af[i].fp, data[i], sizeof(float), "<f4", ndim[i], shape[i]), e)) {
            for (int j = 0; j < n; j++) /* af[i] has removed its own temporary */
                if (j != i)
                    fx_atomic_discard(&af[j]);
            return -1;
        }
    for (int i = 0; i < n; i++)
        if (fx_atomic_rename(&af[i], e)) {
            for (int j = i + 1; j < n; j++)
                fx_atomic_discard(&af[j]);
            return -1;
        }
    return 0;
}

int fx_npy_save(const char *path, const float *data, int ndim, const long *shape, fx_err *e)
{
    return save_any(path, data, sizeof(float), "<f4", ndim, shape, e);
}

int fx_npy_save_f64(const char *path, const double *data, int ndim, const long *shape, fx_err *e)
{
    return save_any(path, data, sizeof(double), "<f8", ndim, shape, e);
}
