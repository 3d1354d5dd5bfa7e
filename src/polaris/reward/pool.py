"""Worker processes for math-verify, with a hard deadline per item (docs/method.md § The reward: "nothing has a timeout"
was a defect of the reference).

Why processes: math-verify's own timeout is ``signal.alarm``, which only works on a main thread,
and a CPU-bound sympy call cannot be stopped from another thread. Each worker is a fresh
interpreter (``python -m polaris.reward._worker``, started with ``subprocess``: neither ``fork`` of
a threaded torch parent nor a re-import of the parent's ``__main__``) that imports only
:mod:`polaris.reward`. It talks line-delimited JSON over its stdin/stdout.

Scheduling: items are queued slowest-guess first (:func:`cost_hint`), each for the worker chosen
by a hash of its ground truths, so that
the checks of one problem share that worker's parse caches and parser tables (with one queue,
two workers each re-learn the same parses: about 13% more CPU on the benchmark's responses, 7%
with affinity). Items go out in small chunks (up to :data:`CHUNK_MAX`) to idle workers; a worker
whose queue is empty takes the items queued behind a check that has run for more than
:data:`STEAL_AFTER` seconds, else from the end of the longest other queue. A worker answers item
by item. Each item gets ``timeout`` seconds inside the worker (a signal deadline: the item
scores 0 with ``timed_out=True`` and the worker carries on) and ``timeout + grace`` seconds in the
parent; past that the worker is killed (SIGKILL), the item scores 0 with ``timed_out=True``, the
rest of its chunk goes back to its queue and a new worker is started. A worker that dies mid-item
(killed from outside, a crash, the memory limit) is replaced and the item is graded again on the new
one (counted in ``retried``), so the batch's verdicts do not change; an item under which a second
worker dies is the cause, and scores 0 (counted in ``unscored``).
If workers cannot be started at all the pool reports the items it could not score (``None``) and
the caller falls back (:mod:`polaris.reward.grading`).

Counters (:func:`stats`): ``timeouts`` — graded items that ran out of time, in or out of the pool;
``workers_killed`` — workers killed at the hard deadline; ``worker_crashes`` — workers that died
on their own; ``retried`` — items graded again after their worker died; ``unscored`` — items scored 0
because no checker could run them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import selectors
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

#: Seconds the parent waits past the per-item timeout before it kills the worker.
GRACE = 0.5
#: Most items sent to a worker in one message.
CHUNK_MAX = 8
#: Seconds a worker may spend on one check before idle workers take the items queued behind it.
STEAL_AFTER = 0.25
#: Seconds a new worker may take to import math-verify and report ready.
STARTUP_TIMEOUT = 60.0
#: Consecutive workers that fail to start before the pool gives up.
MAX_START_FAILURES = 3

Item = tuple[str, tuple[str, ...]]
Result = tuple[float, bool]

_counters = {"timeouts": 0, "workers_killed": 0, "worker_crashes": 0, "retried": 0, "unscored": 0}
_counters_lock = threading.Lock()


def count(name: str, n: int = 1) -> None:
    if n:
        with _counters_lock:
            _counters[name] += n


def stats() -> dict[str, int]:
    """Totals since the process started: ``timeouts``, ``workers_killed``, ``worker_crashes``, ``unscored``."""
    with _counters_lock:
        return dict(_counters)


def timeout_count() -> int:
    """How many graded items have timed out in this process so far."""
    return stats()["timeouts"]


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "polaris.reward._worker"]


class _Worker:
    def __init__(self, command: Sequence[str]) -> None:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C in the terminal goes to the parent, not to workers
        )
        self.fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self.buffer = b""
        self.ready = False
        self.started = time.monotonic()
        self.tasks: list[int] = []
        self.pos = 0
        self.deadline = math.inf

    @property
    def busy(self) -> bool:
        return bool(self.tasks)

    def send(self, payload: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(payload)
        self.proc.stdin.flush()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()

    def stop(self, wait: float) -> None:
        """Close stdin (the worker exits at end of input); kill it if it has not left after ``wait``."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=wait)
        self.kill()


def cost_hint(item: Item) -> int:
    """A guess at how long a check takes, to start the slow ones first (longest-first scheduling,
    so that a slow check does not start last and keep one worker busy while the others idle).
    Longer LaTeX parses longer; powers of powers and factorials are what hits the deadline."""
    answer, truths = item
    heavy = "!" in answer or answer.count("^") > 1
    return len(answer) + sum(len(t) for t in truths) + (100_000 if heavy else 0)


class VerifierPool:
    """``size`` worker processes grading (answer, truths) items with hard deadlines.

    ``command`` starts one worker (default: :func:`worker_command`); tests pass a wrapper script.
    Not thread-safe: :mod:`polaris.reward.grading` serialises use of the shared pool.
    """

    def __init__(self, size: int, *, command: Sequence[str] | None = None, grace: float = GRACE) -> None:
        if size < 1:
            raise ValueError(f"a verifier pool needs at least one worker, got {size}")
        self.size = size
        self.grace = grace
        self.command = list(command or worker_command())
        self.owner_pid = os.getpid()
        self.broken = False
        self._selector = selectors.DefaultSelector()
        self._slots: list[_Worker | None] = [None] * size
        self._start_failures = 0
        for slot in range(size):
            self._spawn(slot)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    @property
    def _workers(self) -> list[_Worker]:
        return [w for w in self._slots if w is not None]

    def _spawn(self, slot: int) -> None:
        try:
            w = _Worker(self.command)
        except OSError:
            self._start_failed()
            return
        self._slots[slot] = w
        self._selector.register(w.fd, selectors.EVENT_READ, (slot, w))

    def _start_failed(self) -> None:
        self._start_failures += 1
        if self._start_failures >= MAX_START_FAILURES:
            self.broken = True

    def _retire(self, slot: int) -> None:
        w = self._slots[slot]
        if w is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(w.fd)
            w.kill()
            self._slots[slot] = None

    def run(self, items: Sequence[Item], timeout: float) -> list[Result | None]:
        """(score, timed_out) per item, in order; ``None`` for items the pool could not grade.

        Items with the same ground truths go to the same worker's queue (its parse caches and
        parser tables then serve all of them); an idle worker with an empty queue takes work from
        the end of the longest other queue.
        """
        results: list[Result | None] = [None] * len(items)
        queues: list[deque[int]] = [deque() for _ in range(self.size)]
        for i in sorted(range(len(items)), key=lambda i: -cost_hint(items[i])):
            queues[zlib.crc32("\x00".join(items[i][1]).encode("utf-8", "surrogatepass")) % self.size].append(i)
        done = [False] * len(items)
        crashed: set[int] = set()  # items whose worker died under them once
        left = len(items)
        chunk = max(1, min(CHUNK_MAX, len(items) // (64 * self.size)))  # small chunks: an even finish

        def finish(i: int, result: Result | None) -> None:
            nonlocal left
            if not done[i]:
                done[i] = True
                results[i] = result
                left -= 1

        def take(slot: int, now: float) -> list[int]:
            q = queues[slot]
            if q:
                return [q.popleft() for _ in range(min(chunk, len(q)))]
            # Steal: first the items waiting behind a long-running check (from the front), else
            # from the end of the longest queue (leaving its owner the items it is about to take).
            for other, w in enumerate(self._slots):
                started = w.deadline - timeout - self.grace if w is not None and w.busy else now
                if queues[other] and now - started > STEAL_AFTER:
                    return [queues[other].popleft() for _ in range(min(chunk, len(queues[other])))]
            longest = max(queues, key=len)
            return [longest.pop() for _ in range(min(chunk, len(longest)))][::-1]

        def lose_worker(slot: int, *, killed: bool) -> None:
            """Retire the worker in ``slot``: its current item is lost (timed out or crashed), the
            rest of its chunk goes back to its queue."""
            w = self._slots[slot]
            assert w is not None
            if w.busy:
                current, rest = w.tasks[w.pos], w.tasks[w.pos + 1 :]
                if killed:
                    finish(current, (0.0, True))
                    count("workers_killed")
                    queues[slot].extendleft(reversed(rest))
                else:
                    count("worker_crashes")
                    if current in crashed:  # it killed a second worker: the item is the cause
                        finish(current, (0.0, False))
                        count("unscored")
                        queues[slot].extendleft(reversed(rest))
                    else:  # a worker killed from outside (or the item's first crash): grade it again
                        crashed.add(current)
                        count("retried")
                        queues[slot].extendleft(reversed([current, *rest]))
            elif not w.ready:
                self._start_failed()
            else:
                count("worker_crashes")
            self._retire(slot)
            if not self.broken:
                self._spawn(slot)

        while left and not self.broken and self._workers:
            now = time.monotonic()
            for slot, w in enumerate(self._slots):
                if w is None or not w.ready or w.busy:
                    continue
                tasks = take(slot, now)
                if not tasks:
                    continue
                payload = {"timeout": timeout, "items": [[items[i][0], list(items[i][1])] for i in tasks]}
                try:
                    w.send(json.dumps(payload).encode() + b"\n")
                except OSError:
                    queues[slot].extendleft(reversed(tasks))
                    lose_worker(slot, killed=False)
                    continue
                w.tasks, w.pos, w.deadline = tasks, 0, now + timeout + self.grace

            waits = [w.deadline if w.busy else w.started + STARTUP_TIMEOUT for w in self._workers if w.busy or not w.ready]
            wait = max(0.0, min(waits) - time.monotonic()) if waits else 0.05
            for key, _ in self._selector.select(wait):
                slot, w = key.data
                if self._slots[slot] is not w:
                    continue  # retired earlier in this round
                try:
                    data = os.read(w.fd, 1 << 16)
                except OSError:
                    data = b""
                if not data:
                    lose_worker(slot, killed=False)
                    continue
                w.buffer += data
                while b"\n" in w.buffer and self._slots[slot] is w:
                    line, w.buffer = w.buffer.split(b"\n", 1)
                    if not self._handle_line(w, line, finish, timeout):
                        lose_worker(slot, killed=False)

            now = time.monotonic()
            for slot, w in enumerate(self._slots):
                if w is None:
                    if not self.broken:
                        self._spawn(slot)
                elif w.busy and now > w.deadline:
                    lose_worker(slot, killed=True)
                elif not w.ready and now > w.started + STARTUP_TIMEOUT:
                    lose_worker(slot, killed=False)
        if left:
            self.broken = True
        return results

    def _handle_line(self, w: _Worker, line: bytes, finish: Callable[[int, Result | None], None], timeout: float) -> bool:
        """Apply one protocol line from ``w``; ``False`` when it is malformed."""
        try:
            message = json.loads(line)
        except ValueError:
            return False
        if not w.ready:
            if isinstance(message, dict) and "ready" in message:
                w.ready = True
                self._start_failures = 0
                return True
            return False
        if not (w.busy and isinstance(message, list) and len(message) == 2):
            return False
        score, timed_out = message
        finish(w.tasks[w.pos], (1.0 if score == 1.0 else 0.0, bool(timed_out)))
        w.pos += 1
        w.deadline = time.monotonic() + timeout + self.grace
        if w.pos == len(w.tasks):
            w.tasks, w.pos, w.deadline = [], 0, math.inf
        return True

    def close(self, wait: float = 2.0) -> None:
        """Stop every worker (end of input, then SIGKILL after ``wait`` seconds)."""
        if os.getpid() != self.owner_pid:
            return  # a forked child holds a copy of the parent's pool: not ours to stop
        workers, self._slots = self._workers, [None] * self.size
        for w in workers:
            with contextlib.suppress(OSError):
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
        deadline = time.monotonic() + wait
        for w in workers:
            w.stop(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self._selector.close()
        self.broken = True


# -- the shared pool -------------------------------------------------------------------------------

_shared: VerifierPool | None = None
shared_lock = threading.RLock()


def shared_pool(size: int) -> VerifierPool:
    """The process-wide pool (created on first use; rebuilt when broken or resized). Hold
    :data:`shared_lock` while using it."""
    global _shared
    if _shared is not None and _shared.owner_pid != os.getpid():
        _shared = None  # inherited through fork: leave the parent's workers alone
    if _shared is not None and (_shared.broken or _shared.size != size):
        _shared.close()
        _shared = None
    if _shared is None:
        _shared = VerifierPool(size)
    return _shared


def close_pool() -> None:
    """Stop the shared pool's workers (also run at interpreter exit). The next batch starts a new one."""
    global _shared
    locked = shared_lock.acquire(timeout=5.0)  # a daemon thread may be mid-batch at exit
    try:
        if _shared is not None:
            _shared.close()
            _shared = None
    finally:
        if locked:
            shared_lock.release()


atexit.register(close_pool)
