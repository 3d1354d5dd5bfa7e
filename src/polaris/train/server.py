"""The vLLM server of ``train.engine.vllm_mode: server``: reached before training, and named when it fails.

The trainer talks to the server (TRL's ``trl vllm-serve``) over HTTP for generation and over NCCL for
the weights. :func:`wait_for_server` asks its ``/health/`` endpoint until it answers or the recipe's
``train.engine.vllm_server_timeout`` has passed, so an unreachable server is a clear error naming host
and port before any model loads, not a hang. :func:`lost_server` recognises the error of a server that
dies mid-run; the stage then stops with its last checkpoint kept, and the same command resumes once the
server is back.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from polaris.errors import RunError


def wait_for_server(host: str, port: int, timeout: float, *, poll: float = 1.0) -> float:
    """Seconds it took ``http://host:port/health/`` to answer 200; :class:`RunError` after ``timeout``."""
    url = f"http://{host}:{port}/health/"
    start = time.monotonic()
    last = "no answer"
    while True:
        left = timeout - (time.monotonic() - start)
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, min(5.0, left))) as answer:
                if answer.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:  # refused, unreachable, timed out, a name that does not resolve
            last = str(getattr(e, "reason", e))
        if time.monotonic() - start + poll > timeout:
            raise RunError(
                f"the vLLM server at {host}:{port} did not answer within {timeout:g}s ({last}). Start it "
                "(`trl vllm-serve --model MODEL --port PORT`, see docs/real-models.md) or correct "
                "train.engine.vllm_host / vllm_port / vllm_server_timeout, then run the same command"
            )
        time.sleep(poll)


def lost_server(error: BaseException, host: str, port: int) -> RunError | None:
    """A :class:`RunError` naming the server when ``error`` (or one it came from) is a lost connection."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        kind = f"{type(e).__module__}.{type(e).__name__}"
        if isinstance(e, ConnectionError) or kind.startswith(("requests.exceptions.", "urllib3.exceptions.")):
            return RunError(
                f"lost the vLLM server at {host}:{port} mid-stage ({type(e).__name__}: {str(e)[:200]}). The last "
                "checkpoint is kept: run the same command to resume once the server is back"
            )
        e = e.__cause__ or e.__context__
    return None
