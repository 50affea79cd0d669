/* openblas_kernel.h — the kernel OpenBLAS runs (openblas.c), shared with main.c and check.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernel by CPU model when it loads and does
 * not know every model: on the Xeon of one dev box (family 6 model 207) it fell back to Prescott,
 * an SSE3 kernel, 4.5x slower at 1024³ than its SkylakeX kernel on the same core; a baseline
 * that slow would make every ratio against it meaningless. So where OpenBLAS has chosen a kernel
 * without AVX2 on a CPU with AVX2 and FMA, fiftyx restarts itself once with OPENBLAS_CORETYPE
 * naming OpenBLAS's kernel for the CPU's ISA, and records both names in the backend's config.
 * A choice OpenBLAS makes for a CPU it knows (an AVX2 kernel on a Zen, say) is left alone. */
#ifndef FIFTYX_OPENBLAS_KERNEL_H
#define FIFTYX_OPENBLAS_KERNEL_H

/* set by fiftyx in its own environment when it forces the kernel (children inherit them) */
#define FX_OPENBLAS_SET "FIFTYX_OPENBLAS_CORETYPE"     /* the kernel it set */
#define FX_OPENBLAS_CHOSE "FIFTYX_OPENBLAS_FALLBACK"   /* what OpenBLAS had chosen */

/* The OPENBLAS_CORETYPE to force when OpenBLAS chose kernel `chosen` on a CPU with (avx2_fma)
 * AVX2 and FMA and (avx512) AVX-512 F, BW, DQ and VL: "SkylakeX" or "Haswell" where `chosen`
 * is one of OpenBLAS's kernels without AVX2 and the CPU has AVX2 and FMA; NULL otherwise. */
const char *fx_openblas_kernel_for(const char *chosen, int avx2_fma, int avx512);

/* Called first thing in main (after the user's OPENBLAS_CORETYPE is dropped): re-executes the
 * process with the kernel fx_openblas_kernel_for names, once; returns when nothing is to change
 * or FIFTYX_KEEP_OPENBLAS_ENV is set. */
void fx_openblas_fix_kernel(char **argv);
#endif
