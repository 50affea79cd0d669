/* results.c — the results file: Google Benchmark's JSON layout (context + benchmarks, so that
 * its tools/compare.py reads it), our fields beside theirs, and a speedups section. Written
 * atomically through jansson. Field names follow benchmark's docs/json_format.md. */
#include <fcntl.h>
#include <math.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "atomic_file.h"
#include "bench.h"
#include "harness.h"

#define FX_SCHEMA_VERSION 1 /* ours, in context.fiftyx.schema_version; tools/compare checks it */

#ifndef FX_CFLAGS
#define FX_CFLAGS "unknown"
#endif
#ifndef FX_NVCC
#define FX_NVCC "none (CPU-only build)"
#endif

extern char **environ;

static const char *const op_names[] = {"nn", "nt", "tn"};

/* Runs git -C <source tree> <args...> without a shell (the path may hold any character);
 * its first line of output into out. Returns git's exit status, or -1.
 * posix_spawn, not fork: a fork runs OpenBLAS's pthread_atfork handler, which stops its worker
 * threads; the next call re-creates them from the main thread, which bench has pinned to one
 * core, so (most likely through that inherited binding) the `openblas` rows timed after the first
 * results file was written ran at one core's speed (102 GFLOP/s on 2 threads against 204). */
static int git(const char *const *args, char *out, size_t len)
{
    const char *argv[8] = {"git", "-C", fx_source_dir()};
    int n = 3;
    for (; args[n - 3] && n < 7; n++)
        argv[n] = args[n - 3];
    argv[n] = NULL;
    out[0] = 0;
    int fd[2];
    if (pipe(fd))
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    int rc = posix_spawnp(&pid, "git", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (rc) {
        close(fd[0]);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && (r = read(fd[0], out + got, len - 1 - got)) > 0)
        got += (size_t)r;
    char sink[256]; /* the rest, so that git never blocks on a full pipe */
    while (read(fd[0], sink, sizeof sink) > 0)
        ;
    close(fd[0]);
    out[got] = 0;
    out[strcspn(out, "\n")] = 0;
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void git_describe_uncached(char *buf, size_t len)
{
    const char *env = getenv("FIFTYX_GIT_SHA"); /* for trees copied without .git */
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    snprintf(buf, len, "unknown");
    char sha[64], changes[64];
    const char *head[] = {"rev-parse", "--short=12", "HEAD", NULL};
    const char *status[] = {"status", "--porcelain", "--untracked-files=no", NULL};
    if (git(head, sha, sizeof sha) != 0 || !sha[0])
        return;
    if (git(status, changes, sizeof changes) != 0)
        return;
    snprintf(buf, len, "%s%s", sha, changes[0] ? "-dirty" : "");
}

static char git_cached[128]; /* once per process: the file is written often */

static void git_describe(char *buf, size_t len)
{
    if (!git_cached[0])
        git_describe_uncached(git_cached, sizeof git_cached);
    snprintf(buf, len, "%s", git_cached);
}

void fx_results_forget_git(void) { git_cached[0] = 0; }

static json_t *caches(const fx_topo *t)
{
    json_t *a = json_array();
    struct {
        const char *type;
        int level;
        long size;
        int sharing;
    } c[] = {{"Data", 1, t->l1d_bytes, 1},
             {"Unified", 2, t->l2_bytes, t->l2_instances ? t->cores / t->l2_instances : 1},
             {"Unified", 3, t->l3_bytes, t->l3_instances ? t->cores / t->l3_instances : t->cores}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (c[i].size > 0)
            json_array_append_new(a, json_pack("{s:s, s:i, s:I, s:i}", "type", c[i].type, "level", c[i].level, "size",
                                               (json_int_t)c[i].size, "num_sharing", c[i].sharing));
    return a;
}

static json_t *context(const fx_bench_run *run)
{
    char date[64], host[256] = "";
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", &tm);
    gethostname(host, sizeof host - 1);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    char sha[128];
    git_describe(sha, sizeof sha);

    json_t *cmd = json_array();
    for (int i = 0; i < run->argc; i++)
        json_array_append_new(cmd, json_string(run->argv[i]));

    const fx_peaks *p = &run->peaks;
    json_t *fma = json_object();
    for (int isa = 0; isa < 3; isa++)
        if (p->fma_gflops[isa][0] > 0)
            json_object_set_new(fma, fx_isa_names[isa],
                                json_pack("{s:f, s:f}", "1_thread", p->fma_gflops[isa][0], "all_cores",
                                          p->fma_gflops[isa][1]));
    json_t *peaks = json_pack("{s:o, s:i, s:{s:f, s:f}, s:s}", "cpu_fma_gflops", fma, "all_cores_threads",
                              p->threads_all, "cpu_triad_gbs", "1_thread", p->triad_gbs[0], "all_cores",
                              p->triad_gbs[1], "method",
                              "FMA: 12 independent chains per thread, best of 3; triad: a=b+s*c over 3 arrays "
                              "far beyond L3, STREAM's byte count, best of several; cpu_triad_l2_gbs: the same on "
                              "each thread's own arrays in half its core's L2, hot; elementwise kernels rows: the "
                              "triad on as many bytes as the row moves, hot, on its threads (peak cpu_triad_hot)");
    if (p->triad_l2_gbs[0] > 0)
        json_object_set_new(peaks, "cpu_triad_l2_gbs",
                            json_pack("{s:f, s:f, s:I}", "1_thread", p->triad_l2_gbs[0], "all_cores", p->triad_l2_gbs[1],
                                      "bytes_per_thread", (json_int_t)(p->l2_bytes / 2)));
    if (p->cpu_note[0])
        json_object_set_new(peaks, "cpu_note", json_string(p->cpu_note));
    if (p->gpu)
        json_object_set_new(peaks, "gpu", json_pack("{s:f, s:f, s:s}", "ffma_gflops", p->gpu_ffma_gflops,
                                                    "copy_gbs", p->gpu_copy_gbs, "method", p->gpu_note));

    json_t *gpu = json_null();
    if (run->have_gpu) {
        const fx_gpu_info *g = &run->gpu;
        char cc[16];
        snprintf(cc, sizeof cc, "%d.%d", g->cc_major, g->cc_minor);
        gpu = json_pack("{s:s, s:i, s:s, s:f, s:i, s:i, s:i, s:i, s:i, s:i}", "name", g->name, "sms", g->sms, "cc", cc,
                        "memory_gib", g->memory_gib, "sm_clock_mhz", g->sm_clock_mhz, "mem_clock_mhz",
                        g->mem_clock_mhz, "mem_bus_bits", g->mem_bus_bits, "l2_kib", g->l2_kib, "cuda_runtime",
                        g->runtime_version, "driver", g->driver_version);
    }

    json_t *backends = json_object();
    for (int i = 0; i < run->nrows; i++) {
        const fx_backend *b = run->rows[i].b;
        if (!json_object_get(backends, b->name))
            json_object_set_new(backends, b->name,
                                json_pack("{s:s, s:s, s:s}", "device", b->device == FX_GPU ? "gpu" : "cpu", "summary",
                                          b->summary, "config", b->describe ? b->describe() : ""));
    }

    json_t *fiftyx = json_pack(
        "{s:i, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:f, s:b, s:o, s:s}", "schema_version",
        FX_SCHEMA_VERSION, "cpu_model", run->topo.cpu_model, "isa", run->topo.isa, "kernel_isa", run->topo.best_isa,
        "threads_all", run->threads_all, "binding", run->binding, "compiler", "gcc " __VERSION__, "cflags", FX_CFLAGS,
        "nvcc", FX_NVCC, "gpu", gpu, "peaks", peaks, "backends", backends, "budget_s", run->budget, "quick",
        run->quick, "command", cmd, "git", sha);
    if (!run->have_gpu)
        json_object_set_new(fiftyx, "gpu_absent", json_string(run->gpu_note));
    /* bench rewrites the file after every case: a run cut short (a time limit, a crash) leaves the
     * cases done so far, marked incomplete */
    json_object_set_new(fiftyx, "cpu_id", json_string(run->topo.cpu_id));
    json_object_set_new(fiftyx, "rounds", json_integer(run->rounds > 1 ? run->rounds : 1));
    json_object_set_new(fiftyx, "complete", json_boolean(run->rows_done >= run->nrows));
    json_object_set_new(fiftyx, "cases_done", json_integer(run->rows_done));
    json_object_set_new(fiftyx, "cases_total", json_integer(run->nrows));

#ifdef __OPTIMIZE__
#define LIBRARY_BUILD_TYPE "release"
#else
#define LIBRARY_BUILD_TYPE "debug"
#endif
    char version[160];
    snprintf(version, sizeof version, "fiftyx %s", sha);
    return json_pack("{s:s, s:s, s:s, s:i, s:f, s:b, s:o, s:[f,f,f], s:s, s:s, s:i, s:o}", "date", date, "host_name", host,
                     "executable", run->argv[0], "num_cpus", run->topo.pus, "mhz_per_cpu", run->topo.mhz,
                     "cpu_scaling_enabled", run->topo.scaling_enabled, "caches", caches(&run->topo), "load_avg", load[0], load[1], load[2],
                     "library_build_type", LIBRARY_BUILD_TYPE, "library_version", version, "json_schema_version", 1,
                     "fiftyx", fiftyx);
}

/* A number where one may be non-finite (a NaN loss, an error against one): JSON has no NaN, and
 * jansson's json_real refuses it (json_pack would then drop the whole object): null instead. */
static json_t *number_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static const char *suite_name(const fx_bench_row *r)
{
    return r->suite == FX_SUITE_STEP ? "step" : r->suite == FX_SUITE_GEMM ? "gemm" : "kernels";
}

/* <suite>/<backend>/<size>[/<kernel>][/sync_every_step | /threads:T] */
static void row_name(const fx_bench_row *r, char *buf, size_t len)
{
    char size[128];
    snprintf(size, sizeof size, "%s%s%s", r->size, r->kernel ? "/" : "", r->kernel ? r->kernel : "");
    if (r->b->device == FX_GPU)
        snprintf(buf, len, "%s/%s/%s%s", suite_name(r), r->b->name, size, r->sync_every_step ? "/sync_every_step" : "");
    else
        snprintf(buf, len, "%s/%s/%s/threads:%d", suite_name(r), r->b->name, size, r->threads);
}

static json_t *benchmarks(const fx_bench_run *run)
{
    json_t *a = json_array();
    int index = 0;
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->status != FX_ROW_RAN)
            continue;
        char name[256];
        row_name(r, name, sizeof name);
        const double us = 1e6;
        json_t *o = json_pack(
            "{s:s, s:i, s:i, s:s, s:s, s:i, s:i, s:i, s:I, s:f, s:f, s:s}", "name", name, "family_index", index,
            "per_family_instance_index", 0, "run_name", name, "run_type", "iteration", "repetitions", r->t.reps,
            "repetition_index", 0, "threads", r->threads > 0 ? r->threads : 1, "iterations",
            (json_int_t)r->t.iters_per_rep, "real_time", r->t.median * us, "cpu_time", r->t.cpu_median * us,
            "time_unit", "us");
        index++;
        json_object_update_new(
            o, json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:s, s:f, s:b, s:s, s:o, s:I, s:f}",
                         "suite", suite_name(r), "backend", r->b->name, "device",
                         r->b->device == FX_GPU ? "gpu" : "cpu", "size", r->size, "cpu_threads", r->threads,
                         "flops_per_iteration", r->flops, "gflops", r->gflops, "min_time", r->t.min * us, "max_time",
                         r->t.max * us, "peak_gflops", r->peak_gflops, "peak", r->peak_name ? r->peak_name : "",
                         "pct_peak", r->peak_gflops > 0 ? 100 * r->gflops / r->peak_gflops : 0.0, "validated",
                         r->validated, "validation", r->validation, "max_rel_err", number_or_null(r->max_rel_err),
                         "iterations_per_repetition", (json_int_t)r->t.iters_per_rep, "case_wall_s", r->t.wall));
        json_object_set_new(o, "config", json_string(r->config));
        /* bench --rounds: the median of each round that passed, in the order they ran (real_time is
         * their median; for a row that went wrong in a later round, that round's, and its
         * validation names it) */
        json_t *rt = json_array();
        for (int k = 0; k < r->rounds; k++)
            json_array_append_new(rt, json_real(r->round_t[k].median * us));
        if (!r->rounds)
            json_array_append_new(rt, json_real(r->t.median * us));
        json_object_set_new(o, "rounds", json_integer(json_array_size(rt)));
        json_object_set_new(o, "round_times", rt);
        if (r->suite == FX_SUITE_STEP) {
            json_object_set_new(o, "lr", json_real(r->lr));
            json_object_set_new(o, "sync_every_step", json_boolean(r->sync_every_step));
            json_object_set_new(o, "first_losses", json_pack("[o,o]", number_or_null(r->loss[0]), number_or_null(r->loss[1])));
            json_object_set_new(o, "after_timing_error_over_tolerance", number_or_null(r->after_timing));
        } else if (r->suite == FX_SUITE_GEMM) {
            json_object_set_new(o, "op", json_string(op_names[r->op]));
            json_object_set_new(o, "note", json_string(r->note));
        } else {
            static const char *const epi_names[] = {"store", "relu_mask", "mask", "sgd"};
            static const char *const kind_names[] = {"gemm", "loss_grad", "sgd"};
            /* GEMMs: the check's measure, not a relative error (the largest |error| / tolerance of the
             * sampled elements); loss_grad and sgd_w1 are checked element by element, pass or fail */
            json_object_del(o, "max_rel_err");
            if (r->kind == FX_KERNEL_GEMM)
                json_object_set_new(o, "worst_error_over_tolerance", number_or_null(r->max_rel_err));
            json_object_update_new(o, json_pack("{s:s, s:s, s:s, s:s, s:f, s:f}", "kernel", r->kernel, "computes",
                                                r->kernel_what, "kind", kind_names[r->kind], "shape", r->shape,
                                                "bytes_per_iteration", r->bytes, "gbs", r->gbs));
            if (r->kind == FX_KERNEL_GEMM) {
                json_object_set_new(o, "op", json_string(op_names[r->op]));
                json_object_set_new(o, "epilogue", json_string(epi_names[r->epi]));
            } else { /* bandwidth-bound: pct_peak is of the bandwidth */
                json_object_set_new(o, "peak_gbs", json_real(r->peak_gbs));
                json_object_set_new(o, "pct_peak", json_real(r->peak_gbs > 0 ? 100 * r->gbs / r->peak_gbs : 0.0));
            }
        }
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *skipped(const fx_bench_run *run)
{
    json_t *a = json_array();
    for (int i = 0; i < run->nrows; i++) {
        const fx_bench_row *r = &run->rows[i];
        if (r->status == FX_ROW_SKIPPED || r->status == FX_ROW_FAILED) {
            char name[256];
            row_name(r, name, sizeof name);
            json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", name, "status",
                                               r->status == FX_ROW_SKIPPED ? "skipped" : "failed", "reason", r->note));
        }
    }
    return a;
}

static json_t *speedups(const fx_bench_run *run)
{
    json_t *a = json_array();
    for (int i = 0; i < run->nspeedups; i++) {
        const fx_speedup *s = &run->speedups[i];
        json_array_append_new(
            a, json_pack("{s:s, s:f, s:s, s:f, s:s, s:i, s:f, s:s, s:f}", "size", s->size, "flops_per_step", s->flops,
                         "gpu", s->gpu->b->name, "gpu_time_us", s->gpu->t.median * 1e6, "cpu", s->cpu->b->name,
                         "cpu_threads", s->cpu->threads, "cpu_time_us", s->cpu->t.median * 1e6, "against", s->against,
                         "speedup", s->speedup));
    }
    return a;
}

int fx_results_write(const char *path, const fx_bench_run *run, fx_err *e)
{
    json_t *root = json_pack("{s:o, s:o, s:o, s:o, s:s}", "context", context(run), "benchmarks", benchmarks(run),
                             "not_run", skipped(run), "speedups", speedups(run), "verdict", run->verdict);
    if (!root)
        return fx_fail(e, "%s: could not build the results JSON", path);
    fx_atomic_file af;
    if (fx_atomic_open(&af, path, e)) {
        json_decref(root);
        return -1;
    }
    int ok = json_dumpf(root, af.fp, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) == 0 && fputc('\n', af.fp) != EOF;
    json_decref(root);
    return fx_atomic_commit(&af, ok, e);
}
