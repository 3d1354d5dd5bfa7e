"""The ``polaris`` command.

Each command is one typed config dataclass (its field docstrings become ``--help``) and a
``main(config)`` function, in the module named here. Config modules import nothing heavy at
module level, so ``polaris --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: command name -> (module, config class[, entry function; default ``main``]).
#: The entry function takes the parsed config and returns an exit status (or None for 0).
COMMANDS: dict[str, tuple[str, ...]] = {
    "run": ("polaris.pipeline", "RunConfig"),
    "profile": ("polaris.commands", "ProfileConfig", "profile_main"),
    "temperature": ("polaris.commands", "TemperatureConfig", "temperature_main"),
    "train": ("polaris.commands", "TrainConfig", "train_main"),
    "eval": ("polaris.evaluate", "EvalConfig"),
    "report": ("polaris.report", "ReportConfig"),
    "grade": ("polaris.grade", "GradeConfig"),
    "configs": ("polaris.launch", "ConfigPathConfig", "config_path_main"),
}


def main(argv: Sequence[str] | None = None) -> int:
    import tyro

    configs = {name: getattr(importlib.import_module(spec[0]), spec[1]) for name, spec in COMMANDS.items()}
    config = tyro.extras.subcommand_cli_from_dict(
        configs,
        prog="polaris",
        description="POLARIS: difficulty-aware, diversity-tuned, multi-stage GRPO for reasoning models.",
        args=list(argv) if argv is not None else None,
    )
    name = next(n for n, c in configs.items() if isinstance(config, c))
    spec = COMMANDS[name]
    entry = spec[2] if len(spec) > 2 else "main"
    result = getattr(importlib.import_module(spec[0]), entry)(config)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
