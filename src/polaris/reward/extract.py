"""Find the text to grade and the final answer in a model response (docs/method.md § The reward).

* :func:`answer_region` — with ``require_think`` (the training reward) a response without
  ``</think>`` has no answer; otherwise the region is the text after the *first* ``</think>``, or
  the whole text when there is none.
* :func:`extract_boxed` — the content of the last ``\\boxed{...}`` / ``\\fbox{...}`` by brace
  matching (nested braces and escaped ``\\{`` ``\\}`` handled), ``\\boxed {x}`` with spaces, and
  ``\\boxed 5`` without braces (one token). When the last box sits inside an earlier box (``\\boxed{a
  \\fbox{b}}``), the outer box is the answer.
* :func:`unwrap_boxes` — an answer that is itself one whole box (``\\boxed{3}``, what
  :func:`extract_boxed` gives for ``\\boxed{\\boxed{3}}``) is graded as that box's content.

Everything here is plain string scanning with bounded work per box, so a 1 MB response costs a few
``str.rfind`` calls: a box whose closing brace is not within :data:`MAX_BOX_CHARS` characters (a
truncated response) has no answer.
"""

from __future__ import annotations

import re

THINK_END = "</think>"

#: A box whose content is longer than this is treated as unclosed (truncated output, not an answer).
MAX_BOX_CHARS = 10_000
#: How many earlier boxes are checked for one that encloses the last box.
_MAX_ENCLOSING_CHECKS = 8

_COMMANDS = ("\\boxed", "\\fbox")
_SPACES = re.compile(r"[ \t\r\n]*")
_TOKEN = re.compile(r"[^\s$]+")
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


def answer_region(response: str, *, require_think: bool) -> str | None:
    """The part of ``response`` that is graded; ``None`` when ``require_think`` and no ``</think>``."""
    i = response.find(THINK_END)
    if i < 0:
        return None if require_think else response
    return response[i + len(THINK_END) :]


_UNCLOSED = ("", -1)  # a box opened and never closed (within MAX_BOX_CHARS)


def _box_at(text: str, start: int) -> tuple[str, int] | None:
    """The box whose command starts at ``start``: (content, end index); :data:`_UNCLOSED`; or
    ``None`` when the command there is not a box (``\\boxedfoo``, a bare ``\\fbox``)."""
    is_boxed = text.startswith("\\boxed", start)
    name_end = start + (len("\\boxed") if is_boxed else len("\\fbox"))
    if name_end < len(text) and (text[name_end].isalpha() or text[name_end] == "@"):
        return None  # a longer command name such as \boxedfoo or \fboxsep
    k = _SPACES.match(text, name_end).end()
    if k < len(text) and text[k] == "{":
        depth = 0
        window_end = min(len(text), k + MAX_BOX_CHARS + 2)
        for m in _BRACE_OR_ESCAPE.finditer(text, k, window_end):
            tok = m.group()
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
                if depth == 0:
                    return text[k + 1 : m.start()].strip(), m.end()
        return _UNCLOSED
    if is_boxed and k > name_end:
        m = _TOKEN.match(text, k)  # "\\boxed 5": one token, as TeX reads it
        if m:
            return m.group(), m.end()
    return None


def _last_command(text: str, end: int) -> int:
    return max(text.rfind(cmd, 0, end) for cmd in _COMMANDS)


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text``; ``None`` if none.

    Examples: ``"so \\boxed{\\frac{1}{2}}."`` -> ``"\\frac{1}{2}"``; ``"\\boxed{1} then \\boxed{2}"``
    -> ``"2"``; ``"\\boxed{12"`` (cut off) -> ``None``.
    """
    pos = len(text)
    while True:
        start = _last_command(text, pos)
        if start < 0:
            return None
        box = _box_at(text, start)
        if box is _UNCLOSED:
            return None  # the last box is opened and never closed: a truncated answer
        if box is not None:
            break
        pos = start
    content = box[0]
    # An earlier box that closes after this one starts encloses it: the outer one is the answer.
    pos = start
    for _ in range(_MAX_ENCLOSING_CHECKS):
        outer_start = _last_command(text, pos)
        if outer_start < 0:
            break
        outer = _box_at(text, outer_start)
        if outer is not None and outer is not _UNCLOSED and outer[1] > start:
            content, start = outer[0], outer_start
        pos = outer_start
    return content


def unwrap_boxes(answer: str) -> str:
    """``answer`` without boxes that wrap all of it: ``\\boxed{3}`` or ``\\fbox{\\boxed{3}}`` -> ``3``.

    What :func:`extract_boxed` returns for a box in a box; the grader compares the inner content
    (``\\boxed{\\boxed{5.}}`` is the answer ``5.``). ``\\boxed{a} + \\boxed{b}`` is left as it is.
    """
    for _ in range(_MAX_ENCLOSING_CHECKS):
        text = answer.strip()
        if not text.startswith(_COMMANDS):
            break
        box = _box_at(text, 0)
        if box is None or box is _UNCLOSED or box[1] != len(text):
            break
        answer = box[0]
    return answer
