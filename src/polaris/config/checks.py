"""Checks across a recipe's sections (each message names the key to change), and the batch arithmetic:
how one optimizer step's sequences split over processes and micro-batches, and a stage's learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from polaris.errors import RecipeError

if TYPE_CHECKING:  # the schema calls check_recipe when a recipe is built: no import back at run time
    from polaris.config.schema import RecipeConfig, StageSettings, TrainSettings


def stage_context(recipe: RecipeConfig, index: int) -> int | None:
    """Tokens a stage's sequences reach (prompt + response), or ``None`` without ``max_prompt_tokens``."""
    prompt = recipe.train.max_prompt_tokens
    return None if prompt is None else prompt + recipe.stages[index].max_response_tokens


def check_recipe(recipe: RecipeConfig) -> None:
    """Checks across sections; each message names the key to change and how."""
    for i, stage in enumerate(recipe.stages):
        if stage.val_temperature is not None and stage.temperature != "search" \
                and stage.val_temperature > float(stage.temperature):
            raise RecipeError(
                f"stages[{i}].val_temperature {stage.val_temperature} is above the stage's temperature "
                f"{stage.temperature}; docs/method.md § Evaluation protocol: never evaluate above the training temperature, lower it"
            )
    buffer = recipe.train.overlong_buffer
    for i, stage in enumerate(recipe.stages):
        if buffer and buffer >= stage.max_response_tokens:
            raise RecipeError(
                f"train.overlong_buffer {buffer} must be below stages[{i}].max_response_tokens "
                f"{stage.max_response_tokens}, or every response of that stage would be penalised; lower it"
            )
    batch_split(recipe.train, recipe.launch.num_processes or 1, key="launch.num_processes")
    # The model's positions and YaRN's settings are checked where they are resolved, by the run plan
    # (polaris.run.plan.check_model_positions, yarn_settings).


@dataclass(frozen=True)
class BatchSplit:
    """How one optimizer step's sequences spread over the training processes."""

    prompts: int
    rollouts: int
    processes: int
    micro_batch: int
    """Sequences per forward/backward pass on each process."""

    @property
    def sequences(self) -> int:
        return self.prompts * self.rollouts

    @property
    def per_process(self) -> int:
        return self.sequences // self.processes

    @property
    def accumulation(self) -> int:
        """Micro-batches accumulated into the one optimizer step."""
        return self.per_process // self.micro_batch


def batch_split(train: TrainSettings, processes: int, *, key: str = "processes") -> BatchSplit:
    """The batch of ``train`` over ``processes``; a :class:`RecipeError` says which key to change when the
    sequences do not divide evenly (over the processes, then into micro-batches)."""
    sequences = train.batch_prompts * train.rollouts
    if processes < 1 or sequences % processes:
        raise RecipeError(
            f"train.batch_prompts × train.rollouts = {sequences} sequences must divide evenly over "
            f"{key} = {processes}; change either (e.g. a power of two of processes)"
        )
    share = sequences // processes
    micro = train.micro_batch_sequences or share
    if micro < 1 or share % micro:
        raise RecipeError(
            f"train.micro_batch_sequences {micro} must be >= 1 and divide each process's share of "
            f"train.batch_prompts × train.rollouts = {sequences} sequences ({share} on each of {processes})"
        )
    return BatchSplit(train.batch_prompts, train.rollouts, processes, micro)


def stage_learning_rate(recipe_train: TrainSettings, stage: StageSettings) -> float:
    """A stage's learning rate: its own ``learning_rate``, else ``train.learning_rate``."""
    return stage.learning_rate if stage.learning_rate is not None else recipe_train.learning_rate
