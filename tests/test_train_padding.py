"""Long sequences on GPUs: the attention kernel chosen for the training model reaches it, and each
micro-batch is trimmed to its own longest completion without changing the loss."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from polaris.config import TrainSettings
from polaris.data.problem import Problem
from polaris.errors import ModelError
from polaris.models.loading import ATTENTION, resolve_attention
from polaris.train.grpo import trim_completion_padding


def _with_flash(monkeypatch, installed: bool) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if installed else None) if name == "flash_attn" else real(name, *a))


def test_auto_attention_is_flash_on_a_gpu_with_the_package_else_sdpa(monkeypatch):
    _with_flash(monkeypatch, True)
    assert resolve_attention("auto", gpu=True, dtype="bfloat16") == ("flash_attention_2", None)
    assert resolve_attention("auto", gpu=True, dtype="float32") == ("sdpa", None)  # FlashAttention needs half precision
    assert resolve_attention("auto", gpu=False, dtype="bfloat16") == ("sdpa", None)
    _with_flash(monkeypatch, False)
    impl, note = resolve_attention("auto", gpu=True, dtype="bfloat16")
    assert impl == "sdpa" and "flash-attn" in note and "model.attn_implementation" in note
    assert resolve_attention("eager", gpu=False, dtype="float32") == ("eager", None)


def test_flash_attention_by_name_without_its_package_or_a_gpu_is_refused(monkeypatch):
    _with_flash(monkeypatch, False)
    with pytest.raises(ModelError, match=r"model.attn_implementation: flash_attention_2 .*\(not installed\)"):
        resolve_attention("flash_attention_2", gpu=True, dtype="bfloat16")
    _with_flash(monkeypatch, True)
    with pytest.raises(ModelError, match="needs a CUDA GPU"):
        resolve_attention("flash_attention_2", gpu=False, dtype="bfloat16")
    with pytest.raises(ModelError, match="is not one of"):
        resolve_attention("flash", gpu=True, dtype="bfloat16")


def test_the_recipe_key_takes_the_same_values_as_the_loader():
    import typing

    from polaris.config import ModelSettings

    assert typing.get_args(typing.get_type_hints(ModelSettings)["attn_implementation"]) == ATTENTION


def test_trimming_drops_only_columns_that_are_padding_in_every_row():
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    inputs = {
        "prompt_ids": torch.tensor([[0, 7], [8, 9]]), "prompt_mask": torch.tensor([[0, 1], [1, 1]]),
        "completion_ids": torch.arange(10).view(2, 5), "completion_mask": mask,
        "old_per_token_logps": torch.full((2, 5), -0.5), "importance_sampling_ratio": torch.ones(2, 1),
        "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(5.0),
    }
    out = trim_completion_padding(inputs)
    assert out["completion_ids"].tolist() == [[0, 1, 2], [5, 6, 7]]
    assert out["completion_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert out["old_per_token_logps"].shape == (2, 3)
    assert out["importance_sampling_ratio"].shape == (2, 1)  # sequence-level: not a per-token tensor
    for key in ("prompt_ids", "prompt_mask", "advantages", "num_items_in_batch"):  # left alone
        assert out[key] is inputs[key]
    assert trim_completion_padding(out)["completion_ids"].shape == (2, 3)  # already tight: unchanged
    assert inputs["completion_ids"].shape == (2, 5)  # the caller's batch is not modified


def _padded(inputs: dict, extra: int, pad_id: int) -> dict:
    """``inputs`` with ``extra`` more completion columns of padding (what TRL hands a micro-batch)."""
    out = dict(inputs)
    width = inputs["completion_mask"].size(1)
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.size(1) == width and key.startswith(
                ("completion", "old_", "sampling_", "importance_")):
            fill = pad_id if key == "completion_ids" else (1.0 if key == "importance_sampling_ratio" else 0)
            out[key] = torch.cat([value, torch.full((value.size(0), extra), fill, dtype=value.dtype)], dim=1)
    return out


def test_trimmed_micro_batches_give_the_loss_of_the_padded_ones_and_the_attention_reaches_the_model(
        tiny_model_dir, tmp_path, monkeypatch):
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from polaris.run.layout import RunLayout
    from polaris.train.stages import StageRun, train_stage

    seen: list[dict] = []
    original = GRPOTrainer._compute_loss

    def spy(self, model, inputs):
        loss = original(self, model, inputs)
        padded = original(self, model, _padded(inputs, 6, self.processing_class.pad_token_id))
        mask = inputs["completion_mask"]
        seen.append({"width": mask.size(1), "last_column_used": bool(mask[:, -1].any()),
                     "loss": loss.item(), "padded_loss": padded.item()})
        return loss

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", spy)
    implementations = []

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            implementations.append(model.config._attn_implementation)

    problems = [Problem(f"p{i}", f"Compute {i}+{i}.", str(2 * i)) for i in range(8)]
    settings = TrainSettings(batch_prompts=4, rollouts=2, save_steps=100, learning_rate=1e-3, min_informative=0)
    stage = StageRun(index=1, steps=2, temperature=1.0, max_response_tokens=24, learning_rate=1e-3, problems=problems)
    train_stage(tiny_model_dir, stage, settings, RunLayout(tmp_path).stage_paths(1), seed=0,
                reward=lambda texts, truths: [float(i % 2) for i in range(len(texts))],
                callbacks=[Watch()], attn_implementation="eager")
    assert implementations == ["eager"]
    assert seen, "no micro-batch reached the loss"
    for s in seen:
        assert s["last_column_used"]  # trimmed tight: the last column holds a real token of some row
        assert s["width"] <= 24
        assert s["loss"] == pytest.approx(s["padded_loss"], rel=1e-5, abs=1e-7)
