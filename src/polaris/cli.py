"""The ``polaris`` command.

Each command is one typed config dataclass (its field docstrings become ``--help``) and a
``main(config)`` function, in the module named here. Config modules import nothing heavy at
module level, so ``polaris --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: command name -> (module, config class). Each module has ``main(config) -> int | None``.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("polaris.pipeline", "RunConfig"),
}


def main(argv: Sequence[str] | None = None) -> int:
    import tyro

    configs = {name: getattr(importlib.import_module(mod), cls) for name, (mod, cls) in COMMANDS.items()}
    config = tyro.extras.subcommand_cli_from_dict(
        configs,
        prog="polaris",
        description="POLARIS: difficulty-aware, diversity-tuned, multi-stage GRPO for reasoning models.",
        args=list(argv) if argv is not None else None,
    )
    name = next(n for n, c in configs.items() if isinstance(config, c))
    result = importlib.import_module(COMMANDS[name][0]).main(config)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
