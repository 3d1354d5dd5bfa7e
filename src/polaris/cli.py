"""The ``polaris`` command, and the only place that turns errors into exit statuses.

Each command is one typed config dataclass (its field docstrings become ``--help``) and an entry
function, both in :mod:`polaris.commands` (or :mod:`polaris.grade`). Config modules import nothing
heavy at module level, so ``polaris --help`` stays fast.

A :class:`polaris.errors.PolarisError` (a bad recipe key, a malformed row, a backend that is not
installed, ...) is printed as ``polaris COMMAND: message`` without a traceback, with exit status 2; a
full disk likewise, with exit status 3; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Sequence

#: command name -> (module, config class, entry function). The entry function takes the parsed config
#: and returns an exit status (or None for 0).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("polaris.commands", "RunConfig", "run_main"),
    "profile": ("polaris.commands", "ProfileConfig", "profile_main"),
    "temperature": ("polaris.commands", "TemperatureConfig", "temperature_main"),
    "train": ("polaris.commands", "TrainConfig", "train_main"),
    "eval": ("polaris.commands", "EvalConfig", "eval_main"),
    "report": ("polaris.commands", "ReportConfig", "report_main"),
    "grade": ("polaris.grade", "GradeConfig", "main"),
    "configs": ("polaris.commands", "ConfigPathConfig", "config_path_main"),
}

#: Exit status of an error the user can act on (bad input, bad settings).
USAGE_ERROR = 2
#: Exit status when the disk (or the quota) is full: nothing half-written stays, the same command resumes.
DISK_FULL = 3


def main(argv: Sequence[str] | None = None) -> int:
    import tyro

    from polaris.errors import PolarisError

    args = list(argv) if argv is not None else sys.argv[1:]
    # vLLM logs every engine's settings at INFO (dozens of lines per engine, one engine per stage and
    # evaluation): warnings and errors only, unless the user asks for more.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    name = next((a for a in args if not a.startswith("-")), "polaris")
    try:
        configs = {n: getattr(importlib.import_module(spec[0]), spec[1]) for n, spec in COMMANDS.items()}
        config = tyro.extras.subcommand_cli_from_dict(
            configs,
            prog="polaris",
            description="POLARIS: difficulty-aware, diversity-tuned, multi-stage GRPO for reasoning models.",
            args=args,
        )
        name = next(n for n, c in configs.items() if isinstance(config, c))
        module, _, entry = COMMANDS[name]
        return int(getattr(importlib.import_module(module), entry)(config) or 0)
    except PolarisError as e:
        print(f"polaris {name}: {e}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as e:
        full = disk_full(e)
        if full is None:
            raise
        print(f"polaris {name}: no space left on the device ({full}). Files are written whole or not at all "
              "and a checkpoint is used only once complete: free some space and run the same command to "
              "resume", file=sys.stderr)
        return DISK_FULL


def disk_full(error: BaseException) -> str | None:
    """What ran out of space, when ``error`` (or an error it came from) is a full disk or quota; else ``None``.

    Libraries that write checkpoints wrap the operating system's error in their own (safetensors: \"I/O error:
    No space left on device (os error 28)\"), so the message is read too.
    """
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"writing {e.filename}" if e.filename else (e.strerror or "ENOSPC")
        text = str(e)
        for sign in ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122"):
            if sign in text:
                return text.strip().splitlines()[0][:200]
        e = e.__cause__ or e.__context__
    return None


def entry_point() -> None:
    """The console script: ``sys.exit`` lives here and nowhere else."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
