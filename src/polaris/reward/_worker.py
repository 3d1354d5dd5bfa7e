"""A verifier worker process: ``python -m polaris.reward._worker`` (started by the pool).

Protocol, one JSON value per line (ASCII): the worker first writes ``{"ready": PID}`` once
math-verify is imported and warm; then for every line ``{"timeout": T, "items": [[answer,
[truth, ...]], ...]}`` read from stdin it writes one line ``[score, timed_out]`` per item, in order,
as soon as that item is done. End of stdin ends the worker.

Each item runs under a ``setitimer`` deadline of T seconds (the worker's main thread can use
signals); the parent adds a hard deadline of T + grace and kills the worker if that passes.
Anything a library prints goes to stderr: stdout carries only the protocol.
"""

from __future__ import annotations

import json
import os
import sys
from typing import BinaryIO

from polaris.reward.verify import can_use_signals, check_with_deadline, symbolic_match, warm_up

#: Address-space limit per worker, so a runaway big-number computation fails with MemoryError
#: (a wrong answer) instead of swapping the machine. 0 disables it.
MEMORY_LIMIT_BYTES = int(os.environ.get("POLARIS_VERIFY_WORKER_MEMORY", str(8 << 30)))


def grade_item(answer: str, truths: list[str], timeout: float) -> tuple[float, bool]:
    try:
        if not can_use_signals():  # no setitimer (Windows): the parent's hard deadline is the only one
            return (1.0 if symbolic_match(answer, truths) else 0.0), False
        return check_with_deadline(answer, truths, timeout)
    except Exception:
        return 0.0, False


def _limit_memory() -> None:
    if MEMORY_LIMIT_BYTES <= 0:
        return
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _protocol_stream() -> BinaryIO:
    """Keep the real stdout for the protocol; point fd 1 and ``sys.stdout`` at stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main() -> int:
    out = _protocol_stream()
    _limit_memory()
    warm_up()  # import math-verify and warm its parser before saying ready
    out.write(json.dumps({"ready": os.getpid()}).encode() + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request = json.loads(line)
        timeout = float(request["timeout"])
        for answer, truths in request["items"]:
            result = grade_item(answer, truths, timeout)
            out.write(json.dumps(result).encode() + b"\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
