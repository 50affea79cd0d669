"""fiftyx_results — reading results files (shared by tools/compare, tools/plot, tools/report).

A results file is Google Benchmark's JSON layout (context + benchmarks) with fiftyx's fields
beside theirs; context.fiftyx.schema_version says which layout of ours it follows."""
import json
import os
import sys

SCHEMA_VERSION = 1


class BadInput(Exception):
    """A file that cannot be used: the tools print one line and exit with status 2."""


def die(tool, msg):
    print(f"{tool}: {msg}", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror}")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: not valid JSON ({e})")
    if not isinstance(doc, dict) or not isinstance(doc.get("context"), dict) or not isinstance(doc.get("benchmarks"), list):
        raise BadInput(f"{path}: not a results file (needs 'context' and 'benchmarks')")
    fx = doc["context"].get("fiftyx")
    if not isinstance(fx, dict) or "schema_version" not in fx:
        raise BadInput(f"{path}: no context.fiftyx.schema_version: not a fiftyx results file")
    if fx["schema_version"] != SCHEMA_VERSION:
        raise BadInput(f"{path}: schema version {fx['schema_version']}, these tools read version {SCHEMA_VERSION}")
    for i, b in enumerate(doc["benchmarks"]):
        if not isinstance(b, dict) or not all(k in b for k in ("name", "real_time", "time_unit")):
            raise BadInput(f"{path}: benchmark #{i} lacks name, real_time or time_unit")
        if not isinstance(b["real_time"], (int, float)) or b["real_time"] <= 0:
            raise BadInput(f"{path}: benchmark {b['name']!r} has a bad real_time")
        if b["time_unit"] not in UNIT:
            raise BadInput(f"{path}: benchmark {b['name']!r} has unknown time_unit {b['time_unit']!r}")
    sp = doc.get("speedups", [])
    if not isinstance(sp, list):
        raise BadInput(f"{path}: 'speedups' is not a list")
    for i, x in enumerate(sp):
        if not isinstance(x, dict) or not all(isinstance(x.get(k), str) for k in ("size", "gpu", "cpu", "against")) \
                or not all(isinstance(x.get(k), (int, float)) and not isinstance(x.get(k), bool)
                           for k in ("speedup", "gpu_time_us")):
            raise BadInput(f"{path}: speedups #{i} lacks size/gpu/cpu/against or a numeric speedup/gpu_time_us")
    doc["_path"] = path
    return doc


UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(b):
    return b["real_time"] * UNIT[b["time_unit"]]


def machine_label(doc):
    """A short name for the machine: the GPU if it had one, else the CPU model and core count."""
    fx = doc["context"]["fiftyx"]
    gpu = fx.get("gpu")
    cpu = fx.get("cpu_model", "cpu")
    threads = fx.get("threads_all", doc["context"].get("num_cpus", "?"))
    if isinstance(gpu, dict) and gpu.get("name"):
        return f"{gpu['name']} + {cpu} x{threads}"
    return f"{cpu} x{threads}"


def row_label(b, sync=" (sync/step)"):
    """A row's backend as tables and plots name it: GPU rows by backend (and `sync` when the
    loss is read every step), CPU rows with their thread count."""
    backend = b.get("backend", b["name"])
    if b.get("device") == "gpu":
        return backend + (sync if b.get("sync_every_step") else "")
    return f"{backend} {b.get('cpu_threads', b.get('threads', 1))}T"


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def load_all(tool, paths):
    if not paths:
        die(tool, "no results files given")
    docs = []
    for p in paths:
        try:
            docs.append(load(p))
        except BadInput as e:
            die(tool, str(e))
    return docs


def base(path):
    return os.path.splitext(os.path.basename(path))[0]
