#!/usr/bin/env python3
"""vs_openblas — `cpu` against `openblas` within each fiftyx results file (the tables of
kernels/cpu/NOTES.md): per suite, size and thread count, both medians, cpu's GFLOP/s and % of
the measured peak, and the ratio openblas time / cpu time (> 1: cpu is faster). Within one
file only, since this machine drifts between runs. For a file of `bench --rounds R` it adds the
ratio round by round (the two rows of a round ran minutes apart at most): their median and range.

usage: kernels/cpu/vs_openblas.py RESULTS.json [...]"""
import json
import sys


def rows(path):
    with open(path) as f:
        doc = json.load(f)
    by = {}
    for b in doc["benchmarks"]:
        size = b["size"] + (f"/{b['kernel']}" if b.get("kernel") else "")  # kernels: one row per kernel
        by[(b["suite"], size, b["cpu_threads"], b["backend"])] = b
    out = []
    for (suite, size, threads, backend), b in sorted(by.items()):
        o = by.get((suite, size, threads, "openblas"))
        if backend != "cpu" or not o or o["time_unit"] != b["time_unit"]:
            continue
        unit = b["time_unit"]
        out.append(f"{suite:<4} {size:<28} {threads}T  cpu {b['real_time']:>11.2f} {unit} "
                   f"{b['gflops']:6.1f} GFLOP/s {b['pct_peak']:5.1f}%  openblas {o['real_time']:>11.2f} {unit} "
                   f"{o['gflops']:6.1f} GFLOP/s  ratio {o['real_time'] / b['real_time']:.3f}"
                   + per_round(b, o))
    return out


def per_round(b, o):
    rb, ro = b.get("round_times", []), o.get("round_times", [])
    if len(rb) < 2 or len(rb) != len(ro):
        return ""
    r = sorted(x / y for x, y in zip(ro, rb))
    n = len(r)
    med = r[n // 2] if n % 2 else (r[n // 2 - 1] + r[n // 2]) / 2
    return f"  (by round: median {med:.3f} [{r[0]:.3f}..{r[-1]:.3f}] of {n})"


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    for path in argv:
        try:
            lines = rows(path)
        except (OSError, ValueError, KeyError) as e:
            print(f"vs_openblas: {path}: {e}", file=sys.stderr)
            return 2
        print(f"# {path}")
        print("\n".join(lines) if lines else "(no cpu/openblas pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
