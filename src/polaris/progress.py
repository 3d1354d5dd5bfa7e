"""Progress display for long work: tqdm bars on stderr, quiet when POLARIS_QUIET=1."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get("POLARIS_QUIET", "") not in ("", "0")


def progress(items: Iterable[T], *, desc: str | None = None, total: int | None = None, unit: str = "it") -> Iterator[T]:
    if quiet() or desc is None:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)


def log(message: str) -> None:
    """One line of progress for the person watching (stderr)."""
    import sys

    if not quiet():
        print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """A line the person running polaris must see (something was set aside or fell back): always shown."""
    import sys

    print(message, file=sys.stderr, flush=True)
