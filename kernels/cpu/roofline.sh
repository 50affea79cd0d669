#!/bin/sh
# roofline.sh — the bounds of kernels/cpu/NOTES.md: for each case, its FLOPs and the fewest
# bytes it must move, over the peaks this machine measures (`fiftyx info --peaks`: FMA GFLOP/s
# of the best ISA and STREAM-triad GB/s, one thread and all cores).
#   usage: kernels/cpu/roofline.sh [path/to/fiftyx]     (default build/fiftyx)
# A GEMM M×N×K must read A and B and write C once: 4(MK + KN + MN) bytes. A training step
# must read x and y and read and write both weights: 4(N·D_in + N·D_out + 2(D_in·H + H·D_out)).
# Below those the data cannot move; at the measured peak rate the FLOPs cannot go faster.
# "bound" names the larger of the two times. Cases that fit in cache (the tutorial: ~1 MB)
# repeat on data already in L2, so for them only the compute bound is real.
set -e
fx=${1:-build/fiftyx}
"$fx" info --peaks | awk '
/^peak +FMA/ && !f1 { f1 = $4 + 0; f2 = $9 + 0 }      # first FMA line: the best ISA here
/^peak +triad/      { b1 = $3 + 0; b2 = $8 + 0 }
END {
    if (!f1 || !b1) { print "roofline.sh: no peaks in fiftyx info --peaks" > "/dev/stderr"; exit 1 }
    printf "peaks: FMA %.1f GFLOP/s (1 thread), %.1f (all cores); triad %.1f GB/s, %.1f\n\n", f1, f2, b1, b2
    printf "%-26s %10s %10s %7s %11s %11s %11s %11s %8s\n", "case", "MFLOP", "min MB", "FLOP/B",
           "t_fma 1T", "t_fma all", "t_mem 1T", "t_mem all", "bound"
    gemm("gemm 2048^3", 2048, 2048, 2048); gemm("gemm 4096^3", 4096, 4096, 4096)
    gemm("gemm 64x100x1000 (x.w1)", 64, 100, 1000); gemm("gemm 64x10x100 (h.w2)", 64, 10, 100)
    gemm("gemm 100x10x64 (h^T.g)", 100, 10, 64); gemm("gemm 64x100x10 (g.w2^T)", 64, 100, 10)
    gemm("gemm 1000x100x64 (x^T.gh)", 1000, 100, 64)
    step(64, 1000, 100, 10); step(256, 1000, 100, 10); step(256, 4096, 1024, 256)
    step(1024, 4096, 4096, 1024); step(4096, 8192, 8192, 1024)
}
function us(s) { return s < 1e-3 ? sprintf("%.1f us", s * 1e6) : s < 1 ? sprintf("%.2f ms", s * 1e3) : sprintf("%.2f s", s) }
function row(name, flops, bytes) {
    printf "%-26s %10.1f %10.2f %7.1f %11s %11s %11s %11s %8s\n", name, flops / 1e6, bytes / 1e6, flops / bytes,
           us(flops / (f1 * 1e9)), us(flops / (f2 * 1e9)), us(bytes / (b1 * 1e9)), us(bytes / (b2 * 1e9)),
           (flops / (f1 * 1e9) > bytes / (b1 * 1e9) ? "FMA" : "memory")
}
function gemm(name, m, n, k) { row(name, 2 * m * n * k, 4 * (m * k + k * n + m * n)) }
function step(n, d, h, o) {
    row(sprintf("step %dx%dx%dx%d", n, d, h, o), 2 * (2 * n * d * h + 3 * n * h * o), 4 * (n * d + n * o + 2 * (d * h + h * o)))
}'
