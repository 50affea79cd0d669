#!/usr/bin/env python3
"""pytorch_step.py — the tutorial's training step in PyTorch, timed like fiftyx times its own.

usage: python3 tools/pytorch_step.py [--size LIST] [--threads LIST] [--out FILE] [--budget S] [--quick]

The PyTorch peer of `fiftyx bench --suite step`: the same two-layer ReLU net with manual
backward and SGD, written as the tutorial writes it, run
  pytorch-cpu            eager on the CPU, at each thread count (torch.set_num_threads)
  pytorch-cuda-eager     eager on the GPU; losses read back once per repetition
  pytorch-cuda-eager …/sync_every_step   the same with loss.item() every step, as the tutorial
  pytorch-cuda-graph     one step captured in a CUDA graph, replayed
and writes a results file in fiftyx's layout, so tools/compare and tools/plot put PyTorch beside
fiftyx. The tutorial size starts from reference/data/tutorial (the tutorial's own tensors);
other sizes from torch.manual_seed(0). lr = min(1e-6, 6.4/(N·H·D_in)), as in fiftyx (1e-6 at the tutorial).
Validation: the first loss against a float64 evaluation of the same forward pass (rel. 1e-3).
Timing: warm-up, repetitions of up to 500 steps until 0.5 s (at least 5), median per step;
CUDA events on the GPU. Bad arguments (checked before torch is imported) or no torch: one line on
stderr, exit 2. The results file is written atomically after each size."""
import glob
import json
import math
import os
import platform
import re
import socket
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fiftyx_results as fr  # noqa: E402

SCHEMA_VERSION = 1
TUTORIAL = (64, 1000, 100, 10)
DEFAULT_SIZES = ["64x1000x100x10", "256x1000x100x10", "256x4096x1024x256", "1024x4096x4096x1024"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg, status=2):
    print(f"pytorch_step: {msg}", file=sys.stderr)
    sys.exit(status)


MAX_DIM, MAX_ELEMS = 1 << 24, 1 << 32  # fiftyx's limits (harness/cli.h: FX_MAX_DIM, FX_MAX_ELEMS)
INTEGER = re.compile(r"[0-9]{1,9}")  # ASCII digits: int() would take '١' and ' 1'
DECIMAL = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.")


def parse_size(s):
    parts = s.split("x")
    if len(parts) != 4 or not all(INTEGER.fullmatch(p) and 0 < int(p) <= MAX_DIM for p in parts):
        die(f"--size {s!r}: expected NxD_INxHxD_OUT with dimensions from 1 to {MAX_DIM}")
    n, din, h, dout = size = tuple(int(p) for p in parts)
    if max(n * din, n * dout, din * h, n * h, h * dout) > MAX_ELEMS:
        die(f"--size {s}: a tensor of more than {MAX_ELEMS} elements")
    return size


def parse_threads(s):
    ncpu = os.cpu_count() or 1
    items = s.split(",")
    if not all(INTEGER.fullmatch(t) and 1 <= int(t) <= ncpu for t in items):
        die(f"--threads {s!r}: expected a list of thread counts from 1 to {ncpu} (this machine's CPUs)")
    return sorted({int(t) for t in items})


def check_out(out):
    """Before any work: the results file can be written (a regular file, in a writable directory)."""
    if os.path.isdir(out):
        die(f"--out {out}: is a directory")
    if os.path.lexists(out) and not os.path.isfile(out):
        die(f"--out {out}: exists and is not a regular file")
    try:
        fr.check_writable(os.path.dirname(out) or ".")
    except fr.BadInput as e:
        die(f"--out {out}: {e}")


def load_npy_f32(torch, path):
    """A tiny .npy reader (version 1.0-3.0, '<f4', C order): no numpy needed."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        die(f"{path}: not a .npy file")
    major = data[6]
    hlen, off = (struct.unpack("<H", data[8:10])[0], 10) if major == 1 else (struct.unpack("<I", data[8:12])[0], 12)
    header = data[off:off + hlen].decode("latin1")
    if "'<f4'" not in header or "True" in header:
        die(f"{path}: expected a C-order '<f4' array")
    shape = tuple(int(v) for v in header.split("(")[1].split(")")[0].split(",") if v.strip())
    buf = bytearray(data[off + hlen:])
    return torch.frombuffer(buf, dtype=torch.float32).reshape(shape).clone()


def initial_tensors(torch, size):
    if size == TUTORIAL:
        d = os.path.join(ROOT, "reference", "data", "tutorial")
        return [load_npy_f32(torch, os.path.join(d, f"{n}.npy")) for n in ("x", "y", "w1", "w2")]
    n, din, h, dout = size
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*s, generator=g) for s in ((n, din), (n, dout), (din, h), (h, dout))]


def step(x, y, w1, w2, lr):
    """The tutorial's loop body, line by line."""
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)
    loss = (y_pred - y).pow(2).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)
    w1 -= lr * grad_w1
    w2 -= lr * grad_w2
    return loss


def first_loss_f64(torch, init):
    x, y, w1, w2 = (t.double() for t in init)
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    return float((y_pred - y).pow(2).sum())


def time_case(run, budget, max_iters=500, rep_time=0.05, min_time=0.5, min_reps=5):
    """run(k) performs k steps and returns (seconds, last loss). Same policy as fiftyx's timing.h."""
    t0 = time.monotonic()
    t1, first = run(1)
    iters = max(1, min(max_iters, int(rep_time / t1) + 1 if t1 > 0 else max_iters))
    if iters > 1:
        run(iters)
    samples, cpu, spent = [], [], 0.0
    while len(samples) < 1000 and (len(samples) < min_reps or spent < min_time):
        if samples and time.monotonic() - t0 > budget:
            break
        c0 = time.process_time()  # the process's CPU time, all threads (as fiftyx's cpu_time)
        t, _ = run(iters)
        cpu.append((time.process_time() - c0) / iters)
        samples.append(t / iters)
        spent += t
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "reps": len(samples),
            "cpu_median": statistics.median(cpu),
            "iters": iters, "first_loss": first, "wall": time.monotonic() - t0}


def cpu_runner(torch, init, lr):
    x, y, w1, w2 = (t.clone() for t in init)

    def run(k):
        t0 = time.perf_counter()
        loss = None
        for _ in range(k):
            loss = step(x, y, w1, w2, lr)
        v = float(loss)
        return time.perf_counter() - t0, v
    return run


def cuda_eager_runner(torch, init, lr, sync_every_step):
    x, y, w1, w2 = (t.cuda() for t in init)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run(k):
        losses = []
        e0.record()
        for _ in range(k):
            loss = step(x, y, w1, w2, lr)
            losses.append(loss.item() if sync_every_step else loss)
        e1.record()
        e1.synchronize()
        last = losses[-1] if sync_every_step else float(torch.stack(losses)[-1])
        return e0.elapsed_time(e1) * 1e-3, last
    return run


def cuda_graph_runner(torch, init, lr):
    x, y, w1, w2 = (t.cuda() for t in init)
    w1_0, w2_0 = w1.clone(), w2.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm up on a side stream before capture, as the docs advise
        for _ in range(3):
            step(x, y, w1, w2, lr)
    torch.cuda.current_stream().wait_stream(s)
    w1.copy_(w1_0)
    w2.copy_(w2_0)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_loss = step(x, y, w1, w2, lr)
    w1.copy_(w1_0)  # capture does not execute; start the timed run from the initial weights
    w2.copy_(w2_0)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run(k):
        e0.record()
        for _ in range(k):
            g.replay()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) * 1e-3, float(static_loss)
    return run


def flops(size):
    n, din, h, dout = size
    return 2.0 * (2.0 * n * din * h + 3.0 * n * h * dout)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_clock():
    """As fiftyx bench reads them: the clock in MHz (cpufreq's base_frequency, the nominal one,
    else its cpuinfo_max_freq, else /proc/cpuinfo's cpu MHz; 0 if unknown) and Google Benchmark's
    cpu_scaling_enabled (a governor other than 'performance' on some CPU of sysfs)."""
    mhz = 0.0
    for name in ("base_frequency", "cpuinfo_max_freq"):
        try:
            with open(f"/sys/devices/system/cpu/cpu0/cpufreq/{name}") as f:
                mhz = float(f.read().strip()) / 1000
        except (OSError, ValueError):
            mhz = 0.0
        if mhz > 0:
            break
    if mhz <= 0:
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("cpu MHz"):
                        mhz = float(line.split(":", 1)[1])
                        break
        except (OSError, ValueError):
            mhz = 0.0
    scaling = False
    for gov in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            with open(gov) as f:
                scaling = scaling or f.read().strip() != "performance"
        except OSError:
            pass
    return mhz, scaling


def git_version():
    """As fiftyx bench records it: FIFTYX_GIT_SHA (trees copied without .git), else the source
    tree's HEAD, 12 hex digits, with -dirty when tracked files differ from it; "unknown" without git."""
    env = os.environ.get("FIFTYX_GIT_SHA", "")
    if env:
        return env
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", src, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        changes = subprocess.run(["git", "-C", src, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0 or changes.returncode != 0 or not head.stdout.strip():
        return "unknown"
    return head.stdout.strip() + ("-dirty" if changes.stdout.strip() else "")


def core_count():
    """Physical cores this process may use (one thread per core, as fiftyx pins them)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{c}/topology/core_cpus_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(c))
    return max(1, len(cores))


def main(argv):
    if "--help" in argv or "-h" in argv:
        print(__doc__)
        return 0
    opts = {"--size": None, "--threads": None, "--out": None, "--budget": "20"}
    given = set()
    quick = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--quick":
            quick = True
        elif a in opts:
            if i + 1 >= len(argv) or not argv[i + 1]:
                die(f"option {a} needs a value")
            if a in given:
                die(f"option {a} given twice")
            given.add(a)
            opts[a] = argv[i + 1]
            i += 1
        else:
            die(f"unknown option {a!r} (see --help)")
        i += 1
    sizes = [parse_size(s) for s in (opts["--size"] or ",".join(DEFAULT_SIZES[:2] if quick else DEFAULT_SIZES)).split(",")]
    try:  # plain ASCII decimal, as fiftyx takes it: float() would take ' 5', '5_0' and '５'
        assert DECIMAL.fullmatch(opts["--budget"])
        budget = float(opts["--budget"])
        assert math.isfinite(budget) and budget > 0
    except (ValueError, AssertionError):
        die(f"--budget {opts['--budget']!r}: expected a positive number of seconds")
    ncpu = core_count()
    threads = parse_threads(opts["--threads"] or f"1,{ncpu}")
    out = opts["--out"]
    if out:
        check_out(out)
    git = git_version()  # before torch starts its threads
    try:
        import torch
    except ImportError as e:
        die(f"PyTorch is not importable here ({e}); nothing to time")
    has_cuda = torch.cuda.is_available()
    if not out:  # as fiftyx bench names its files: <host>-<cpu>-<cores>c[-<gpu>]-pytorch-<UTC>.json
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = fr.results_stem(socket.gethostname(), cpu_model(), ncpu, torch.cuda.get_device_name(0) if has_cuda else None)
        try:
            os.makedirs("results", exist_ok=True)
        except OSError as e:
            die(f"results/: cannot create it ({e.strerror}); give --out")
        out = os.path.join("results", f"{name}-pytorch-{stamp}.json")
        check_out(out)

    def write_results(sizes_done):
        """Writes the file (atomically) with the sizes done so far: a run cut short keeps them."""
        # The tutorial's own claim, measured with its own code: PyTorch GPU over PyTorch CPU.
        speedups, verdict = [], ["Verdict (PyTorch's own step, GPU over CPU; medians):"]
        for size in sizes_done:
            sname = "x".join(str(v) for v in size)
            at = [r for r in rows if r["size"] == sname and r["validated"]]
            gpu = min((r for r in at if r["device"] == "gpu" and not r["sync_every_step"]), key=lambda r: r["real_time"], default=None)
            c1 = next((r for r in at if r["device"] == "cpu" and r["cpu_threads"] == 1), None)
            call = next((r for r in at if r["device"] == "cpu" and r["cpu_threads"] == max(threads)), None)
            if not gpu:
                verdict.append(f"  {sname}: no GPU here")
                continue
            line = f"  {sname}: {gpu['backend']} {gpu['real_time']:.1f} us/step"
            for cpu, against in ((c1, "pytorch-cpu-1-thread"), (call, "pytorch-cpu-all-cores")):
                if cpu:
                    s = cpu["real_time"] / gpu["real_time"]
                    speedups.append({"size": sname, "flops_per_step": flops(size), "gpu": gpu["backend"],
                                     "gpu_time_us": gpu["real_time"], "cpu": cpu["backend"], "cpu_threads": cpu["cpu_threads"],
                                     "cpu_time_us": cpu["real_time"], "against": against, "speedup": s})
                    line += f"; {s:.1f}x {against}"
            verdict.append(line)

        gpu_info = None
        if has_cuda:
            p = torch.cuda.get_device_properties(0)
            gpu_info = {"name": p.name, "sms": p.multi_processor_count, "cc": f"{p.major}.{p.minor}",
                        "memory_gib": p.total_memory / 2**30}
        mhz, scaling = cpu_clock()
        doc = {
            "context": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host_name": socket.gethostname(),
                "executable": "tools/pytorch_step.py", "num_cpus": ncpu, "mhz_per_cpu": mhz, "cpu_scaling_enabled": scaling,
                "caches": [], "load_avg": list(os.getloadavg()), "library_build_type": "release", "library_version": f"PyTorch {torch.__version__}", "json_schema_version": 1,
                "fiftyx": {"schema_version": SCHEMA_VERSION, "cpu_model": cpu_model(), "threads_all": max(threads),
                           "git": git,
                           "gpu": gpu_info, "peer": f"PyTorch {torch.__version__}", "quick": quick,
                           "complete": len(sizes_done) == len(sizes), "cases_done": len(rows),
                           "command": ["tools/pytorch_step.py"] + argv, "budget_s": budget,
                           "backends": {"pytorch-cpu": {"device": "cpu", "summary": "PyTorch eager on the CPU",
                                                        "config": f"torch {torch.__version__}, {torch.__config__.parallel_info().splitlines()[0] if hasattr(torch.__config__, 'parallel_info') else ''}"},
                                        "pytorch-cuda-eager": {"device": "gpu", "summary": "PyTorch eager on the GPU",
                                                               "config": f"torch {torch.__version__}, CUDA {torch.version.cuda}"},
                                        "pytorch-cuda-graph": {"device": "gpu", "summary": "one step captured in a CUDA graph",
                                                               "config": f"torch {torch.__version__}, CUDA {torch.version.cuda}"}}},
            },
            "benchmarks": rows, "not_run": [], "speedups": speedups, "verdict": "\n".join(verdict) + "\n",
        }
        fr.write_atomic(out, (json.dumps(doc, indent=2) + "\n").encode())  # BadInput: one line, exit 2
        return verdict

    rows, index = [], 0
    for si, size in enumerate(sizes):
        try:  # a size this machine cannot hold: PyTorch's RuntimeError, not a traceback
            lr = min(1e-6, 6.4 / (size[0] * size[2] * size[1]))
            init = initial_tensors(torch, size)
            ref = first_loss_f64(torch, init)
            sname = "x".join(str(v) for v in size)
            cases = [(f"step/pytorch-cpu/{sname}/threads:{t}", "pytorch-cpu", "cpu", t, False) for t in threads]
            if has_cuda:
                cases += [(f"step/pytorch-cuda-eager/{sname}", "pytorch-cuda-eager", "gpu", 0, False),
                          (f"step/pytorch-cuda-eager/{sname}/sync_every_step", "pytorch-cuda-eager", "gpu", 0, True),
                          (f"step/pytorch-cuda-graph/{sname}", "pytorch-cuda-graph", "gpu", 0, False)]
            for name, backend, device, t, sync in cases:
                print(f"pytorch_step: {name}", file=sys.stderr, flush=True)
                if device == "cpu":
                    torch.set_num_threads(t)
                    run = cpu_runner(torch, init, lr)
                elif backend == "pytorch-cuda-graph":
                    run = cuda_graph_runner(torch, init, lr)
                else:
                    run = cuda_eager_runner(torch, init, lr, sync)
                r = time_case(run, budget)
                err = abs(r["first_loss"] - ref) / abs(ref)
                rows.append({
                    "name": name, "family_index": index, "per_family_instance_index": 0, "run_name": name,
                    "run_type": "iteration", "repetitions": r["reps"], "repetition_index": 0, "threads": max(t, 1),
                    "iterations": r["iters"], "real_time": r["median"] * 1e6, "cpu_time": r["cpu_median"] * 1e6,
                    "time_unit": "us", "suite": "step", "backend": backend, "device": device, "size": sname,
                    "cpu_threads": t, "flops_per_iteration": flops(size), "gflops": flops(size) / r["median"] * 1e-9,
                    "min_time": r["min"] * 1e6, "max_time": r["max"] * 1e6, "validated": err <= 1e-3,
                    "validation": "first loss vs a float64 forward pass", "max_rel_err": err,
                    "iterations_per_repetition": r["iters"], "case_wall_s": r["wall"], "lr": lr,
                    "sync_every_step": sync})
                index += 1
                print(f"    {r['median'] * 1e6:.2f} us/step, first loss rel. err {err:.2g}", file=sys.stderr)
        except (RuntimeError, MemoryError) as e:
            why = (str(e).splitlines() or [type(e).__name__])[0]
            die(f"{'x'.join(map(str, size))}: PyTorch failed ({why})" + (f"; the sizes before it are in {out}" if si else ""), 1)
        verdict = write_results(sizes[:si + 1])

    print("\n".join(verdict))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    fr.run("pytorch_step", main)
