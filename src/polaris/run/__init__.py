"""The run layer: what a run directory holds, the plan resolved from a recipe, the steps, their order.

- :mod:`polaris.run.layout` — :class:`RunLayout`, the only code that knows a run directory's paths;
- :mod:`polaris.run.plan` — :func:`build_plan`, every value a run uses, decided once (``--dry-run``);
- :mod:`polaris.run.steps` — prepare, warm start, profile, temperature, drop, train, evaluate, report;
- :mod:`polaris.run.pipeline` — :func:`run_recipe`, the order of the steps and their status;
- :mod:`polaris.run.launch` — the commands that start a recipe on GPUs;
- :mod:`polaris.run.report` — ``report.md`` with plots;

Layers (nothing imports upward): data, models, reward, recipe → generation, backends → train,
evaluation → run → the ``polaris`` command (:mod:`polaris.commands`, :mod:`polaris.cli`).
"""

from __future__ import annotations

from polaris.run.layout import RunLayout

__all__ = ["RunLayout"]
