/* cli.c — see cli.h. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "cli.h"

void fx_die(int status, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("fiftyx: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

int fx_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int fx_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int fx_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    /* plain decimal only, as the integer options: no leading space, no hex (strtod takes both) */
    if (!(isdigit((unsigned char)*s) || *s == '.' || *s == '-' || *s == '+') || strpbrk(s, "xXpP"))
        return -1;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int fx_parse_size(const char *s, fx_size *out, fx_err *e)
{
    long d[4];
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        const char *x = strchr(p, 'x');
        size_t len = x ? (size_t)(x - p) : strlen(p);
        char buf[32];
        if (i < 3 && !x)
            return fx_fail(e, "size '%s': expected NxD_INxHxD_OUT, four dimensions", s);
        if (len == 0 || len >= sizeof buf)
            return fx_fail(e, "size '%s': malformed dimension", s);
        memcpy(buf, p, len);
        buf[len] = 0;
        for (size_t k = 0; k < len; k++)
            if (buf[k] < '0' || buf[k] > '9')
                return fx_fail(e, "size '%s': dimension '%s' is not a positive integer", s, buf);
        errno = 0;
        unsigned long long v = strtoull(buf, NULL, 10);
        if (errno || v > (unsigned long long)FX_MAX_DIM)
            return fx_fail(e, "size '%s': dimension %s is too large (max %ld)", s, buf, FX_MAX_DIM);
        if (v == 0)
            return fx_fail(e, "size '%s': dimensions must be at least 1", s);
        d[i] = (long)v;
        p = x ? x + 1 : p + len;
        if (i == 3 && x)
            return fx_fail(e, "size '%s': expected four dimensions, got more", s);
    }
    fx_size z = {d[0], d[1], d[2], d[3]};
    fx_err why;
    if (fx_size_check(z, &why))
        return fx_fail(e, "size '%s': %s", s, why.msg);
    *out = z;
    return 0;
}

int fx_size_check(fx_size z, fx_err *e)
{
    long dims[4] = {z.n, z.d_in, z.h, z.d_out};
    for (int i = 0; i < 4; i++)
        if (dims[i] < 1 || dims[i] > FX_MAX_DIM)
            return fx_fail(e, "dimension %ld is out of range (1 to %ld)", dims[i], FX_MAX_DIM);
    /* x, w1, h, w2, and y / y_pred (N×D_out) */
    long elems[5] = {z.n * z.d_in, z.d_in * z.h, z.n * z.h, z.h * z.d_out, z.n * z.d_out};
    for (int i = 0; i < 5; i++)
        if (elems[i] > FX_MAX_ELEMS)
            return fx_fail(e, "a tensor of %ld elements is too large (max %ld)", elems[i], FX_MAX_ELEMS);
    /* The least any backend holds in float32: x; w1 and its gradient; h, h_relu and gh; w2 and its
     * gradient; y, y_pred and g. A size past the memory this process may have can never run: say
     * so here rather than be killed for it (or thrash) minutes later. */
    double need = 4.0 * ((double)elems[0] + 2.0 * elems[1] + 3.0 * elems[2] + 2.0 * elems[3] + 3.0 * elems[4]);
    return fx_memory_check(need, "tensors", e);
}

int fx_memory_check(double need, const char *of, fx_err *e)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    const char *what;
    double have = fx_memory_limit(&what);
    if (have > 0 && need > have)
        return fx_fail(e, "its %s alone need %.1f GiB; %s is %.1f GiB", of, need / gib, what, have / gib);
    return 0;
}

double fx_memory_limit(const char **what)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && page > 0 ? (double)pages * page : 0;
    *what = "this machine's memory";
    static const struct {
        int resource;
        const char *name;
    } limits[] = {{RLIMIT_AS, "the process's address-space limit (ulimit -v)"},
                  {RLIMIT_DATA, "the process's data-size limit (ulimit -d)"}};
    for (int i = 0; i < 2; i++) {
        struct rlimit rl;
        if (!getrlimit(limits[i].resource, &rl) && rl.rlim_cur != RLIM_INFINITY &&
            (have <= 0 || (double)rl.rlim_cur < have)) {
            have = (double)rl.rlim_cur;
            *what = limits[i].name;
        }
    }
    return have;
}

/* An option given twice is refused (which one was meant?): the names matched so far in this argv.
 * Each position matches at most one name (the parsers test names in a chain until one matches). */
static void note_option(char **argv, const char *name)
{
    static char **seen_argv;
    static const char *seen[32];
    static int nseen;
    if (argv != seen_argv)
        seen_argv = argv, nseen = 0;
    for (int k = 0; k < nseen; k++)
        if (!strcmp(seen[k], name))
            fx_bad_input("option %s given twice", name);
    if (nseen < (int)(sizeof seen / sizeof seen[0]))
        seen[nseen++] = name;
}

const char *fx_opt(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) || (a[n] && a[n] != '='))
        return NULL;
    note_option(argv, name);
    if (a[n] == '=')
        return a + n + 1;
    if (*i + 1 >= argc)
        fx_bad_input("option %s needs a value", name);
    return argv[++*i];
}

int fx_flag(char **argv, int i, const char *name) { return !strcmp(argv[i], name); }

int fx_split_list(char *s, char **items, int max)
{
    int n = 0;
    for (char *p = s;; p++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        if (!*p || n == max)
            return -1;
        items[n++] = p;
        if (!comma)
            return n;
        p = comma;
    }
}

/* A backend this build lacks (a GPU one in a build made without nvcc, openblas without OpenBLAS)
 * says so. */
static void not_built(const char *opt, const char *name)
{
    const char *why = fx_backend_not_built_why(name);
    if (why)
        fx_bad_input("%sbackend '%s' is %s", opt, name, why);
}

int fx_parse_backend_list(const char *opt, const char *list, const fx_backend **out, int max)
{
    char buf[1024], *names[64];
    if (max > 64)
        max = 64;
    if (strlen(list) >= sizeof buf)
        fx_bad_input("%s: list too long (at most %zu characters)", opt, sizeof buf - 1);
    strcpy(buf, list);
    int n = fx_split_list(buf, names, max);
    if (n < 0)
        fx_bad_input("%s '%s': malformed list (names separated by single commas, at most %d)", opt, list, max);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s: ", opt);
    for (int i = 0; i < n; i++) {
        if (!(out[i] = fx_backend_find(names[i]))) {
            not_built(prefix, names[i]);
            fx_bad_input("%s: unknown backend '%s'", opt, names[i]);
        }
        for (int j = 0; j < i; j++)
            if (out[j] == out[i])
                fx_bad_input("%s: backend '%s' named twice", opt, names[i]);
    }
    return n;
}

const fx_backend *fx_backend_usable(const char *name)
{
    const fx_backend *b = fx_backend_find(name);
    if (!b) {
        not_built("", name);
        size_t n;
        const fx_backend *const *all = fx_backends(&n);
        char list[512] = "";
        for (size_t i = 0; i < n; i++) {
            strncat(list, all[i]->name, sizeof list - strlen(list) - 3);
            if (i + 1 < n)
                strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        fx_bad_input("unknown backend '%s' (built: %s)", name, list);
    }
    const char *why = b->unavailable ? b->unavailable() : NULL;
    if (why)
        fx_bad_input("backend '%s' is unavailable here: %s", name, why);
    return b;
}
