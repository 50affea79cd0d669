/* topo.h — the machine as hwloc sees it, the ISA this CPU runs, and thread pinning. */
#ifndef FIFTYX_TOPO_H
#define FIFTYX_TOPO_H
#include <stddef.h>

typedef struct {
    int packages, cores, pus, numa_nodes;
    long l1d_bytes, l2_bytes, l3_bytes; /* per instance, of the first core */
    int l2_instances, l3_instances;
    char cpu_model[128];
    char cpu_id[64]; /* "<vendor> family F model M stepping S" (hwloc's CPUVendor, CPUFamilyNumber, ...):
                      * VMs often name every CPU "Intel(R) Xeon(R) Processor" */
    char isa[64];   /* "avx512f avx512bw ... avx2 fma" as supported here */
    char best_isa[16]; /* avx512 | avx2 | generic */
    double mhz;     /* the CPU's clock in MHz (0 if unknown), from mhz_source */
    const char *mhz_source; /* cpufreq's base_frequency (nominal) or cpuinfo_max_freq (maximum), or
                             * /proc/cpuinfo's cpu MHz (the clock when read; a VM's is fixed) */
    int scaling_enabled;    /* Google Benchmark's rule: some CPU's cpufreq governor is not "performance" */
} fx_topo;

int fx_topo_read(fx_topo *t);
/* Binds OpenMP thread i (of `threads`) to core i, once per thread count; describes the binding.
 * Cores are those of the CPUs the process was started on (taskset, a batch system's binding). */
int fx_pin_threads(int threads, char *desc, size_t desc_len);
/* The core count: hwloc cores among the CPUs the process was started on, at least 1. */
int fx_core_count(void);
/* The OS index of the last of those CPUs (what taskset -c names), or -1 when unknown. */
int fx_last_cpu(void);
#endif
