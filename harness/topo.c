/* topo.c — see topo.h. hwloc for the topology and binding; cpuid (via gcc) for the ISA. */
#include <dirent.h>
#include <hwloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "topo.h"

static hwloc_topology_t topo;

static hwloc_topology_t get_topology(void)
{
    if (!topo) {
        if (hwloc_topology_init(&topo) || hwloc_topology_load(topo)) {
            topo = NULL;
            return NULL;
        }
        /* Only the CPUs this process was started on (taskset, numactl, a batch system's
         * binding) count as cores here: threads are pinned among them, and "all cores" means
         * them. Read once, before any thread of ours is bound. */
        hwloc_bitmap_t mine = hwloc_bitmap_alloc();
        if (mine && !hwloc_get_cpubind(topo, mine, HWLOC_CPUBIND_PROCESS) && !hwloc_bitmap_iszero(mine) &&
            !hwloc_bitmap_isincluded(hwloc_topology_get_topology_cpuset(topo), mine))
            hwloc_topology_restrict(topo, mine, 0);
        hwloc_bitmap_free(mine);
    }
    return topo;
}

static long cache_size(hwloc_topology_t t, hwloc_obj_type_t type, int *instances)
{
    int n = hwloc_get_nbobjs_by_type(t, type);
    if (instances)
        *instances = n;
    hwloc_obj_t o = hwloc_get_obj_by_type(t, type, 0);
    return o && o->attr ? (long)o->attr->cache.size : 0;
}

static double cpuinfo_mhz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0;
    char line[256];
    double mhz = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7)) {
            const char *c = strchr(line, ':');
            if (c)
                mhz = atof(c + 1);
            break;
        }
    fclose(f);
    return mhz;
}

/* The first line of a small file (sysfs), or "" */
static void read_line(const char *path, char *buf, size_t len)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(buf, (int)len, f))
        buf[0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    fclose(f);
}

/* Google Benchmark's cpu_scaling_enabled: a cpufreq governor other than "performance" on some
 * CPU — every cpuN of sysfs, whatever the numbering (no cpufreq at all, as in most VMs: not
 * enabled) */
static int scaling_enabled(void)
{
    DIR *d = opendir("/sys/devices/system/cpu");
    if (!d)
        return 0;
    int on = 0;
    struct dirent *e;
    while (!on && (e = readdir(d)))
        if (!strncmp(e->d_name, "cpu", 3) && e->d_name[3] >= '0' && e->d_name[3] <= '9' &&
            strspn(e->d_name + 3, "0123456789") == strlen(e->d_name + 3)) {
            char path[320], gov[64];
            snprintf(path, sizeof path, "/sys/devices/system/cpu/%.200s/cpufreq/scaling_governor", e->d_name);
            read_line(path, gov, sizeof gov);
            on = gov[0] && strcmp(gov, "performance");
        }
    closedir(d);
    return on;
}

int fx_topo_read(fx_topo *t)
{
    memset(t, 0, sizeof *t);
    hwloc_topology_t h = get_topology();
    if (!h)
        return -1;
    t->packages = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PACKAGE);
    t->cores = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_CORE);
    t->pus = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PU);
    t->numa_nodes = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE);
    t->l1d_bytes = cache_size(h, HWLOC_OBJ_L1CACHE, NULL);
    t->l2_bytes = cache_size(h, HWLOC_OBJ_L2CACHE, &t->l2_instances);
    t->l3_bytes = cache_size(h, HWLOC_OBJ_L3CACHE, &t->l3_instances);
    hwloc_obj_t pkg = hwloc_get_obj_by_type(h, HWLOC_OBJ_PACKAGE, 0);
    const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
    snprintf(t->cpu_model, sizeof t->cpu_model, "%s", model ? model : "unknown");
    const char *vendor = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUVendor") : NULL,
               *fam = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUFamilyNumber") : NULL,
               *num = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModelNumber") : NULL,
               *step = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUStepping") : NULL;
    snprintf(t->cpu_id, sizeof t->cpu_id, "%s family %s model %s stepping %s", vendor ? vendor : "unknown",
             fam ? fam : "?", num ? num : "?", step ? step : "?");
    /* the nominal clock where cpufreq gives it (intel_pstate: base_frequency); its maximum (turbo
     * included, under intel_pstate and amd-pstate) otherwise; else /proc/cpuinfo */
    static const struct {
        const char *file, *source;
    } freq[] = {{"base_frequency", "cpufreq base_frequency (nominal)"},
                {"cpuinfo_max_freq", "cpufreq cpuinfo_max_freq (maximum, turbo included)"}};
    for (size_t i = 0; i < sizeof freq / sizeof freq[0] && t->mhz <= 0; i++) {
        char path[128], khz[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cpufreq/%s", freq[i].file);
        read_line(path, khz, sizeof khz);
        t->mhz = atof(khz) / 1000;
        t->mhz_source = freq[i].source;
    }
    if (t->mhz <= 0) {
        t->mhz = cpuinfo_mhz();
        t->mhz_source = "/proc/cpuinfo cpu MHz";
    }
    t->scaling_enabled = scaling_enabled();

    __builtin_cpu_init();
    static const char *const feats[] = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"};
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
        int has = 0;
        switch (i) { /* __builtin_cpu_supports needs a literal */
        case 0: has = __builtin_cpu_supports("avx512f"); break;
        case 1: has = __builtin_cpu_supports("avx512bw"); break;
        case 2: has = __builtin_cpu_supports("avx512vl"); break;
        case 3: has = __builtin_cpu_supports("avx512dq"); break;
        case 4: has = __builtin_cpu_supports("avx2"); break;
        case 5: has = __builtin_cpu_supports("fma"); break;
        }
        if (has) {
            if (t->isa[0])
                strncat(t->isa, " ", sizeof t->isa - strlen(t->isa) - 1);
            strncat(t->isa, feats[i], sizeof t->isa - strlen(t->isa) - 1);
        }
    }
    const char *best = "generic";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        best = "avx512";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        best = "avx2";
    snprintf(t->best_isa, sizeof t->best_isa, "%s", best);
    return 0;
}

int fx_core_count(void)
{
    hwloc_topology_t h = get_topology();
    int n = h ? hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_CORE) : 0;
    return n > 0 ? n : 1;
}

int fx_last_cpu(void)
{
    hwloc_topology_t h = get_topology();
    int n = h ? hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PU) : 0;
    hwloc_obj_t pu = n > 0 ? hwloc_get_obj_by_type(h, HWLOC_OBJ_PU, (unsigned)(n - 1)) : NULL;
    return pu ? (int)pu->os_index : -1;
}

int fx_pin_threads(int threads, char *desc, size_t desc_len)
{
    hwloc_topology_t h = get_topology();
    int cores = fx_core_count();
    if (!h) {
        snprintf(desc, desc_len, "unpinned (hwloc failed to load the topology)");
        return -1;
    }
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failed)
    {
        int i = omp_get_thread_num();
        hwloc_obj_t core = hwloc_get_obj_by_type(h, HWLOC_OBJ_CORE, (unsigned)(i % cores));
        if (!core || hwloc_set_cpubind(h, core->cpuset, HWLOC_CPUBIND_THREAD))
            failed++;
    }
    if (failed) {
        snprintf(desc, desc_len, "unpinned (%d of %d threads could not be bound)", failed, threads);
        return -1;
    }
    /* the operating system's numbers of the CPUs used (what taskset and /proc show), not hwloc's
     * logical ones: under `taskset -c 1`, logical core 0 is CPU 1 */
    hwloc_bitmap_t used = hwloc_bitmap_alloc();
    char cpus[96] = "?";
    if (used) {
        for (int i = 0; i < threads && i < cores; i++) {
            hwloc_obj_t core = hwloc_get_obj_by_type(h, HWLOC_OBJ_CORE, (unsigned)i);
            if (core)
                hwloc_bitmap_or(used, used, core->cpuset);
        }
        hwloc_bitmap_list_snprintf(cpus, sizeof cpus, used);
        hwloc_bitmap_free(used);
    }
    if (threads <= cores)
        snprintf(desc, desc_len, "%d OpenMP thread%s, one per core (hwloc), CPUs %s", threads, threads == 1 ? "" : "s",
                 cpus);
    else
        snprintf(desc, desc_len, "%d OpenMP threads on %d cores (hwloc: thread i on core i mod %d), CPUs %s", threads,
                 cores, cores, cpus);
    return 0;
}
