/* info.c — `fiftyx info`: the machine a result was measured on. */
#include <stdio.h>
#include "cli.h"
#include "harness.h"
#include "peaks.h"
#include "topo.h"

int fx_cmd_info(int argc, char **argv)
{
    int peaks = 0;
    for (int i = 2; i < argc; i++) {
        if (fx_flag(argv, i, "--help") || fx_flag(argv, i, "-h")) {
            puts("usage: fiftyx info [--peaks]\n  Prints the CPU (hwloc topology, caches, ISA), the GPU if any, "
                 "and the backends built.\n  --peaks  also measure the FMA, bandwidth (and GPU) peaks, as bench does "
                 "(~10 s)");
            return 0;
        }
        if (fx_flag(argv, i, "--peaks")) {
            peaks = 1;
            continue;
        }
        fx_bad_input("info: unknown option '%s'", argv[i]);
    }
    fx_topo t;
    if (fx_topo_read(&t))
        fx_die(1, "hwloc could not read the topology");
    printf("cpu        %s (%s)\n", t.cpu_model, t.cpu_id);
    printf("topology   %d package(s), %d core(s), %d PU(s), %d NUMA node(s)\n", t.packages, t.cores,
           t.pus, t.numa_nodes);
    printf("caches     L1d %ld KiB, L2 %ld KiB x%d, L3 %ld KiB x%d\n", t.l1d_bytes / 1024,
           t.l2_bytes / 1024, t.l2_instances, t.l3_bytes / 1024, t.l3_instances);
    printf("isa        %s (kernels: %s)\n", t.isa[0] ? t.isa : "none of avx2/avx512/fma",
           t.best_isa);
    if (t.mhz > 0)
        printf("clock      %.0f MHz (%s)%s\n", t.mhz, t.mhz_source,
               t.scaling_enabled ? "; frequency scaling on (a cpufreq governor is not 'performance')" : "");
    printf("source     %s%s\n", fx_source_dir(),
           fx_source_dir_ok() ? "" : " (without the tutorial tensors: the tutorial size starts from random ones)");

    fx_gpu_info g;
    fx_err e = {{0}};
    if (fx_gpu_query(&g, &e) == 0)
        printf("gpu        %s, %d SMs, compute capability %d.%d, %.1f GiB, SM clock %d MHz, "
               "L2 %d KiB, CUDA runtime %d, driver %d\n",
               g.name, g.sms, g.cc_major, g.cc_minor, g.memory_gib, g.sm_clock_mhz, g.l2_kib,
               g.runtime_version, g.driver_version);
    else
        printf("gpu        none: %s\n", e.msg);

    if (peaks) {
        fx_peaks p;
        char binding[160];
        fx_setup_threads(0, binding, sizeof binding);
        fx_peaks_measure(&p, fx_core_count(), 0);
        for (int isa = 0; isa < 3; isa++)
            if (p.fma_gflops[isa][0] > 0)
                printf("peak       FMA %-7s %7.1f GFLOP/s on 1 thread, %7.1f on %d\n", fx_isa_names[isa],
                       p.fma_gflops[isa][0], p.fma_gflops[isa][1], p.threads_all);
        printf("peak       triad     %7.1f GB/s on 1 thread, %7.1f on %d (memory)\n", p.triad_gbs[0], p.triad_gbs[1],
               p.threads_all);
        if (p.triad_l2_gbs[0] > 0)
            printf("peak       triad     %7.1f GB/s on 1 thread, %7.1f on %d (in L2: %ld KiB per thread)\n",
                   p.triad_l2_gbs[0], p.triad_l2_gbs[1], p.threads_all, p.l2_bytes / 2 >> 10);

        if (p.cpu_note[0])
            printf("warning    %s\n", p.cpu_note);
        if (p.gpu)
            printf("peak       GPU FFMA %.1f TFLOP/s, copy %.0f GB/s\n", p.gpu_ffma_gflops * 1e-3, p.gpu_copy_gbs);
    }

    size_t n;
    const fx_backend *const *b = fx_backends(&n);
    puts("backends");
    for (size_t i = 0; i < n; i++) {
        const char *why = b[i]->unavailable ? b[i]->unavailable() : NULL;
        printf("  %-16s %-3s %s%s%s\n", b[i]->name, b[i]->device == FX_GPU ? "gpu" : "cpu",
               b[i]->summary, why ? " — unavailable: " : "", why ? why : "");
    }
    const char *missing[16];
    size_t nm = fx_backends_not_built(missing, 16);
    for (size_t i = 0; i < nm; i++)
        printf("  %-16s %-3s unavailable: %s\n", missing[i], fx_backend_device(missing[i]) == FX_GPU ? "gpu" : "cpu",
               fx_backend_not_built_why(missing[i]));
    return 0;
}
