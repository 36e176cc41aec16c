"""Shared pieces of the benchmark scripts: work folder, prepared data, cached bundles, timed commands
with process-tree memory sampling, and markdown tables written to stdout and `runs/bench/NAME.md`.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "runs" / "bench"  # gitignored: corpora, bundles and labeled outputs are cached here
TEXTCLF = str(Path(sys.executable).with_name("textclf"))


def prepared_data(work: Path = WORK, corpus: str = "rotten-tomatoes") -> Path:
    """The splits of a built-in corpus, prepared once with `textclf prepare`."""
    data = work / ("data" if corpus == "rotten-tomatoes" else f"data-{corpus}")
    if not (data / "test").is_dir():
        subprocess.run([TEXTCLF, "prepare", corpus, str(data), "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    return data


def bundle(arch: str, work: Path = WORK) -> Path:
    """A bundle of `arch` at textclf's default size (the seed's size for bilstm), trained for one
    epoch: speed depends on the model's size, not on how well it was trained. For transformer, the
    fine-tuned minilm-l6 bundle of benchmarks/accuracy.py where that has run. Two workers of one
    thread each: on a busy shared machine one worker's two torch threads wait on each other."""
    out = work / "bundles" / arch
    fine_tuned = work / "accuracy" / "data-transformer"  # benchmarks/accuracy.py's on rotten-tomatoes, if run
    if arch == "transformer" and (fine_tuned / "model.json").exists():
        return fine_tuned
    if not (out / "model.json").exists():
        data = prepared_data(work)
        subprocess.run(
            [
                TEXTCLF,
                "train",
                "--train",
                str(data / "train"),
                "--validation",
                str(data / "validation"),
                "--out",
                str(out),
                "--arch",
                arch,
                "--epochs",
                "1",
                "--workers",
                "2",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return out


@dataclass
class Timed:
    wall_s: float
    stdout: str
    stderr: str
    peak_rss_mb: float | None = None  # sum over the process tree; shared pages count once per process
    peak_pss_mb: float | None = None  # proportional set size: shared pages split, so no double count


def run_timed(cmd: Sequence[str], memory: bool = False) -> Timed:
    """Run a command, timing it whole (start-up included). With `memory`, also sample its process
    tree (Ray's GCS, raylet and workers are descendants): RSS every 0.2 s; PSS every 2 s for a tree
    of more than 3 processes, because PSS reads every mapping of every process (~0.1 CPU-s a sweep
    over a Ray tree) and on 2 cores the sampler must not slow what it measures, and every 0.2 s
    otherwise (a 4-second in-process command would get only two PSS samples)."""
    started = time.monotonic()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"rss": 0, "pss": 0}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peaks, stop), daemon=True)
    if memory:
        sampler.start()
    stdout, stderr = proc.communicate()  # drains both pipes, so a chatty command never blocks
    wall = time.monotonic() - started
    stop.set()
    if memory:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-3000:]}")
    if not memory:
        return Timed(wall, stdout, stderr)
    return Timed(wall, stdout, stderr, peaks["rss"] / 2**20, peaks["pss"] / 2**20)


def _sample_tree(pid: int, peaks: dict, stop: threading.Event, every_s: float = 0.2, pss_every: int = 10) -> None:
    import psutil

    root = psutil.Process(pid)
    for tick in itertools.count():
        if stop.is_set():
            return
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        with_pss = tick % pss_every == 0 or len(tree) <= 3
        rss = pss = 0
        for p in tree:
            try:
                if with_pss:
                    info = p.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                else:
                    rss += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass  # a process that just ended
        peaks["rss"] = max(peaks["rss"], rss)
        if with_pss:
            peaks["pss"] = max(peaks["pss"], pss)
        stop.wait(every_s)


def json_events(stderr: str, event: str) -> list[dict]:
    """textclf's one-line JSON progress records of one kind (printed when stderr is not a terminal)."""
    records = []
    for line in stderr.splitlines():
        start = line.find('{"event"')  # Ray prefixes worker lines with "(pid=...)"
        if start >= 0:
            try:
                record = json.loads(line[start:])
            except json.JSONDecodeError:
                continue
            if record.get("event") == event:
                records.append(record)
    return records


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit(name: str, title: str, body: str, notes: Sequence[str] = ()) -> None:
    """Print a titled table and keep a copy in `runs/bench/NAME.md`. The load average goes with it:
    on a shared machine it says how far to trust the figures."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    notes = [*notes, f"Machine: {machine()}; load average (1, 5, 15 min) when the table was made: {load}."]
    text = "\n".join([f"### {title}", "", body, "", *notes]).rstrip() + "\n"
    print("\n" + text, flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}.md").write_text(text)


# Each library that picks its kernels by the CPU's vector extensions, and its switch to stay at AVX2.
AVX2_CAPS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorized kernels (the LSTM's gate arithmetic)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: float32 and bf16 LSTM (no bf16 below AVX512-BF16)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL: float32 matrix products
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",  # fbgemm: int8 matrix products (no VNNI)
}


def cap_isa_to_avx2() -> None:
    """Make this process and every command it starts run the kernels an AVX2-only CPU would (no
    AVX512, VNNI or bf16), for measuring on a newer CPU what such a CPU allows. Call before torch loads."""
    os.environ.update(AVX2_CAPS)


def machine() -> str:
    import torch

    capped = " capped to AVX2 by " + ", ".join(AVX2_CAPS) if os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2" else ""
    return (
        f"{os.cpu_count()} CPUs ({cpu_flags()}{capped}), torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def cpu_flags() -> str:
    """The CPU's vector extensions that decide which arithmetic is fast: bf16 and int8 (VNNI) kernels."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "flags unknown"
    return " ".join(w for w in wanted if w in flags) or "no AVX2"
