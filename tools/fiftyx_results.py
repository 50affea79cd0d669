"""fiftyx_results — reading results files (shared by tools/compare, tools/plot, tools/report).

A results file is Google Benchmark's JSON layout (context + benchmarks) with fiftyx's fields
beside theirs; context.fiftyx.schema_version says which layout of ours it follows.
load() checks the type and range of every field a tool reads, so that the tools themselves can
trust what they get: a bad file is one line naming the file and the field, exit status 2."""
import json
import os
import re
import signal
import stat
import sys
import tempfile

SCHEMA_VERSION = 1
MAX_DIM = 1 << 24  # harness/cli.h: FX_MAX_DIM
UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class BadInput(Exception):
    """A file or argument that cannot be used: the tools print one line and exit with status 2."""


def run(tool, main):
    """Runs main(argv) as `tool`: BadInput, and a failed write to stdout (a full disk, /dev/full),
    end as one line on stderr and exit status 2."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    sys.stdout.reconfigure(errors="backslashreplace")  # file names that are not UTF-8
    try:
        try:
            status = main(sys.argv[1:])
        except BadInput as e:
            print(f"{tool}: {one_line(str(e))}", file=sys.stderr)
            status = 2
        sys.stdout.flush()
    except OSError as e:  # every file but stdout is opened under a BadInput of its own
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        print(f"{tool}: {one_line(str(e.filename or 'standard output'))}: {e.strerror}", file=sys.stderr)
        status = 2
    sys.exit(status)


def one_line(s):
    return s.replace("\r", "\\r").replace("\n", "\\n")


def parse_args(argv, flags=(), values=()):
    """argv as ({option: value or True}, [file, ...]); --help and -h come back as "--help".
    An unknown, repeated or empty option raises BadInput."""
    opts, paths = {}, []
    i = 0
    while i < len(argv):
        a = "--help" if argv[i] == "-h" else argv[i]
        if a in opts:
            raise BadInput(f"{a} given twice")
        if a in values:
            if i + 1 >= len(argv) or not argv[i + 1]:
                raise BadInput(f"{a} needs a value")
            opts[a] = argv[i + 1]
            i += 1
        elif a in flags or a == "--help":
            opts[a] = True
        elif a.startswith("-"):
            raise BadInput(f"unknown option {a!r} (see --help)")
        else:
            paths.append(a)
        i += 1
    return opts, paths


MAX_TEXT_BYTES = 256 << 20  # far above any results file or README; bounds what a read may take


def read_text(path):
    """A file's text, decoded as UTF-8; BadInput if it cannot be read, is not a regular file (a
    FIFO would block, a device never end), is over MAX_TEXT_BYTES, or is not UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO cannot block the open
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadInput(f"{path}: not a regular file")
            if st.st_size > MAX_TEXT_BYTES:
                raise BadInput(f"{path}: {st.st_size} bytes, more than any results file ({MAX_TEXT_BYTES} at most)")
            data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        raise BadInput(f"{path}: {e.strerror}")
    if len(data) > MAX_TEXT_BYTES:
        raise BadInput(f"{path}: grew past {MAX_TEXT_BYTES} bytes while being read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})")


def results_stem(host, cpu_model, cores, gpu=None):
    """The default results file's stem, <host>-<cpu>-<cores>c[-<gpu>], by harness/bench.c's
    fx_results_stem rule: the CPU model without "(R)", "(TM)", " Processor", " CPU", then every
    run of characters other than ASCII letters and digits as one '-', none at either end."""
    model = cpu_model
    for word in ("(R)", "(r)", "(TM)", "(tm)", " Processor", " CPU"):
        while word in model:
            model = model.replace(word, "", 1)
    name = f"{host}-{model}-{cores}c" + (f"-{gpu}" if gpu else "")
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def check_writable(directory):
    """BadInput unless a file can be created in `directory` (checked before any work is done)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fiftyx-probe.tmp.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise BadInput(f"{directory}: cannot write files there ({e.strerror})")


def write_atomic(path, data):
    """Writes bytes to path through a temporary file beside it and a rename: the file is whole or
    as it was, and no temporary file is left, whatever fails (BadInput). A symbolic link is
    written through (its target replaced, the link kept), as harness/atomic_file.c does."""
    tmp = None
    path = os.path.realpath(path)
    try:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)  # keep a file's permissions
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        name = os.path.basename(path)[:100]  # NAME.tmp.XXXXXXXX, as harness/atomic_file.c names them
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f"{name}.tmp.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise BadInput(f"{path}: cannot write: {e.strerror}")


# ---- what each field may hold (the docstring says it in the error message) ---------------------

def text(v):
    "a string without control characters"
    return isinstance(v, str) and not any(c < " " or c == "\x7f" for c in v)


def texts(v):
    "a list of strings without control characters"
    return isinstance(v, list) and all(text(x) for x in v)


def string(v):
    "a string"
    return isinstance(v, str)


def number(v):
    "a finite number"
    return type(v) in (int, float) and -1e300 < v < 1e300  # not true/false, NaN or Infinity


def positive(v):
    "a positive finite number"
    return number(v) and v > 1e-300  # a time in seconds stays > 0: ratios never divide by zero


def nonnegative(v):
    "a finite number >= 0"
    return number(v) and v >= 0


def count(v):
    "an integer >= 0"
    return type(v) is int and v >= 0


def flag(v):
    "true or false"
    return type(v) is bool


def obj(v):
    "an object"
    return isinstance(v, dict)


def array(v):
    "a list"
    return isinstance(v, list)


def obj_or_null(v):
    "an object or null"
    return v is None or isinstance(v, dict)


def unit(v):
    "one of ns, us, ms, s"
    return isinstance(v, str) and v in UNIT


def device(v):
    "cpu or gpu"
    return v in ("cpu", "gpu")


STEP_SIZE = re.compile(r"[0-9]{1,9}(x[0-9]{1,9}){3}")  # [0-9], not \d: ASCII digits only
GEMM_SIZE = re.compile(r"[0-9]{1,9}(x[0-9]{1,9}){2}(:nn|:nt|:tn)?")


def _size(v, grammar):
    return isinstance(v, str) and grammar.fullmatch(v) is not None and \
        all(1 <= int(d) <= MAX_DIM for d in v.split(":")[0].split("x"))


def step_size(v):
    "a size NxD_INxHxD_OUT with dimensions from 1 to 16777216"
    return _size(v, STEP_SIZE)


def gemm_size(v):
    "a size MxNxK[:nn|:nt|:tn] with dimensions from 1 to 16777216"
    return _size(v, GEMM_SIZE)


def any_size(v):
    "a size NxD_INxHxD_OUT or MxNxK[:op] with dimensions from 1 to 16777216"
    return step_size(v) or gemm_size(v)


CONTEXT = {"date": text, "num_cpus": count, "fiftyx": obj}
FIFTYX = {"cpu_model": text, "threads_all": count, "git": text, "command": texts, "quick": flag,
          "complete": flag, "cases_done": count, "cases_total": count, "peer": text, "gpu": obj_or_null,
          "peaks": obj}
PEAKS = {"all_cores_threads": count, "cpu_fma_gflops": obj, "cpu_triad_gbs": obj, "cpu_triad_l2_gbs": obj,
         "gpu": obj, "cpu_note": text}
PER_THREADS = {"1_thread": nonnegative, "all_cores": nonnegative}
GPU_PEAKS = {"ffma_gflops": nonnegative, "copy_gbs": nonnegative}
BENCHMARK = {"name": text, "real_time": positive, "time_unit": unit, "suite": text, "size": any_size,
             "backend": text, "device": device, "sync_every_step": flag, "validated": flag,
             "cpu_threads": count, "threads": count, "flops_per_iteration": positive, "gflops": nonnegative,
             "pct_peak": nonnegative, "op": text}
SPEEDUP = {"size": step_size, "gpu": text, "cpu": text, "against": text, "speedup": positive,
           "gpu_time_us": positive, "flops_per_step": positive, "cpu_time_us": positive, "cpu_threads": count}
TOP = {"benchmarks": array, "speedups": array, "not_run": array, "verdict": string}


def fields(path, where, o, kinds, required=()):
    """BadInput unless `o` is an object with the `required` keys and each key of `kinds` it has
    passes its check; `where` ("benchmarks[3].") names the keys in the message."""
    if not isinstance(o, dict):
        raise BadInput(f"{path}: {where.rstrip('.')}: expected an object, got {show(o)}")
    for k in required:
        if k not in o:
            raise BadInput(f"{path}: {where}{k} is missing")
    for k, ok in kinds.items():
        if k in o and not ok(o[k]):
            raise BadInput(f"{path}: {where}{k}: expected {ok.__doc__}, got {show(o[k])}")


def show(v):
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    s = json.dumps(v)
    return s if len(s) <= 40 else s[:37] + "..."


def load(path):
    try:
        doc = json.loads(read_text(path))
    except ValueError as e:  # bad JSON, or an integer of 4300 digits or more
        raise BadInput(f"{path}: not valid JSON ({e})")
    except RecursionError:
        raise BadInput(f"{path}: not valid JSON (nested too deeply)")
    if not isinstance(doc, dict) or not isinstance(doc.get("context"), dict) or not isinstance(doc.get("benchmarks"), list):
        raise BadInput(f"{path}: not a results file (needs 'context' and 'benchmarks')")
    fx = doc["context"].get("fiftyx")
    if not isinstance(fx, dict) or "schema_version" not in fx:
        raise BadInput(f"{path}: no context.fiftyx.schema_version: not a fiftyx results file")
    if type(fx["schema_version"]) is not int:
        raise BadInput(f"{path}: context.fiftyx.schema_version: expected an integer, got {show(fx['schema_version'])}")
    if fx["schema_version"] != SCHEMA_VERSION:
        raise BadInput(f"{path}: schema version {fx['schema_version']}, these tools read version {SCHEMA_VERSION}")
    fields(path, "", doc, TOP)
    fields(path, "context.", doc["context"], CONTEXT)
    fields(path, "context.fiftyx.", fx, FIFTYX)
    if fx.get("gpu") is not None:
        fields(path, "context.fiftyx.gpu.", fx["gpu"], {"name": text})
    pk = fx.get("peaks", {})
    fields(path, "context.fiftyx.peaks.", pk, PEAKS)
    for isa, v in pk.get("cpu_fma_gflops", {}).items():
        fields(path, f"context.fiftyx.peaks.cpu_fma_gflops.{isa}.", v, PER_THREADS, PER_THREADS)
    for triad in ("cpu_triad_gbs", "cpu_triad_l2_gbs"):
        if triad in pk:
            fields(path, f"context.fiftyx.peaks.{triad}.", pk[triad], PER_THREADS, ["all_cores"])
    if "gpu" in pk:
        fields(path, "context.fiftyx.peaks.gpu.", pk["gpu"], GPU_PEAKS, GPU_PEAKS)
    for i, b in enumerate(doc["benchmarks"]):
        fields(path, f"benchmarks[{i}].", b, BENCHMARK, ["name", "real_time", "time_unit"])
        suite = b.get("suite")
        if suite in ("step", "gemm"):  # the rows every tool tables and plots
            need = ["size"] + (["gflops"] if suite == "gemm" else [])
            fields(path, f"benchmarks[{i}].", b, {"size": step_size if suite == "step" else gemm_size}, need)
        elif suite == "kernels":  # report tables them by size and kernel
            fields(path, f"benchmarks[{i}].", b, {"size": step_size, "kernel": text}, ["size", "kernel"])
    for i, x in enumerate(doc.get("speedups", [])):
        fields(path, f"speedups[{i}].", x, SPEEDUP, ["size", "gpu", "cpu", "against", "speedup", "gpu_time_us", "flops_per_step"])
    doc["_path"] = path
    return doc


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
    if s < 1e-6:
        return f"{s * 1e9:.1f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def load_all(paths):
    if not paths:
        raise BadInput("no results files given")
    return [load(p) for p in paths]


def base(path):
    return os.path.splitext(os.path.basename(path))[0]
