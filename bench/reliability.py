"""Reliability: kill a run anywhere and resume it exactly; fill the disk, tear a checkpoint, kill a verifier
worker, lose the vLLM server; feed it bad input; fuzz the verifier. One table, nothing lost.

    python bench/reliability.py             # everything (about 15 minutes on 2 cores)
    python bench/reliability.py --quick     # the faults and the bad inputs, 1,000 fuzz cases, no kill run

Writes ``bench/results/reliability.md`` (and ``.json``). The runs use the checkout this file is in
(``src/`` first on ``PYTHONPATH``).

**Kill anywhere, resume exactly.** A shortened built-in recipe runs twice into two directories: once
uninterrupted (the reference), once interrupted again and again: SIGKILL at moments drawn at random inside
each step (warm start, profile, temperature search, a training step, a checkpoint write, evaluation, the
report), a full disk (every write under a path fails with ENOSPC, through a small ``LD_PRELOAD`` library
built here with the C compiler) while writing the profile, a checkpoint and the report, and a damaged
latest checkpoint before one of the resumes. After each interruption the same command runs again, until
the run finishes. Then the two directories are compared record by record: the metrics, the difficulty log,
the decision logs, the profile, the temperature searches, the final weights and the evaluation results
(timings and memory peaks aside).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from polaris.errors import RunError  # noqa: E402
from polaris.run.layout import RunLayout  # noqa: E402
from polaris.train.grpo import STATE_FILE  # noqa: E402

RECIPE = """\
name: reliability
seed: 0
model: {path: "builtin:tiny"}
warm_start: {steps: 450, planned_steps: 950, batch_size: 32, learning_rate: 3.0e-3, levels: [1, 2, 3, 4, 5, 6]}
data:
  train: "builtin:arith-train"
  tiny: {seed: 0, train_size: 96, test_size: 48, levels: [1, 2, 3, 4, 5, 6]}
profile: {k: 4, stop_without_signal: false}
temperature_search: {grid: [0.8, 1.0, 1.2], problems: 16, n: 4, accuracy_tolerance: 0.05, stage_step: 0.05,
                     stage_max_increase: 0.1}
train: {batch_prompts: 4, rollouts: 4, learning_rate: 1.0e-4, save_steps: 2}
stages:
  - {steps: 6, max_response_tokens: 64, temperature: search}
  - {steps: 6, max_response_tokens: 80, temperature: 1.0}
eval: {benchmarks: ["builtin:arith-test"], k: 4, temperature: 0.6, max_new_tokens: 80}
"""

#: Training steps per stage in :data:`RECIPE`.
STEPS = 6

#: The interruptions of the kill run, in pipeline order: (kind, where). ``kill`` is a SIGKILL at a random
#: moment inside the step; ``checkpoint`` a SIGKILL while a checkpoint is being written; ``enospc`` a
#: full disk for paths containing ``where``; ``torn`` damages the newest checkpoint of a stage, then resumes.
PLAN = [
    ("kill", "warm_start"),
    ("enospc", "/profile/"),
    ("kill", "profile"),
    ("kill", "temperature:1"),
    ("kill", "train:1"),
    ("checkpoint", "train:1"),
    ("enospc", "/checkpoint-"),
    ("kill", "eval:stage-1"),
    ("kill", "train:2"),
    ("checkpoint", "train:2"),
    ("torn", "train:2"),
    ("kill", "eval:stage-2"),
    ("enospc", "/report"),
    ("kill", "report"),
]

#: The two run directories compared (their paths appear in some values).
ROOTS: list[Path] = []

#: Values that measure time or memory, not the run's outcome.
VOLATILE = ("time", "runtime", "per_second", "seconds", "peak_rss", "rss_mb")

ENOSPC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#define MAXFD 65536
static unsigned char full[MAXFD];
static void mark(int fd, const char *path, int flags) {
    const char *m = getenv("POLARIS_ENOSPC_MATCH");
    if (fd < 0 || fd >= MAXFD) return;
    full[fd] = (m && *m && path && strstr(path, m) && (flags & (O_WRONLY | O_RDWR))) ? 1 : 0;
}
static int blocked(int fd) { return fd >= 0 && fd < MAXFD && full[fd]; }
#define OPEN_WRAPPER(name, ...) int name(__VA_ARGS__) { \
    static int (*real)() = 0; if (!real) real = dlsym(RTLD_NEXT, #name); mode_t mode = 0; \
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); } \
    int fd = CALL; mark(fd, path, flags); return fd; }
#define CALL real(path, flags, mode)
OPEN_WRAPPER(open, const char *path, int flags, ...)
OPEN_WRAPPER(open64, const char *path, int flags, ...)
#undef CALL
#define CALL real(dirfd, path, flags, mode)
OPEN_WRAPPER(openat, int dirfd, const char *path, int flags, ...)
OPEN_WRAPPER(openat64, int dirfd, const char *path, int flags, ...)
ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t) = 0; if (!real) real = dlsym(RTLD_NEXT, "write");
    if (blocked(fd) && n) { errno = ENOSPC; return -1; } return real(fd, buf, n); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t) = 0; if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    if (blocked(fd) && n) { errno = ENOSPC; return -1; } return real(fd, buf, n, off); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { return pwrite64(fd, buf, n, off); }
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    static ssize_t (*real)(int, const struct iovec *, int) = 0; if (!real) real = dlsym(RTLD_NEXT, "writev");
    if (blocked(fd)) { errno = ENOSPC; return -1; } return real(fd, iov, cnt); }
"""


def load_bench(name: str):
    """Another bench script as a module (registered first: its dataclasses look themselves up)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build_enospc(work: Path) -> Path | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    (work / "enospc.c").write_text(ENOSPC_C)
    lib = work / "enospc.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(lib), str(work / "enospc.c"), "-ldl"],
                   check=True)
    return lib


# -- one polaris run, watched ----------------------------------------------------------------------------


def run_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update(extra or {})
    return env


def start_run(recipe: Path, run_dir: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "polaris.cli", "run", str(recipe), "--run-dir", str(run_dir)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env or run_env(),
                            start_new_session=True)


def running_step(layout: RunLayout) -> str | None:
    try:
        summary = layout.read_summary()
    except (OSError, ValueError, RunError):  # read while the run replaces it
        return None
    return next(iter(summary.with_status("running")), None) if summary else None


def failed_step(layout: RunLayout) -> str | None:
    summary = layout.read_summary()
    return next(iter(summary.with_status("failed")), None) if summary else None


def saving_checkpoint(layout: RunLayout, stage: int) -> Path | None:
    """A checkpoint of ``stage`` being written (its folder exists, its recipe state does not yet)."""
    work = layout.stage_work(stage)
    if not work.is_dir():
        return None
    return next((p for p in work.glob("checkpoint-*") if not (p / STATE_FILE).exists()), None)


def kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its verifier workers
    proc.wait()


def interrupt(kind: str, where: str, recipe: Path, layout: RunLayout, log: Path, rng: random.Random,
              durations: dict[str, float], enospc: Path | None) -> dict[str, Any]:
    """One attempt of the interrupted run, stopped as ``kind`` says; what happened."""
    if kind == "enospc":
        if enospc is None:
            return {"kind": kind, "where": where, "landed": "skipped: no C compiler", "exit": None}
        proc = start_run(recipe, layout.root, log, run_env({"LD_PRELOAD": str(enospc),
                                                              "POLARIS_ENOSPC_MATCH": where}))
        code = proc.wait()
        return {"kind": kind, "where": where, "landed": failed_step(layout) or "(nothing failed)", "exit": code,
                "message": last_message(log)}
    if kind == "torn":
        return tear(where, recipe, layout, log)
    landed = ""
    proc = start_run(recipe, layout.root, log)
    steps_before = _stage_records(layout, where)
    delay, started, waited_for = None, None, False
    while proc.poll() is None:
        step = running_step(layout)
        if step is None:
            time.sleep(0.002)
            continue
        if step != where and waited_for:  # the target step ended before the kill: kill in the next one
            kill(proc)
            return {"kind": "kill", "where": where, "exit": -9, "landed": f"{landed} {step} (just after {where})"}
        if step != where:
            time.sleep(0.002)
            continue
        waited_for = True
        if kind == "checkpoint":
            ckpt = saving_checkpoint(layout, int(where.split(":")[1]))
            if ckpt is not None and any(ckpt.iterdir()):  # inside the write: some files there, not all
                kill(proc)
                return {"kind": "kill", "where": f"{where} checkpoint write", "exit": -9,
                        "landed": f"{step}, writing {ckpt.name} ({len(list(ckpt.iterdir()))} files so far)"}
            time.sleep(0.001)
            continue
        if where.startswith("train:") and _stage_records(layout, where) <= steps_before:
            time.sleep(0.002)  # a training step: only once this attempt has finished one
            continue
        if started is None:
            started = time.monotonic()
            per_step = durations.get(where, 1.0) / max(1, STEPS) if where.startswith("train:") else None
            delay = rng.uniform(0.0, 1.0) * per_step if per_step else rng.uniform(0.05, 0.6) * durations.get(where, 1.0)
        if time.monotonic() - started >= delay:
            kill(proc)
            done = _stage_records(layout, where)
            extra = f", {done} step(s) of the stage done" if where.startswith("train:") else ""
            return {"kind": "kill", "where": where, "exit": -9,
                    "landed": f"{landed} {where} at {delay:.2f}s{extra}".strip()}
        time.sleep(0.002)
    return {"kind": kind, "where": where, "landed": "(the run finished first)", "exit": proc.returncode}


def tear(where: str, recipe: Path, layout: RunLayout, log: Path) -> dict[str, Any]:
    """Run until stage K has two complete checkpoints, kill, and cut the newest one's weights in half: the
    next attempt must set it aside and resume from the one before."""
    stage = int(where.split(":")[1])
    proc = start_run(recipe, layout.root, log)
    complete: list[Path] = []
    while proc.poll() is None:
        work = layout.stage_work(stage)
        complete = sorted((p for p in work.glob("checkpoint-*") if (p / STATE_FILE).exists()),
                          key=lambda p: int(p.name.split("-")[1])) if work.is_dir() else []
        if len(complete) >= 2:
            kill(proc)
            break
        time.sleep(0.002)
    if len(complete) < 2:
        return {"kind": "torn", "where": where, "landed": "(the stage ended with fewer than 2 checkpoints)",
                "exit": proc.returncode}
    weights = next(complete[-1].glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return {"kind": "torn", "where": where, "exit": -9,
            "landed": f"killed with {', '.join(p.name for p in complete)} complete; {complete[-1].name}'s "
                      f"{weights.name} then cut in half"}


def last_message(log: Path) -> str:
    """The last ``polaris run:`` message in an attempt's log (progress bars share its lines)."""
    lines = [line[line.index("polaris run:"):] for line in log.read_text(errors="replace").splitlines()
             if "polaris run:" in line]
    return lines[-1][:220] if lines else ""


def _stage_records(layout: RunLayout, where: str) -> int:
    if not where.startswith("train:"):
        return 0
    stage = int(where.split(":")[1])
    return sum(1 for r in RunLayout(layout.root).read_metrics(dedupe=False) if r.get("stage") == stage)


def kill_resume(work: Path, seed: int, enospc: Path | None) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    recipe = work / "reliability.yaml"
    recipe.write_text(RECIPE)
    reference, broken = RunLayout(work / "reference"), RunLayout(work / "interrupted")
    rows: list[dict[str, Any]] = []

    # The reference, uninterrupted; a second run on its directory meanwhile must be refused.
    t0 = time.monotonic()
    first = start_run(recipe, reference.root, work / "reference.log")
    while not reference.lock.exists():
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "polaris.cli", "run", str(recipe), "--run-dir",
                             str(reference.root)], capture_output=True, text=True, env=run_env())
    rows.append({"kind": "second run", "where": "same run directory", "exit": second.returncode,
                 "landed": f"first pid {first.pid}",
                 "message": second.stderr.strip().splitlines()[-1][:220] if second.stderr.strip() else "",
                 "ok": second.returncode == 2 and f"pid {first.pid}" in second.stderr})
    if first.wait() != 0:
        raise SystemExit(f"the reference run failed; see {work / 'reference.log'}")
    reference_s = time.monotonic() - t0
    durations = {name: s.seconds or 1.0 for name, s in reference.read_summary().steps.items()}

    rng = random.Random(seed)
    t0 = time.monotonic()
    attempts = 0
    for kind, where in PLAN:
        attempts += 1
        row = interrupt(kind, where, recipe, broken, work / "interrupted.log", rng, durations, enospc)
        print(f"  {row['kind']:>8} {row['where']:<22} -> {row['landed']}", flush=True)
        rows.append(row)
    attempts += 1
    if start_run(recipe, broken.root, work / "interrupted.log").wait() != 0:
        raise SystemExit(f"the interrupted run did not finish; see {work / 'interrupted.log'}")
    interrupted_s = time.monotonic() - t0
    fallback = [line for line in (work / "interrupted.log").read_text(errors="replace").splitlines()
                if "is damaged" in line]
    return {"rows": rows, "compare": compare(reference, broken), "reference_s": reference_s,
            "interrupted_s": interrupted_s, "attempts": attempts, "fallback": fallback}


# -- comparing two run directories ------------------------------------------------------------------------


def _outcome(record: Any) -> Any:
    """What a run computed: timings, memory peaks and the run directory's own path left out."""
    if isinstance(record, str):
        return record.replace(str(ROOTS[0]), "RUN").replace(str(ROOTS[1]), "RUN") if ROOTS else record
    if isinstance(record, dict):
        return {k: _outcome(v) for k, v in record.items() if not any(t in k for t in VOLATILE)}
    if isinstance(record, list):
        return [_outcome(v) for v in record]
    return record


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def compare_logs(name: str, a: list[dict[str, Any]], b: list[dict[str, Any]], key) -> dict[str, Any]:
    keys_b = [key(r) for r in b]
    duplicates = len(keys_b) - len(set(keys_b))
    missing = sorted({key(r) for r in a} - set(keys_b), key=str)
    first_diff = None
    by_key = {key(r): r for r in b}
    for r in a:
        other = by_key.get(key(r))
        if other is not None and _outcome(r) != _outcome(other):
            field = next((k for k in r if _outcome({k: r[k]}) != _outcome({k: other.get(k)})), "?")
            first_diff = f"{key(r)} {field}: {r.get(field)!r} vs {other.get(field)!r}"
            break
    return {"what": name, "records": len(a), "duplicates": duplicates, "missing": len(missing),
            "extra": len(set(keys_b) - {key(r) for r in a}), "first_difference": first_diff,
            "identical": duplicates == 0 and not missing and first_diff is None and len(a) == len(b)}


def compare(a: RunLayout, b: RunLayout) -> list[dict[str, Any]]:
    from safetensors.torch import load_file

    ROOTS[:] = [a.root, b.root]
    out = [
        compare_logs("metrics log", _jsonl(a.metrics), _jsonl(b.metrics), lambda r: (r["stage"], r["step"])),
        compare_logs("difficulty log", _jsonl(a.difficulty), _jsonl(b.difficulty),
                     lambda r: (r["stage"], r["step"])),
    ]
    for stage in (1, 2):
        decisions = Path(a.stage_paths(stage).decisions.format(rank=0))
        other = Path(b.stage_paths(stage).decisions.format(rank=0))
        out.append(compare_logs(f"decisions (stage {stage})", [r for r in _jsonl(decisions) if r["stage"] == stage],
                                [r for r in _jsonl(other) if r["stage"] == stage], lambda r: (r["stage"], r["step"])))
    out.append(compare_logs("profile records", _jsonl(a.profile), _jsonl(b.profile), lambda r: r["problem_id"]))
    temps_a = [json.loads(a.temperature_path(s).read_text()) for s in a.temperature_stages()]
    temps_b = [json.loads(b.temperature_path(s).read_text()) for s in b.temperature_stages()]
    out.append({"what": "temperature searches", "records": len(temps_a), "duplicates": 0, "missing": 0, "extra": 0,
                "first_difference": None if _outcome(temps_a) == _outcome(temps_b) else "chosen/measured differ",
                "identical": _outcome(temps_a) == _outcome(temps_b)})
    wa, wb = load_file(a.stage_model(2) / "model.safetensors"), load_file(b.stage_model(2) / "model.safetensors")
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa) if wa.keys() == wb.keys() else float("inf")
    out.append({"what": "final weights (stage 2)", "records": len(wa), "duplicates": 0, "missing": 0, "extra": 0,
                "first_difference": None if worst == 0 else f"largest difference {worst:.3g}", "identical": worst == 0})
    ra, rb = a.read_summary().results, b.read_summary().results
    out.append({"what": "summary.json results", "records": sum(len(v) for v in ra.values()), "duplicates": 0,
                "missing": 0, "extra": 0, "identical": _outcome(ra) == _outcome(rb),
                "first_difference": None if _outcome(ra) == _outcome(rb) else
                json.dumps({k: (_outcome(ra).get(k), _outcome(rb).get(k)) for k in ra
                            if _outcome(ra).get(k) != _outcome(rb).get(k)})[:300]})
    return out


# -- faults outside the kill run ------------------------------------------------------------------------


def verifier_worker_kills(kills: int = 3) -> dict[str, Any]:
    """The shared verifier pool grades a batch clean, then again while workers are killed from outside."""
    from polaris.data import arith
    from polaris.reward import pool, score_batch

    problems = arith.generate(random.Random(0), 1500, [1, 2, 3, 4, 5, 6])
    # Fractions to reduce: every check goes to math-verify in the pool (an exact match would not).
    texts = [f"<think>work</think> \\boxed{{\\frac{{{2 * p.answer + (i % 3 == 0)}}}{{2}}}}"
             for i, p in enumerate(problems)]
    truths = [str(p.answer) for p in problems]
    pool.close_pool()
    clean = score_batch(texts, truths, require_think=True)
    before = pool.stats()
    killed: list[int] = []
    stop = threading.Event()

    hit: set[int] = set()  # items under a killed worker: a second kill under one item would mark it the cause

    def killer() -> None:  # a worker in the middle of a check, then another one 0.3 s later
        while not stop.is_set() and len(killed) < kills:
            time.sleep(0.01)
            shared = pool._shared
            busy = [(w.proc.pid, w.tasks[w.pos]) for w in (shared._workers if shared is not None else [])
                    if w.busy and w.tasks[w.pos] not in hit]
            if busy:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(busy[0][0], signal.SIGKILL)
                    killed.append(busy[0][0])
                    hit.add(busy[0][1])
                time.sleep(0.3)

    pool.close_pool()
    thread = threading.Thread(target=killer)
    thread.start()
    again = score_batch(texts, truths, require_think=True)
    stop.set()
    thread.join()
    after = pool.stats()
    pool.close_pool()
    return {"items": len(texts), "killed": len(killed), "retried": after["retried"] - before["retried"],
            "unscored": after["unscored"] - before["unscored"], "same_verdicts": clean == again}


def vllm_server(timeout: float = 2.0) -> dict[str, Any]:
    """An unreachable server is named within its timeout; one that comes up late is waited for."""
    import socket
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from polaris.errors import RunError
    from polaris.train.server import wait_for_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    message = ""
    try:
        wait_for_server("127.0.0.1", port, timeout, poll=0.25)
    except RunError as e:
        message = str(e)
    unreachable_s = time.monotonic() - t0

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    servers: list[HTTPServer] = []
    threading.Timer(1.0, lambda: (servers.append(HTTPServer(("127.0.0.1", port), Health)),
                                  servers[0].serve_forever())).start()
    try:
        waited = wait_for_server("127.0.0.1", port, 30.0, poll=0.2)
    finally:
        while not servers:
            time.sleep(0.05)
        servers[0].shutdown()
    return {"port": port, "timeout": timeout, "unreachable_s": unreachable_s, "message": message,
            "came_back_after_s": waited,
            "ok": f"127.0.0.1:{port}" in message and unreachable_s <= timeout + 1.0}


def nan_loss() -> dict[str, Any]:
    """The unit test that makes step 2's loss NaN through ``polaris train``."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(REPO / "tests" / "test_reliability.py"), "-k", "nan_loss"],
                          capture_output=True, text=True, env=run_env(), cwd=REPO)
    return {"ok": proc.returncode == 0, "seconds": time.monotonic() - t0,
            "tail": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-200:]}


# -- the table -----------------------------------------------------------------------------------------


def write(out: Path, results: dict[str, Any], command: str) -> str:
    lines = ["# Reliability", "", f"Command: `{command}` (2 CPU cores; {results['minutes']:.1f} min in all).", ""]
    kr = results.get("kill_resume")
    lines += ["| what was done | times | lost | result |", "|---|---|---|---|"]
    if kr:
        kills = [r for r in kr["rows"] if r["kind"] == "kill"]
        full = [r for r in kr["rows"] if r["kind"] == "enospc"]
        identical = all(c["identical"] for c in kr["compare"])
        lines.append(f"| SIGKILL at random moments of a shortened tiny `polaris run`, resumed each time | "
                     f"{len(kills)} | {'nothing' if identical else 'see below'} | "
                     f"{kr['attempts']} attempts; every record once; final weights and results "
                     f"{'identical' if identical else 'differ'} to an uninterrupted run |")
        lines.append(f"| disk full (ENOSPC) while writing the profile, a checkpoint, the report; resumed after | "
                     f"{len(full)} | {'nothing' if identical else 'see below'} | exit "
                     f"{', '.join(str(r['exit']) for r in full)}: {full[0].get('message', '') if full else ''} |")
        torn = [r for r in kr["rows"] if r["kind"] == "torn" and "cut in half" in r.get("landed", "")]
        lines.append(f"| latest checkpoint cut in half before a resume | {len(torn)} | nothing | "
                     f"{kr['fallback'][0].strip()[:200] if kr['fallback'] else 'no fallback seen'} |")
        second = next(r for r in kr["rows"] if r["kind"] == "second run")
        lines.append(f"| a second `polaris run` on a running directory | 1 | nothing | exit {second['exit']}: "
                     f"{second['message']} |")
    vw = results["verifier_workers"]
    lines.append(f"| verifier workers SIGKILLed mid-batch ({vw['items']} items) | {vw['killed']} | "
                 f"{vw['unscored']} items | {vw['retried']} items graded again; verdicts "
                 f"{'identical' if vw['same_verdicts'] else 'DIFFER'} to a clean pass |")
    vs = results["vllm_server"]
    lines.append(f"| vLLM server unreachable (timeout {vs['timeout']:g} s) | 1 | nothing | named after "
                 f"{vs['unreachable_s']:.1f} s: {vs['message'][:160]}...; a server that came up "
                 f"{vs['came_back_after_s']:.1f} s later was waited for |")
    nl = results["nan_loss"]
    lines.append(f"| NaN loss at step 2 (`tests/test_reliability.py -k nan_loss`) | 1 | nothing | "
                 f"{'refused before the backward pass, checkpoint-1 kept' if nl['ok'] else 'FAILED'} ({nl['tail']}) |")
    fz = results["fuzz"]
    lines.append(f"| verifier fuzzing (hypothesis) | {fz['cases']} | - | {fz['crashes']} crashes, "
                 f"{fz['non_binary_scores']} scores not 0/1, {fz['payloads_run']} payloads run, "
                 f"{fz['over_deadline']} waits past the deadline + 1 s (worst overrun {fz['max_overrun_s']:.2f} s); "
                 f"{fz.get('correct_scored_1', '?')}/{fz.get('correct_total', '?')} correct answers scored 1 |")
    bad = results["bad_inputs"]
    ok = sum(1 for r in bad if r["ok"])
    lines.append(f"| bad inputs, each through the `polaris` command | {len(bad)} | nothing half-written in "
                 f"{sum(1 for r in bad if r['untouched'])} | {ok} of {len(bad)} as expected (below) |")
    if kr:
        lines += ["", "## Kill anywhere, resume exactly", "",
                  f"Reference run {kr['reference_s'] / 60:.1f} min; the interrupted one "
                  f"{kr['interrupted_s'] / 60:.1f} min over {kr['attempts']} attempts.", "",
                  "| # | interruption | where it landed | exit | message |", "|---|---|---|---|---|"]
        for i, r in enumerate(kr["rows"], 1):
            lines.append(f"| {i} | {r['kind']} {r['where']} | {r.get('landed', '')} | {r.get('exit')} | "
                         f"{r.get('message', '')[:160]} |")
        lines += ["", "Compared with the uninterrupted run (timings and memory peaks aside):", "",
                  "| what | records | duplicates | missing | extra | identical | first difference |",
                  "|---|---|---|---|---|---|---|"]
        for c in kr["compare"]:
            lines.append(f"| {c['what']} | {c['records']} | {c['duplicates']} | {c['missing']} | {c['extra']} | "
                         f"{'yes' if c['identical'] else 'no'} | {c['first_difference'] or ''} |")
    lines += ["", "## Bad input", "", "| kind | exit | names file, row, field | nothing half-written | message |",
              "|---|---|---|---|---|"]
    for r in bad:
        message = r["message"].replace("|", "/")[:170]
        message = re.sub(r"\(?docs/method\.md \u00a7 [^)]*…$", "…", message)  # no cut-off section names
        lines.append(f"| {r['kind']} | {r['exit']} | {'yes' if r['names_ok'] else 'NO'} | "
                     f"{'yes' if r['untouched'] else 'NO'} | {message} |")
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.md").write_text(text)
    (out / "reliability.json").write_text(json.dumps(results, indent=1, default=str))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="no kill run; 1,000 fuzz cases")
    parser.add_argument("--fuzz", type=int, help="fuzz cases (default 10,000; --quick: 1,000)")
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    parser.add_argument("--work", help="where the runs go (default: a temporary directory, removed after)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    command = "python bench/reliability.py" + (" --quick" if args.quick else "")
    start = time.monotonic()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="polaris-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        if not args.quick:
            print("kill and resume ...", flush=True)
            results["kill_resume"] = kill_resume(work / "kill", args.seed, build_enospc(work))
        print("verifier workers killed mid-batch ...", flush=True)
        results["verifier_workers"] = verifier_worker_kills()
        print("vLLM server ...", flush=True)
        results["vllm_server"] = vllm_server()
        print("NaN loss ...", flush=True)
        results["nan_loss"] = nan_loss()
        print("bad inputs ...", flush=True)
        results["bad_inputs"] = load_bench("bad_inputs").run_cases(work / "bad")
        print("fuzzing the verifier ...", flush=True)
        results["fuzz"] = load_bench("fuzz_verifier").fuzz(args.fuzz or (1000 if args.quick else 10000))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    results["minutes"] = (time.monotonic() - start) / 60
    print(write(Path(args.out), results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
