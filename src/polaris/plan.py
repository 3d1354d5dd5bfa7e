"""``polaris run RECIPE --dry-run``: validate a recipe and print what the run will do.

Nothing is loaded and no GPU is needed. The plan shows: the model and its context (raised
positions, SPEC 3); the training data and, when the run directory already has a difficulty profile
(``profile/records.jsonl``), the pass-rate histogram and what the filter keeps; each stage's steps,
rollout temperature (or ``search``: chosen by SPEC 2's rules at run time; a finished search's choice
is shown), validation temperature, response length and context; the batch and how it splits over
processes; the objective; validation and final evaluation (k, sampling, YaRN); the rollout engine;
the resolved TRL ``GRPOConfig`` arguments of every stage (built by the same
:func:`polaris.train.stages.grpo_config` the run uses); and the vLLM server and ``accelerate launch``
commands (:mod:`polaris.launch`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polaris.config import RecipeConfig, load_recipe, stage_context
from polaris.io import read_json, read_jsonl

#: GRPOConfig fields shown per stage (those the recipe decides).
TRL_STAGE_KEYS = ("max_steps", "temperature", "max_completion_length", "learning_rate")
#: GRPOConfig fields shown once (the same in every stage).
TRL_COMMON_KEYS = (
    "per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation", "num_generations",
    "num_iterations", "top_p", "top_k", "lr_scheduler_type", "weight_decay", "max_grad_norm", "loss_type",
    "epsilon", "epsilon_high", "delta", "beta", "scale_rewards", "bf16", "gradient_checkpointing", "save_steps",
    "seed", "use_vllm", "vllm_mode", "vllm_server_host", "vllm_server_port", "vllm_server_timeout",
    "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode", "vllm_max_model_length",
)
#: Placeholder temperature for building the TRL arguments of a stage whose temperature is searched.
SEARCH_PLACEHOLDER = 1.0


def _plain(value: Any) -> Any:
    """Enum members (TRL's ``SchedulerType``) as their values."""
    return getattr(value, "value", value)


#: vLLM fields of GRPOConfig that apply in each mode (the others keep TRL's defaults, unused).
VLLM_MODE_KEYS = {
    "server": ("vllm_server_host", "vllm_server_port", "vllm_server_timeout"),
    "colocate": ("vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode",
                 "vllm_max_model_length"),
}


def _t(value: float | str | None) -> str:
    return "-" if value is None else value if isinstance(value, str) else f"{value:g}"


def profile_summary(recipe: RecipeConfig, run_dir: Path) -> dict[str, Any] | None:
    """Histogram and kept count of an existing difficulty profile, with the recipe's filter."""
    from polaris.recipe import DifficultyRecord, filter_by_pass_rate, pass_histogram

    path = run_dir / "profile" / "records.jsonl"
    if not path.is_file() and recipe.profile.records:
        path = Path(recipe.profile.records)  # the saved profile the run will reuse
    if not path.is_file():
        return None
    records = [DifficultyRecord.from_dict(r) for r in read_jsonl(path)]
    kept = filter_by_pass_rate(records, min_correct=recipe.profile.min_correct,
                               max_correct=recipe.profile.max_correct)
    k = recipe.profile.k
    return {"path": str(path), "problems": len(records), "kept": len(kept),
            "histogram": pass_histogram((r.correct for r in records if r.k == k), k),
            "histogram_kept": pass_histogram((r.correct for r in kept if r.k == k), k)}


def stage_rows(recipe: RecipeConfig, run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    positions = recipe.model.max_position_embeddings or recipe.model.native_max_position_embeddings
    for i, s in enumerate(recipe.stages, start=1):
        searched = read_json(run_dir / "temperature" / f"stage-{i}.json")
        ids = read_json(run_dir / "data" / f"stage-{i}.ids.json")
        rows.append({
            "stage": i,
            "steps": s.steps,
            "temperature": s.temperature,
            "chosen": searched["chosen"] if searched and s.temperature == "search" else None,
            "val_temperature": s.val_temperature,
            "max_response_tokens": s.max_response_tokens,
            "context": stage_context(recipe, i - 1),
            "positions": positions,
            "learning_rate": s.learning_rate or recipe.train.learning_rate,
            "problems": len(ids) if ids is not None else None,
        })
    return rows


def trl_arguments(recipe: RecipeConfig, num_processes: int) -> list[dict[str, Any]]:
    """The ``GRPOConfig`` fields of each stage, as :func:`grpo_config` builds them (on CPU, here)."""
    import tempfile

    from polaris.train.stages import StagePlan, grpo_config

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(recipe.stages, start=1):
            t = SEARCH_PLACEHOLDER if s.temperature == "search" else float(s.temperature)
            plan = StagePlan(index=i, settings=s, temperature=t, problems=[])
            config = grpo_config(plan, recipe.train, Path(tmp), seed=recipe.seed, num_processes=num_processes,
                                 use_cpu=True, bf16=recipe.model.dtype == "bfloat16")
            fields = {k: _plain(getattr(config, k)) for k in (*TRL_STAGE_KEYS, *TRL_COMMON_KEYS)}
            if s.temperature == "search":
                fields["temperature"] = "search"
            out.append(fields)
    return out


def build_plan(recipe: RecipeConfig, recipe_path: str, run_dir: Path, *, accelerate_config: str | None = None,
               trl: bool = True) -> dict[str, Any]:
    """Everything ``--dry-run`` prints, as data."""
    from polaris.launch import eval_context, launch_commands, resolve_layout, yarn_settings
    from polaris.train.validation import benchmark_k

    layout = resolve_layout(recipe, accelerate_config)
    train = recipe.train
    sequences = train.batch_prompts * train.rollouts
    share = sequences // layout.num_processes
    micro = train.micro_batch_sequences or share
    yarn = yarn_settings(recipe)
    commands = launch_commands(recipe, recipe_path, run_dir=None, accelerate_config=accelerate_config)
    return {
        "recipe": recipe.name,
        "recipe_path": recipe_path,
        "run_dir": str(run_dir),
        "model": {"path": recipe.model.path, "dtype": recipe.model.dtype,
                  "native_max_position_embeddings": recipe.model.native_max_position_embeddings,
                  "max_position_embeddings": recipe.model.max_position_embeddings},
        "data": {"train": recipe.data.train, "split": recipe.data.split, "limit": recipe.data.limit},
        "profile": {"k": recipe.profile.k, "temperature": recipe.profile.temperature,
                    "max_new_tokens": recipe.profile.max_new_tokens or recipe.stages[0].max_response_tokens,
                    "min_correct": recipe.profile.min_correct,
                    "max_correct": recipe.profile.max_correct if recipe.profile.max_correct is not None
                    else recipe.profile.k - 1,
                    "existing": profile_summary(recipe, run_dir)},
        "stages": stage_rows(recipe, run_dir),
        "batch": {"prompts": train.batch_prompts, "rollouts": train.rollouts, "sequences": sequences,
                  "processes": layout.num_processes, "machines": layout.num_machines, "per_process": share,
                  "micro_batch": micro, "accumulation": share // micro},
        "objective": {"learning_rate": train.learning_rate, "schedule": "constant",
                      "weight_decay": train.weight_decay, "max_grad_norm": train.max_grad_norm,
                      "epsilon_low": train.epsilon_low, "epsilon_high": train.epsilon_high,
                      "dual_clip": train.dual_clip, "kl": 0.0, "loss": "token-mean",
                      "rescue": train.rescue, "substitution": train.substitution,
                      "drop_threshold": train.drop_threshold, "save_steps": train.save_steps},
        "validation": {**vars(train.validation)},
        "eval": {"benchmarks": {name: benchmark_k(Path(name).stem if Path(name).suffix else name, recipe)
                                for name in recipe.eval.benchmarks},
                 "temperature": recipe.eval.temperature, "top_p": recipe.eval.top_p, "top_k": recipe.eval.top_k,
                 "max_new_tokens": recipe.eval.max_new_tokens, "backend": recipe.eval.backend,
                 "yarn": yarn.to_dict() if yarn else None, "context": eval_context(recipe),
                 "stages": "every stage" + (" and the base model" if recipe.eval.evaluate_base
                                            or recipe.builtin_model else "")},
        "engine": {**vars(train.engine)},
        "trl": trl_arguments(recipe, layout.num_processes) if trl else None,
        "commands": [{"where": c.where, "line": c.shell()} for c in commands],
    }


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text."""
    m, b, o, ev, eng = plan["model"], plan["batch"], plan["objective"], plan["eval"], plan["engine"]
    lines = [f"POLARIS plan for {plan['recipe']!r} ({plan['recipe_path']}): valid; nothing loaded",
             f"run directory   {plan['run_dir']}"]
    context = ""
    if m["native_max_position_embeddings"]:
        context = f", native context {m['native_max_position_embeddings']}"
        if m["max_position_embeddings"] and m["max_position_embeddings"] > m["native_max_position_embeddings"]:
            context += f", raised to {m['max_position_embeddings']} positions before training (SPEC 3)"
    elif m["max_position_embeddings"]:
        context = f", max_position_embeddings {m['max_position_embeddings']}"
    lines.append(f"model           {m['path']} ({m['dtype']}{context})")
    d = plan["data"]
    lines.append(f"training data   {d['train']} [{d['split']}]" + (f", first {d['limit']}" if d["limit"] else ""))
    p = plan["profile"]
    lines.append(f"profile         k={p['k']} rollouts at T={_t(p['temperature'])}, up to {p['max_new_tokens']} "
                 f"tokens; keep problems solved {p['min_correct']}..{p['max_correct']} of {p['k']}")
    if p["existing"]:
        e = p["existing"]
        lines.append(f"  profiled       {e['problems']} problems, 0/{p['k']}..{p['k']}/{p['k']}: {e['histogram']} "
                     f"({e['path']})")
        lines.append(f"  after filter   {e['kept']} problems: {e['histogram_kept']}")
    else:
        lines.append(f"  (not profiled yet: {plan['run_dir']}/profile/records.jsonl is written by the profile step)")
    lines.append("stages          (temperature 'search': chosen by SPEC 2's diversity rules at run time)")
    header = ("stage", "steps", "temperature", "val T", "max response", "context", "positions", "lr", "problems")
    rows = [header]
    for s in plan["stages"]:
        t = _t(s["temperature"]) + (f" -> {s['chosen']:g}" if s["chosen"] is not None else "")
        rows.append((str(s["stage"]), str(s["steps"]), t, _t(s["val_temperature"]), str(s["max_response_tokens"]),
                     _t(s["context"]), _t(s["positions"]), f"{s['learning_rate']:g}", _t(s["problems"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"batch           {b['prompts']} prompts × {b['rollouts']} rollouts = {b['sequences']} sequences; "
                 f"{b['processes']} process(es) on {b['machines']} machine(s), {b['per_process']} each; "
                 f"micro-batch {b['micro_batch']} × {b['accumulation']} accumulated; one optimizer step per batch")
    dual = "off" if o["dual_clip"] is None else f"{o['dual_clip']:g}"
    lines.append(f"objective       AdamW lr {o['learning_rate']:g} {o['schedule']}, weight decay {o['weight_decay']:g}, "
                 f"grad clip {o['max_grad_norm']:g}; clip {o['epsilon_low']:g}/{o['epsilon_high']:g}, dual clip "
                 f"{dual}; no KL; {o['loss']} loss")
    lines.append(f"recipe          rescue {'on' if o['rescue'] else 'off'}, substitution "
                 f"{'on' if o['substitution'] else 'off'}, drop mean accuracy > {o['drop_threshold']:g} between "
                 f"stages; checkpoint every {o['save_steps']} steps")
    v = plan["validation"]
    if v["every_steps"]:
        lines.append(f"validation      {v['benchmark']} avg@{v['k']} every {v['every_steps']} steps at the stage's val T, "
                     f"top-p {v['top_p']:g}, top-k {v['top_k'] or 'off'}, up to "
                     f"{v['max_new_tokens'] or 'the stage response length in'} tokens")
    else:
        lines.append("validation      off (train.validation.every_steps: 0)")
    benches = ", ".join(f"{name} (avg@{k})" for name, k in ev["benchmarks"].items())
    lines.append(f"evaluation      {ev['stages']}: {benches}")
    yarn = ev["yarn"]
    yarn_text = (f"YaRN ×{yarn['factor']:g} from {yarn['original_max_position_embeddings']} "
                 f"({yarn['max_position_embeddings']} positions)" if yarn else "no YaRN")
    lines.append(f"                T={_t(ev['temperature'])}, top-p {ev['top_p']:g}, top-k {ev['top_k'] or 'off'}, "
                 f"up to {ev['max_new_tokens']} new tokens; {yarn_text}; context {ev['context']}; "
                 f"backend {ev['backend']}")
    if yarn and ev["context"] > yarn["max_position_embeddings"]:
        lines.append(f"                note: prompt + {ev['max_new_tokens']} tokens reach past the YaRN context "
                     f"{yarn['max_position_embeddings']}: transformers decodes on; vLLM admits it only with "
                     "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 and max_model_len raised (polaris.launch.eval_vllm_engine_kwargs)")
    if eng["backend"] == "vllm":
        where = (f"server at {eng['vllm_host']}:{eng['vllm_port']} (TP {eng['vllm_tensor_parallel_size']}, "
                 f"{eng['vllm_gpu_memory_utilization']:g} of its GPUs' memory)" if eng["vllm_mode"] == "server"
                 else f"colocated in every training process (TP {eng['vllm_tensor_parallel_size']}, "
                      f"{eng['vllm_gpu_memory_utilization']:g} of each GPU's memory, sleep mode "
                      f"{'on' if eng['vllm_enable_sleep_mode'] else 'off'})")
        lines.append(f"rollouts        vLLM {where}")
    else:
        lines.append("rollouts        transformers generate on the training processes")
    if plan["trl"]:
        lines.append("TRL GRPOConfig  (polaris.train.stages.grpo_config)")
        for i, fields in enumerate(plan["trl"], start=1):
            lines.append(f"  stage {i}: " + ", ".join(f"{k}={fields[k]}" for k in TRL_STAGE_KEYS))
        common = plan["trl"][0]
        mode_keys = VLLM_MODE_KEYS.get(common["vllm_mode"], ()) if common["use_vllm"] else ()
        shown = [k for k in TRL_COMMON_KEYS if not k.startswith("vllm_") or k in mode_keys]
        lines.append("  all stages: " + ", ".join(f"{k}={common[k]}" for k in shown))
    lines.append("commands        (`polaris run RECIPE --launch` runs them on one machine)")
    for c in plan["commands"]:
        lines.append(f"  # on {c['where']}")
        lines.append(f"  {c['line']}")
    return "\n".join(lines)


def dry_run(recipe_path: str, run_dir: str | None = None, *, accelerate_config: str | None = None) -> str:
    """Validate ``recipe_path`` and return the plan's text (``RecipeError``/``LaunchError`` when invalid)."""
    recipe = load_recipe(recipe_path)
    path = Path(run_dir) if run_dir else Path("runs") / recipe.name
    return format_plan(build_plan(recipe, recipe_path, path, accelerate_config=accelerate_config))
