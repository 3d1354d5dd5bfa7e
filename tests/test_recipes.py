"""The shipped real-model recipes against the paper's tables (docs/method.md), and the engine arguments they resolve to.

Expected values are copied from docs/method.md § Multi-stage training, § The objective, § Train short, test long and § Evaluation protocol, not computed from the recipes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polaris.config import load_recipe, stage_context
from polaris.errors import RecipeError

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"

# docs/method.md § Multi-stage training: train T, val T, max response tokens per stage.
PAPER_SCHEDULES = {
    "qwen3-4b.yaml": ("Qwen/Qwen3-4B", [1.40, 1.45, 1.50], [1.2, 1.4, 1.4], [39936, 48128, 52224]),
    "r1-distill-7b.yaml": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", [0.7, 1.0, 1.1], [0.6, 0.8, 0.8],
                           [15360, 23552, 31744]),
    "qwen3-1.7b.yaml": ("Qwen/Qwen3-1.7B", [1.50, 1.55], [1.2, 1.4], [39936, 48128]),
}
QWEN3 = ["qwen3-4b.yaml", "qwen3-1.7b.yaml"]
PAPER_K = {"aime24": 32, "aime25": 32, "amc23": 8, "minerva": 4, "olympiad": 4}


def recipe(name: str):
    return load_recipe(RECIPES / name)


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_stage_schedule_is_the_papers(name):
    model, temps, val_temps, lengths = PAPER_SCHEDULES[name]
    r = recipe(name)
    assert r.model.path == model and r.model.dtype == "bfloat16"
    assert [s.temperature for s in r.stages] == temps
    assert [s.val_temperature for s in r.stages] == val_temps
    assert [s.max_response_tokens for s in r.stages] == lengths
    assert r.train.max_prompt_tokens == 1024
    assert r.data.train == "POLARIS-Project/Polaris-Dataset-53K"
    assert r.profile.k == 8 and r.profile.min_correct == 0 and r.profile.max_correct is None  # drop 8/8 only


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_objective_is_the_papers(name):
    t = recipe(name).train
    assert (t.batch_prompts, t.rollouts) == (128, 8)
    assert t.learning_rate == 1e-6 and t.weight_decay == 0.01 and t.max_grad_norm == 1.0
    assert (t.epsilon_low, t.epsilon_high, t.dual_clip) == (0.2, 0.28, 3.0)
    assert t.top_p == 1.0 and t.rescue and t.substitution and t.drop_threshold == 0.9
    assert all(s.learning_rate is None for s in recipe(name).stages)  # constant over stages
    assert t.save_steps == 10


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_validation_is_aime24_avg8_every_10_steps(name):
    v = recipe(name).train.validation
    assert (v.benchmark, v.k, v.every_steps, v.top_p, v.top_k) == ("aime24", 8, 10, 1.0, 0)


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_evaluation_is_the_papers(name):
    r = recipe(name)
    e = r.eval
    assert e.benchmarks == list(PAPER_K) and e.paper_k
    assert (e.top_p, e.top_k, e.max_new_tokens) == (1.0, 20, 90000)
    # never above the training temperature of the final model
    assert e.temperature <= r.stages[-1].temperature
    from polaris.run.plan import benchmark_k

    assert {b: benchmark_k(b, r) for b in e.benchmarks} == PAPER_K


@pytest.mark.parametrize("name", QWEN3)
def test_qwen3_evaluates_with_yarn_and_raises_positions(name):
    from polaris.run.plan import build_plan, yarn_settings

    r = recipe(name)
    assert r.eval.temperature == 1.4  # docs/method.md § Evaluation protocol
    assert r.model.native_max_position_embeddings == 40960
    yarn = yarn_settings(r)
    assert (yarn.factor, yarn.original_max_position_embeddings, yarn.max_position_embeddings) == (1.5, 40960, 61440)
    assert build_plan(r).eval.context == 1024 + 90000
    # docs/method.md § Multi-stage training: positions raised before a stage exceeds the native 40960 (stage 1 needs exactly 40960)
    contexts = [stage_context(r, i) for i in range(len(r.stages))]
    assert contexts[0] == 40960 and all(c > 40960 for c in contexts[1:])
    assert r.model.max_position_embeddings == max(contexts)


def test_r1_distill_fits_its_native_context():
    r = recipe("r1-distill-7b.yaml")
    assert r.model.native_max_position_embeddings == 131072 and r.model.max_position_embeddings is None
    assert r.eval.yarn_factor is None and 1024 + r.eval.max_new_tokens < 131072
    assert r.eval.temperature == 0.8  # the highest validation temperature, below every training one


# -- engine arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_grpo_config_carries_the_recipe(name, tmp_path):
    from polaris.run.launch import resolve_layout
    from polaris.run.plan import build_plan
    from polaris.train.stages import grpo_config

    r = recipe(name)
    processes = resolve_layout(r).num_processes
    assert processes == 4
    for i, stage in enumerate(r.stages, start=1):
        whole = build_plan(r)
        plan = whole.stage(i).training(float(stage.temperature), [], batch=whole.batch)  # the plan's split, as a run
        c = grpo_config(plan, r.train, tmp_path, seed=r.seed, use_cpu=True, bf16=True)
        assert c.temperature == PAPER_SCHEDULES[name][1][i - 1]
        assert c.max_completion_length == PAPER_SCHEDULES[name][3][i - 1]
        assert c.max_steps == stage.steps and c.save_steps == 10
        assert c.learning_rate == 1e-6 and c.lr_scheduler_type.value == "constant" and c.warmup_steps == 0
        assert (c.epsilon, c.epsilon_high, c.delta, c.beta) == (0.2, 0.28, 3.0, 0.0)
        assert c.loss_type == "dapo" and c.top_p == 1.0 and c.top_k == 0 and c.num_generations == 8
        # 1024 sequences over 4 processes: 256 each, one sequence per pass, one optimizer step per batch
        assert (c.per_device_train_batch_size, c.gradient_accumulation_steps, c.steps_per_generation) == (1, 256, 256)
        assert c.num_iterations == 1 and c.bf16 and c.gradient_checkpointing
        assert c.use_vllm and c.vllm_mode == "server"
        assert (c.vllm_server_host, c.vllm_server_port) == ("127.0.0.1", 8000)


def trl_serve(args):
    """TRL's own parser and command builder on our ``trl vllm-serve`` arguments."""
    from trl.scripts.vllm_serve import build_command, make_parser

    script_args, extra = make_parser().parse_args_and_config(args=args, return_remaining_strings=True)
    return script_args, extra, build_command(script_args, extra)


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_vllm_server_args_parse_in_trl(name):
    from polaris.run.launch import vllm_serve_command

    r = recipe(name)
    command = vllm_serve_command(r)
    assert command.argv[:2] == ["trl", "vllm-serve"] and command.env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    script, extra, vllm = trl_serve(command.argv[2:])
    longest = 1024 + max(PAPER_SCHEDULES[name][3])
    assert script.model == PAPER_SCHEDULES[name][0] and script.max_model_len == longest
    assert (script.tensor_parallel_size, script.gpu_memory_utilization, script.port) == (4, 0.9, 8000)
    assert script.dtype == "bfloat16" and script.host == "0.0.0.0"
    assert vllm[vllm.index("--max-model-len") + 1] == str(longest)
    if name in QWEN3:  # positions raised past the native 40960 for the server too (docs/method.md § Multi-stage training), no YaRN
        assert extra[0] == "--hf-overrides" and json.loads(extra[1]) == {"max_position_embeddings": longest}
        assert extra == vllm[-2:]
    else:
        assert extra == []


@pytest.mark.parametrize("name", QWEN3)
def test_eval_engine_has_yarn_overrides(name, monkeypatch):
    from polaris.backends import vllm_backend
    from polaris.run.plan import eval_vllm_engine_kwargs

    monkeypatch.setattr(vllm_backend, "_visible_gpus", lambda: 4)  # the training GPUs of the launch
    config = {"rope_theta": 1000000, "max_position_embeddings": 40960, "num_attention_heads": 32}
    kwargs = eval_vllm_engine_kwargs(recipe(name), "runs/x/models/stage-2", config)
    rope = kwargs["hf_overrides"]["rope_parameters"]
    assert rope == {"rope_type": "yarn", "factor": 1.5, "original_max_position_embeddings": 40960,
                    "rope_theta": 1000000.0}
    assert kwargs["max_model_len"] == kwargs["hf_overrides"]["max_model_len"] == 91024
    assert kwargs["dtype"] == "bfloat16"
    assert kwargs["tensor_parallel_size"] == 4  # eval.tensor_parallel_size: auto, every GPU the process sees


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_accelerate_command(name):
    from polaris.run.launch import CONFIGS_DIR, accelerate_command

    c = accelerate_command(recipe(name), f"recipes/{name}")
    assert c.env == {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    assert c.argv == ["accelerate", "launch", "--config_file", str(CONFIGS_DIR / "deepspeed-zero3.yaml"),
                      "--num_processes", "4", "-m", "polaris.cli", "run", f"recipes/{name}"]


# -- dry run ------------------------------------------------------------------------------------------


def stage_table(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["stage", "steps"])
    rows = []
    for line in lines[start + 1:]:
        cells = line.split()
        if not cells or not cells[0].isdigit():
            break
        rows.append(cells)
    return rows


def test_dry_run_prints_the_qwen3_4b_plan(capsys, tmp_path):
    from polaris.cli import main

    assert main(["run", str(RECIPES / "qwen3-4b.yaml"), "--dry-run", "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    rows = stage_table(out)
    assert [r[2] for r in rows] == ["1.4", "1.45", "1.5"]  # temperatures
    assert [r[3] for r in rows] == ["1.2", "1.4", "1.4"]  # validation temperatures
    assert [r[4] for r in rows] == ["39936", "48128", "52224"]  # response lengths
    assert [r[5] for r in rows] == ["40960", "49152", "53248"]  # prompt + response
    assert "128 prompts × 8 rollouts = 1024 sequences" in out
    assert "YaRN ×1.5 from 40960" in out and "90000 new tokens" in out
    assert "temperature=1.45, max_completion_length=48128" in out  # TRL arguments of stage 2
    assert "trl vllm-serve --model Qwen/Qwen3-4B" in out and "--max-model-len 53248" in out
    assert "accelerate launch --config_file" in out and "-m polaris.cli run" in out
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_dry_run_shows_the_data_after_filtering(tmp_path):
    from polaris.run.plan import dry_run

    run = tmp_path / "run"
    (run / "profile").mkdir(parents=True)
    correct = [0, 0, 3, 7, 8, 8, 5]  # two unsolved kept, two solved 8/8 dropped
    (run / "profile" / "records.jsonl").write_text(
        "".join(json.dumps({"problem_id": f"p{i}", "correct": c, "k": 8, "mean_length": 10.0}) + "\n"
                for i, c in enumerate(correct)), encoding="utf-8")
    (run / "data").mkdir()
    (run / "data" / "stage-1.ids.json").write_text(json.dumps(["p0", "p1", "p2", "p3", "p6"]), encoding="utf-8")
    out = dry_run(str(RECIPES / "qwen3-4b.yaml"), str(run))
    assert "profiled       7 problems, 0/8..8/8: [2, 0, 0, 1, 0, 1, 0, 1, 2]" in out
    assert "after filter   5 problems: [2, 0, 0, 1, 0, 1, 0, 1, 0]" in out
    assert [r[-1] for r in stage_table(out)] == ["5", "-", "-"]  # problems of stage 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"model": {"max_position_embeddings": None}},
         r"stages\[1\].max_response_tokens: prompt 1024 \+ response 48128 = 49152 tokens exceed .*set "
         r"model.max_position_embeddings to at least 53248"),
        ({"stages": [{"steps": 1, "max_response_tokens": 1024, "temperature": 1.2, "val_temperature": 1.4}]},
         r"stages\[0\].val_temperature 1.4 is above the stage's temperature 1.2"),
        ({"launch": {"num_processes": 6}}, r"1024 sequences must divide evenly over launch.num_processes = 6"),
        ({"train": {"micro_batch_sequences": 3}}, r"train.micro_batch_sequences 3 must"),
        ({"eval": {"yarn_factor": 1.0}}, r"eval.yarn_factor: YaRN factor must be > 1"),
        ({"train": {"engine": {"vllm_mode": "remote"}}}, r"train.engine.vllm_mode: 'remote' is not one of"),
        ({"eval": {"backend": "sglang"}}, r"eval.backend: unknown backend 'sglang'; valid backends"),
    ],
)
def test_bad_settings_say_what_to_change(tmp_path, edit, message):
    import yaml

    data = yaml.safe_load((RECIPES / "qwen3-4b.yaml").read_text(encoding="utf-8"))
    for section, values in edit.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, dict):
                    data[section][key].update(value)
                else:
                    data[section][key] = value
        else:
            data[section] = values
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    from polaris.run.plan import build_plan

    with pytest.raises(RecipeError, match=message):
        build_plan(load_recipe(path))  # the plan is built before any run or dry run starts


def test_tiny_recipe_keeps_its_trl_settings(tmp_path):
    """The new settings' defaults leave the built-in recipe's GRPOConfig as it was."""
    from polaris.run.plan import build_plan
    from polaris.train.stages import grpo_config

    r = recipe("tiny-cpu.yaml")
    assert r.train.validation.every_steps == 0 and r.launch.accelerate_config is None
    plan = build_plan(r).stage(1).training(1.0, [])
    c = grpo_config(plan, r.train, tmp_path, seed=0)
    assert (c.per_device_train_batch_size, c.gradient_accumulation_steps, c.steps_per_generation) == (128, 1, 1)
    assert not c.use_vllm and not c.gradient_checkpointing and not c.bf16
