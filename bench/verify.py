"""Throughput of ``score_batch`` (worker pool) against serial grading (``score`` in a loop).

Both sides grade the same generated responses with the same timeout. The baseline is the plain
way to use math-verify: one process, one response after another (``polaris.reward.score``, which
is extraction + exact/number match + math-verify under a signal deadline). The candidate is
``polaris.reward.score_batch`` on a warm pool (the pool lives for the whole training run; its
start-up time is reported separately).

Responses: for every ground truth of the five reference benchmarks (or a built-in list when
/work/shared/data/polaris-benchmarks is absent), a ``<think>`` block of filler text and an answer
that is correct as stored, correct in another form (``025``/``25``, ``\\dfrac``, ``x = ...``,
``\\times 10^{k}``, ...), or wrong; some without a box or without ``</think>``; a few
pathological ones (power towers, huge factorials, deep nesting, a 1 MB response).

The machine may be shared with other work, so the run alternates serial and batch over
``ROUNDS`` blocks (both see the same background load), measures how many cores it really got
(``parallel_capacity``), and also reports CPU seconds per process, from which it projects the
speed-up on idle cores: serial CPU time / sum over rounds of (parent CPU + busiest worker CPU).

    .venv/bin/python bench/verify.py                 # writes bench/results/verify.md
    .venv/bin/python bench/verify.py --n 600 --out -  # quick look, print only
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DATA = Path("/work/shared/data/polaris-benchmarks")
FALLBACK_TRUTHS: list[Any] = [
    "025", "204", 142.0, -4.0, ["9.6\n"], ["8.7 \\times 10^{8}"], ["4.5e33\n"], ["0.01\n", "0.02\n"],
    ["$\\frac{1}{2 n+2}$"], ["$2^{1009}$"], ["$(1,8,19), (2,7,13), (4,5,7)$"], ["$2n-2$"],
    ["$\\binom{2n}{n}$"], ["$m n-\\lfloor m / 2\\rfloor$"], ["\\frac{x}{2} - \\frac{1}{4} + ce^{-2x}"],
    ["41.8^\\circ\n"], ["1 + i\\sqrt{3}\n"], ["-\\frac{1}{3}\n", "-1/3\n"], ["$\\sqrt{3}$"], ["$[1,3)$"],
]
PATHOLOGICAL = ["9^{9^{9^{9}}}", "(10^{100})!", "(" * 300 + "1" + ")" * 300, "10^{10^{10}}"]
ROUNDS = 2
WORDS = [
    "so", "we", "get", "the", "value", "then", "check", "case", "where", "it", "holds", "and", "compute",
    "again", "consider", "substitute", "therefore", "since", "which", "gives", "us", "sum", "of", "terms",
]


def load_truths() -> list[Any]:
    if not DATA.is_dir():
        return FALLBACK_TRUTHS
    import pyarrow.parquet as pq

    truths = []
    for path in sorted(DATA.glob("*.parquet")):
        for row in pq.read_table(path, columns=["reward_model"]).to_pylist():
            truths.append(row["reward_model"]["ground_truth"])
    return truths


def first_text(truth: Any) -> str:
    value = truth[0] if isinstance(truth, list) else truth
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text[1:-1].strip() if len(text) > 1 and text[0] == text[-1] == "$" else text


def equivalent_form(answer: str, rng: random.Random) -> str:
    if answer.lstrip("-").isdigit():
        return rng.choice([answer.zfill(len(answer) + 1), f"{answer}.0", f"x = {answer}", f"\\text{{{answer}}}"])
    if "\\frac" in answer:
        return answer.replace("\\frac", "\\dfrac")
    try:
        value = float(answer)
        return rng.choice([f"{answer}0", f"{value:.3e}".replace("e", "\\times 10^{") + "}"])
    except ValueError:
        return rng.choice([answer.replace(" ", ""), f"\\left({answer}\\right)" if "," not in answer else answer])


def wrong_form(answer: str, rng: random.Random) -> str:
    if answer.lstrip("-").isdigit():
        return str(int(answer) + rng.choice([-2, -1, 1, 3, 10]))
    try:
        return f"{float(answer) * rng.choice([0.5, 1.1, 2.0]):g}"
    except ValueError:
        return rng.choice([f"{answer}+1", f"2\\left({answer}\\right)", f"\\frac{{{answer}}}{{3}}"])


def make_response(answer: str | None, rng: random.Random, *, think: bool = True) -> str:
    filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(100, 1500)))
    tail = "The answer is no box here." if answer is None else f"Therefore the answer is $\\boxed{{{answer}}}$."
    return (f"<think>{filler}</think>\n" if think else filler + "\n") + tail


def build(n: int, seed: int = 0) -> tuple[list[str], list[Any]]:
    rng = random.Random(seed)
    truths = load_truths()
    responses: list[str] = []
    gts: list[Any] = []
    for i in range(n):
        truth = truths[i % len(truths)]
        answer = first_text(truth)
        kind = rng.random()
        if kind < 0.30:
            responses.append(make_response(answer, rng))
        elif kind < 0.55:
            responses.append(make_response(equivalent_form(answer, rng), rng))
        elif kind < 0.92:
            responses.append(make_response(wrong_form(answer, rng), rng))
        elif kind < 0.96:
            responses.append(make_response(None, rng))
        else:
            responses.append(make_response(answer, rng, think=False))
        gts.append(truth)
    # A few pathological ones, spread out.
    for j, bad in enumerate(PATHOLOGICAL):
        k = (j + 1) * n // (len(PATHOLOGICAL) + 2)
        responses[k] = make_response(bad, rng)
    responses[n // 2] = "<think>" + "x " * 500_000 + "</think> \\boxed{" + first_text(gts[n // 2]) + "}"
    return responses, gts


def _spin(_: object = None) -> float:
    t0 = time.monotonic()
    total = 0
    for i in range(3_000_000):
        total += i * i
    return time.monotonic() - t0


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default); Linux /proc for others."""
    if pid is None:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parallel_capacity(workers: int) -> float:
    """How many cores this run really got: ``workers`` copies of a CPU loop at once, against one.

    The machine may be shared; 2.0 on an idle 2-core machine, about 1.0 when other work takes one.
    """
    import multiprocessing

    alone = min(_spin() for _ in range(3))
    with multiprocessing.get_context("spawn").Pool(workers) as p:
        p.map(_spin, range(workers))  # start-up
        t0 = time.monotonic()
        p.map(_spin, range(workers), chunksize=1)
        together = time.monotonic() - t0
    return workers * alone / together


def command(args: Sequence[str]) -> str:
    """The command that reproduces the figures (``--out`` only says where they are written)."""
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            kept.append(a)
    return " ".join([".venv/bin/python bench/verify.py", *kept])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2400, help="number of responses (default 2400)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per response (default 2)")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: one per CPU)")
    parser.add_argument("--out", default="bench/results/verify.md", help="results file, '-' to only print")
    args = parser.parse_args(argv)

    from polaris.reward import close_pool, grade_batch, score, stats
    from polaris.reward import pool as pool_module
    from polaris.reward.verify import _parse, warm_up

    responses, gts = build(args.n)
    workers = args.workers or pool_module.default_workers()

    # Pool start-up, measured apart (a training run pays it once).
    t0 = time.monotonic()
    grade_batch([f"</think>\\boxed{{\\frac{{{i}}}{{7}}}}" for i in range(16)], ["x"] * 16, workers=workers)
    startup = time.monotonic() - t0

    # Same starting state on both sides: the workers ran verify.warm_up() before reporting
    # ready; the serial baseline runs it here (ANTLR is several times slower in a fresh process).
    warm_up()
    _parse.cache_clear()

    # The machine may be shared: alternate serial and batch over ROUNDS blocks so that both see
    # the same background load, and measure the parallel capacity before and after.
    capacity_before = parallel_capacity(workers)
    serial: list[float] = []
    verdicts = []
    t_serial = t_batch = 0.0
    cpu_serial = cpu_parent_batch = projected_time = 0.0
    cpu_workers: dict[int, float] = {}
    serial_timeouts = 0
    bounds = [len(responses) * r // ROUNDS for r in range(ROUNDS + 1)]
    for lo, hi in itertools.pairwise(bounds):
        block_r, block_g = responses[lo:hi], gts[lo:hi]
        before = stats()["timeouts"]
        t0, c0 = time.monotonic(), cpu_seconds()
        serial += [score(r, g, timeout=args.timeout) for r, g in zip(block_r, block_g, strict=True)]
        t_serial += time.monotonic() - t0
        cpu_serial += cpu_seconds() - c0
        serial_timeouts += stats()["timeouts"] - before
        pids = pool_module._shared.pids if pool_module._shared else []
        w0 = {pid: cpu_seconds(pid) for pid in pids}
        t0, c0 = time.monotonic(), cpu_seconds()
        verdicts += grade_batch(block_r, block_g, timeout=args.timeout, workers=workers)
        t_batch += time.monotonic() - t0
        parent_r = cpu_seconds() - c0
        cpu_parent_batch += parent_r
        # On idle cores a round takes about the parent's time plus its busiest worker's time.
        round_cpu = {pid: cpu_seconds(pid) - w0.get(pid, 0.0) for pid in pool_module._shared.pids}
        projected_time += parent_r + max(round_cpu.values())
        for pid, c in round_cpu.items():  # a replaced worker's time is lost (none expected here)
            cpu_workers[pid] = cpu_workers.get(pid, 0.0) + c
    batch = [v.score for v in verdicts]
    batch_timeouts = sum(v.timed_out for v in verdicts)
    close_pool()
    capacity = (capacity_before + parallel_capacity(workers)) / 2
    projected = cpu_serial / projected_time

    timed_out = {i for i, v in enumerate(verdicts) if v.timed_out}
    compared = [i for i in range(len(responses)) if i not in timed_out]
    agree = sum(serial[i] == batch[i] for i in compared)
    n = len(responses)
    rate_serial, rate_batch = n / t_serial, n / t_batch
    ratio = rate_batch / rate_serial
    lines = [
        "# Verifier throughput: `score_batch` vs serial `score`",
        "",
        f"Command: `{command(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"pool of {workers} workers; timeout {args.timeout:g} s per response.",
        "",
        f"Responses: {n} ({sum(s == 1.0 for s in serial)} correct by the serial grader), "
        f"including {len(PATHOLOGICAL)} pathological answers and one 1 MB response.",
        "",
        "| | seconds | responses/s |",
        "|---|---|---|",
        f"| serial `score` loop (baseline) | {t_serial:.2f} | {rate_serial:.1f} |",
        f"| `score_batch`, warm pool | {t_batch:.2f} | {rate_batch:.1f} |",
        "",
        f"**Speed-up: {ratio:.2f}x** (target 1.8x on 2 cores).",
        "",
        f"Parallel capacity in the same run ({workers} copies of a pure-Python CPU loop at once against "
        f"one alone, before and after, averaged): {capacity:.2f} cores; 2.0 means two idle cores. For "
        f"CPU-bound work the speed-up is bounded by about this (time spent waiting out deadlines is not).",
        "",
        "CPU time (independent of other load on the machine): serial "
        f"{cpu_serial:.2f} s; batch: parent {cpu_parent_batch:.2f} s, workers "
        f"{' + '.join(f'{c:.2f}' for c in cpu_workers.values())} s. Projected speed-up on {workers} idle cores "
        f"(serial CPU / sum over rounds of (parent CPU + busiest worker CPU)): **{projected:.2f}x**.",
        "",
        f"Agreement (items that timed out in neither run): {agree}/{len(compared)}. "
        f"Timeouts: serial {serial_timeouts}, batch {batch_timeouts}.",
        f"Pool start-up (first batch, {workers} workers, including their parser warm-up): {startup:.2f} s, "
        "paid once per process. Both sides start warm (`polaris.reward.verify.warm_up`).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
