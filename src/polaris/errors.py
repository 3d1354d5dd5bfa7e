"""The errors polaris raises on purpose.

Every error a user can cause or fix — a bad recipe key, a malformed data row, a model folder without
a tokenizer, a backend that is not installed, a launch setting that cannot work — is a :class:`PolarisError` whose message says what is
wrong and what to change. The ``polaris`` command (:mod:`polaris.cli`) is the only place that turns
them into an exit status: it prints the message without a traceback and exits with status 2.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class PolarisError(Exception):
    """Base of the errors a user can act on; the message names the file, row, field or key."""


class RecipeError(PolarisError, ValueError):
    """A recipe (or a command-line override of one) is wrong; the message names the file and the key."""


class UsageError(PolarisError, ValueError):
    """A command was called in a way that cannot work (a missing option, two that exclude each other)."""


class RunError(PolarisError, RuntimeError):
    """A run directory cannot be used as asked (another recipe's directory, a failed step on rank 0)."""


class ModelError(PolarisError, ValueError):
    """A model folder cannot be used: no ``config.json``, no tokenizer, a tokenizer without a chat template
    or without an EOS token; the message names the folder, the file and the missing field."""


__all__ = ["ModelError", "PolarisError", "RecipeError", "RunError", "UsageError"]
