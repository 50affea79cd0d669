/* check_io.c — the .npy reader/writer and the shared RNG. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "atomic_file.h"
#include "check.h"
#include "harness.h"

/* Writes a .npy by hand: magic, version major.0, header (padded to 16 bytes, '\n'), payload. */
static void write_raw(const char *path, int major, const char *dict, size_t payload, int truncate_hdr)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    size_t dlen = strlen(dict), pre = major == 1 ? 10 : 12;
    size_t hlen = dlen + 1 + (16 - (pre + dlen + 1) % 16) % 16;
    fwrite("\x93NUMPY", 1, 6, f);
    fputc(major, f);
    fputc(0, f);
    for (size_t i = 0; i < pre - 8; i++)
        fputc((int)((hlen >> (8 * i)) & 0xff), f);
    size_t written = 0;
    for (; written < (truncate_hdr ? dlen / 2 : dlen); written++)
        fputc(dict[written], f);
    if (!truncate_hdr) {
        for (size_t i = dlen; i + 1 < hlen; i++)
            fputc(' ', f);
        fputc('\n', f);
        for (size_t i = 0; i < payload; i++)
            fputc((int)(i * 7 & 0xff), f);
    }
    fclose(f);
}

static void expect_error(fx_check *c, const char *name, const char *path, const char *needle)
{
    fx_npy a;
    fx_err e = {{0}};
    if (fx_npy_load(path, &a, &e) == 0) {
        fx_npy_free(&a);
        fx_report(c, FX_FAIL, name, "loaded without error");
    } else if (!strstr(e.msg, needle)) {
        fx_report(c, FX_FAIL, name, "error '%s' does not mention '%s'", e.msg, needle);
    } else {
        fx_report(c, FX_PASS, name, NULL);
    }
}

/* Whether dir holds a file whose name starts with prefix (a leftover temporary). */
static int has_file_starting(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;
    while (d && (de = readdir(d)))
        found |= !strncmp(de->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return found;
}

/* What an atomic write may replace, and what it leaves when it is interrupted. */
static void check_atomic_targets(fx_check *c, const char *dir)
{
    float v[2] = {3, 4};
    long sh[1] = {2};
    fx_err e = {{0}};
    char path[4200], link[4200], fifo[4200], sub[4200];
    struct stat st;
    fx_npy a;

    /* a symbolic link: the file it points to is replaced, the link stays */
    snprintf(path, sizeof path, "%s/rt.npy", dir);
    snprintf(link, sizeof link, "%s/link.npy", dir);
    int ok = symlink("rt.npy", link) == 0 && fx_npy_save(link, v, 1, sh, &e) == 0 && lstat(link, &st) == 0 &&
             S_ISLNK(st.st_mode) && fx_npy_load(path, &a, &e) == 0;
    if (ok) {
        ok = a.shape[0] == 2 && a.data[0] == 3.0f;
        fx_npy_free(&a);
    }
    fx_report(c, ok ? FX_PASS : FX_FAIL, "npy/atomic_through_symlink", ok ? NULL : "link replaced or target not written (%s)", e.msg);

    /* not a regular file: a FIFO is neither replaced by a save nor waited on by a load */
    snprintf(fifo, sizeof fifo, "%s/fifo.npy", dir);
    if (mkfifo(fifo, 0600)) {
        fx_report(c, FX_FAIL, "npy/atomic_refuses_fifo", "mkfifo failed");
    } else {
        e.msg[0] = 0;
        ok = fx_npy_save(fifo, v, 1, sh, &e) != 0 && strstr(e.msg, "not a regular file") && lstat(fifo, &st) == 0 &&
             S_ISFIFO(st.st_mode);
        fx_report(c, ok ? FX_PASS : FX_FAIL, "npy/atomic_refuses_fifo", ok ? NULL : "saved over a FIFO (%s)", e.msg);
        expect_error(c, "npy/bad_load_fifo", fifo, "not a regular file");
    }

    /* a set of files: the second cannot be written (a directory), so the first is not either */
    snprintf(sub, sizeof sub, "%s/set", dir);
    char p1[4300], p2[4300];
    snprintf(p1, sizeof p1, "%s/w1.npy", sub);
    snprintf(p2, sizeof p2, "%s/w2.npy", sub);
    const char *paths[2] = {p1, p2};
    const float *data[2] = {v, v};
    const int nd[2] = {1, 1};
    const long *shapes[2] = {sh, sh};
    ok = mkdir(sub, 0700) == 0 && mkdir(p2, 0700) == 0 && fx_npy_save_set(2, paths, data, nd, shapes, &e) != 0 &&
         access(p1, F_OK) != 0 && !has_file_starting(sub, "w1.npy.tmp");
    fx_report(c, ok ? FX_PASS : FX_FAIL, "npy/save_set_all_or_none", ok ? NULL : "w1.npy written although w2.npy could not be");

    /* SIGTERM while a file is being written: the temporary goes with the process */
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        fx_atomic_file f;
        snprintf(path, sizeof path, "%s/sig.json", dir);
        if (fx_atomic_open(&f, path, NULL) == 0)
            raise(SIGTERM);
        _exit(3);
    }
    int status = 0;
    ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM &&
         !has_file_starting(dir, "sig.json");
    fx_report(c, ok ? FX_PASS : FX_FAIL, "npy/atomic_temporary_removed_on_signal",
              ok ? NULL : "the temporary outlived a SIGTERM (or the child did not die of it)");
}

static void roundtrip(fx_check *c, const char *dir, int ndim, const long *shape, int f64)
{
    char path[4200], name[96];
    snprintf(path, sizeof path, "%s/rt.npy", dir);
    snprintf(name, sizeof name, "npy/roundtrip_%s_%dd", f64 ? "f8" : "f4", ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *f = malloc(n * sizeof *f);
    double *d = malloc(n * sizeof *d);
    fx_rng r;
    fx_rng_seed(&r, 1000 + (uint64_t)ndim);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(d[i] = fx_rng_normal(&r) * 1e3);
    fx_err e = {{0}};
    fx_npy a = {0};
    int rc = f64 ? fx_npy_save_f64(path, d, ndim, shape, &e) : fx_npy_save(path, f, ndim, shape, &e);
    if (rc)
        fx_report(c, FX_FAIL, name, "save: %s", e.msg);
    else if (fx_npy_load(path, &a, &e))
        fx_report(c, FX_FAIL, name, "load: %s", e.msg);
    else if (a.ndim != ndim || memcmp(a.shape, shape, (size_t)ndim * sizeof *shape))
        fx_report(c, FX_FAIL, name, "shape changed (ndim %d)", a.ndim);
    else if (memcmp(a.data, f, n * sizeof *f))
        fx_report(c, FX_FAIL, name, "data changed");
    else
        fx_report(c, FX_PASS, name, NULL);
    fx_npy_free(&a);
    free(f);
    free(d);
}

void fx_check_npy(fx_check *c)
{
    char dir[4096], path[4200];
    if (fx_mkdtemp(dir, sizeof dir)) {
        fx_report(c, FX_FAIL, "npy/tempdir", "cannot create a temporary directory");
        return;
    }
    long s1[1] = {17}, s2[2] = {37, 53}, s3[3] = {3, 5, 7};
    roundtrip(c, dir, 1, s1, 0);
    roundtrip(c, dir, 2, s2, 0);
    roundtrip(c, dir, 3, s3, 0);
    roundtrip(c, dir, 2, s2, 1);

    /* Header versions 2.0 and 3.0 carry a 4-byte header length. */
    for (int major = 2; major <= 3; major++) {
        char name[64];
        snprintf(name, sizeof name, "npy/version_%d_0", major);
        snprintf(path, sizeof path, "%s/v%d.npy", dir, major);
        write_raw(path, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, 0);
        fx_npy a;
        fx_err e = {{0}};
        if (fx_npy_load(path, &a, &e))
            fx_report(c, FX_FAIL, name, "%s", e.msg);
        else {
            int ok = a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3;
            unsigned char want[4] = {0, 7, 14, 21}; /* first payload bytes of write_raw */
            ok = ok && !memcmp(a.data, want, 4);
            fx_report(c, ok ? FX_PASS : FX_FAIL, name, ok ? NULL : "wrong shape or data");
            fx_npy_free(&a);
        }
    }

    /* The tutorial's own tensors, as shipped. */
    {
        fx_init t;
        fx_err e = {{0}};
        snprintf(path, sizeof path, "%s/reference/data/tutorial", fx_source_dir());
        if (fx_init_load(&t, path, &e))
            fx_report(c, FX_FAIL, "npy/tutorial_tensors", "%s", e.msg);
        else {
            int ok = t.size.n == 64 && t.size.d_in == 1000 && t.size.h == 100 && t.size.d_out == 10;
            fx_report(c, ok ? FX_PASS : FX_FAIL, "npy/tutorial_tensors", ok ? NULL : "wrong size");
            fx_init_free(&t);
        }
    }

    /* Every kind of bad file gives an error that says what is wrong. */
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    struct {
        const char *name, *dict, *needle;
        int major;
        size_t payload;
        int trunc_hdr;
    } bad[] = {
        {"npy/bad_truncated_header", good, "truncated .npy header", 1, 24, 1},
        {"npy/bad_truncated_data", good, "truncated .npy data", 1, 23, 0},
        {"npy/bad_trailing_bytes", good, "trailing bytes", 1, 25, 0},
        {"npy/bad_dtype_int", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", "dtype", 1, 24, 0},
        {"npy/bad_dtype_bigendian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", "dtype", 1, 24, 0},
        {"npy/bad_dtype_f2", "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", "dtype", 1, 12, 0},
        {"npy/bad_fortran_order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", "Fortran", 1, 24, 0},
        {"npy/bad_shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", "shape", 1, 24, 0},
        {"npy/bad_shape_negative", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", "shape", 1, 24, 0},
        {"npy/bad_no_descr", "{'fortran_order': False, 'shape': (2, 3), }", "descr", 1, 24, 0},
        {"npy/bad_no_shape", "{'descr': '<f4', 'fortran_order': False, }", "shape", 1, 24, 0},
        {"npy/bad_version", good, "version", 4, 24, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.npy", dir, i);
        write_raw(path, bad[i].major, bad[i].dict, bad[i].payload, bad[i].trunc_hdr);
        expect_error(c, bad[i].name, path, bad[i].needle);
    }
    snprintf(path, sizeof path, "%s/magic.npy", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("\x93NUMPX\x01\x00", f);
        fclose(f);
    }
    expect_error(c, "npy/bad_magic", path, "magic");
    snprintf(path, sizeof path, "%s/empty.npy", dir);
    if ((f = fopen(path, "wb")))
        fclose(f);
    expect_error(c, "npy/bad_empty_file", path, "magic");
    snprintf(path, sizeof path, "%s/none.npy", dir);
    expect_error(c, "npy/bad_missing_file", path, "No such file");

    /* Saving is atomic: a failed save leaves nothing behind, a good one replaces the file. */
    {
        float v[2] = {1, 2};
        long sh[1] = {2};
        fx_err e = {{0}};
        snprintf(path, sizeof path, "%s/no/such/dir/w.npy", dir);
        int failed = fx_npy_save(path, v, 1, sh, &e) != 0 && e.msg[0];
        snprintf(path, sizeof path, "%s/rt.npy", dir);
        int replaced = fx_npy_save(path, v, 1, sh, &e) == 0;
        fx_npy a;
        replaced = replaced && fx_npy_load(path, &a, &e) == 0;
        if (replaced) {
            replaced = a.ndim == 1 && a.shape[0] == 2 && a.data[1] == 2.0f;
            fx_npy_free(&a);
        }
        fx_report(c, failed && replaced ? FX_PASS : FX_FAIL, "npy/atomic_save",
                  failed ? (replaced ? NULL : "the file was not replaced") : "a save into a missing directory succeeded");
    }
    check_atomic_targets(c, dir);
    fx_rmtree(dir);
}

void fx_check_rng(fx_check *c)
{
    /* The stream is pinned: results are only comparable across machines if every machine draws
     * the same tensors. Expected values from an independent Python implementation of
     * splitmix64 + xoshiro256** (splitmix64(0)'s first output is the published 0xe220a8397b1dcdaf). */
    fx_rng r;
    fx_rng_seed(&r, 0);
    int ok = r.s[0] == 0xe220a8397b1dcdafULL && fx_rng_next(&r) == 0x99ec5f36cb75f2b4ULL &&
             fx_rng_next(&r) == 0xbf6e1f784956452aULL && fx_rng_next(&r) == 0x1a5f849d4933e6e0ULL;
    fx_rng_seed(&r, 12345);
    ok = ok && fx_rng_next(&r) == 0xbe6a36374160d49bULL;
    fx_report(c, ok ? FX_PASS : FX_FAIL, "rng/pinned_stream", ok ? NULL : "xoshiro256** stream changed");

    /* Same seed, same tensors; another seed, others. */
    fx_init a, b, d;
    fx_size s = {5, 7, 3, 2};
    fx_err e = {{0}};
    if (fx_init_random(&a, s, 42, &e) || fx_init_random(&b, s, 42, &e) || fx_init_random(&d, s, 43, &e)) {
        fx_report(c, FX_FAIL, "rng/deterministic_init", "%s", e.msg);
        return;
    }
    ok = !memcmp(a.x, b.x, 35 * 4) && !memcmp(a.y, b.y, 10 * 4) && !memcmp(a.w1, b.w1, 21 * 4) &&
         !memcmp(a.w2, b.w2, 6 * 4);
    fx_report(c, ok ? FX_PASS : FX_FAIL, "rng/deterministic_init", ok ? NULL : "same seed, different tensors");
    ok = memcmp(a.x, d.x, 35 * 4) && memcmp(a.w1, d.w1, 21 * 4);
    fx_report(c, ok ? FX_PASS : FX_FAIL, "rng/seed_matters", ok ? NULL : "different seeds, same tensors");
    fx_init_free(&a);
    fx_init_free(&b);
    fx_init_free(&d);

    /* Standard normal: 1e6 draws, mean and variance within 5 standard errors. */
    const long n = 1000000;
    double sum = 0, sum2 = 0, sum4 = 0;
    fx_rng_seed(&r, 7);
    for (long i = 0; i < n; i++) {
        double v = fx_rng_normal(&r);
        sum += v;
        sum2 += v * v;
        sum4 += v * v * v * v;
    }
    double mean = sum / n, var = sum2 / n - mean * mean, kurt = sum4 / n;
    ok = fabs(mean) < 5.0 / sqrt((double)n) && fabs(var - 1.0) < 5.0 * sqrt(2.0 / n) &&
         fabs(kurt - 3.0) < 5.0 * sqrt(96.0 / n);
    fx_report(c, ok ? FX_PASS : FX_FAIL, "rng/normal_moments",
              ok ? NULL : "mean %.5f, variance %.5f, fourth moment %.4f", mean, var, kurt);
}
