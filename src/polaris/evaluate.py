"""Evaluation with the paper's protocol: k samples per problem, graded, avg@k per benchmark.

``polaris eval MODEL --benchmark NAME_OR_FILE [...]`` (SPEC 8):

1. Each benchmark is resolved (:mod:`polaris.benchmarks`): a registered name (``aime24``,
   ``aime25``, ``amc23``, ``minerva``, ``olympiad``, from the Hub, with the paper's k 32/32/8/4/4),
   the built-in ``arith-test``, or a local file (k 8 unless ``--k``).
2. Prompts are one user turn, ``{problem} Let's think step by step and output the final answer
   within \\boxed{}.``, through the model's chat template.
3. A backend (:mod:`polaris.backends`: ``transformers`` or ``vllm``) samples k responses per
   problem: T 1.4, top-p 1.0, top-k 20, up to 90000 new tokens unless overridden; YaRN
   (``--yarn-factor F --original-max-position N``, :mod:`polaris.models.yarn`) applies to the
   loaded copy only.
4. Responses are graded with ``require_think=False`` (SPEC 8: the evaluation grades the final
   boxed answer whether or not the model closed its thinking).
5. Per benchmark: ``OUT/NAME.parquet`` (one row per response: problem id, sample index,
   response, extracted answer, score, length in tokens, truncated, ground truth as a list of
   alternatives) and an entry of ``OUT/summary.json``: avg@k (mean over problems of correct/k),
   pass@1, pass@k (unbiased estimator), best@k (at least one correct), no-boxed count,
   distinct-4 diversity, mean length, truncation rate, the sampling and YaRN settings. Both files
   are rewritten atomically after each benchmark, so a killed evaluation keeps what finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from polaris.config import EvalSettings
from polaris.data.problem import Problem, build_messages
from polaris.generation import Completion, SamplingParams, chat_prompts, generate

RESULT_COLUMNS = (
    "problem_id", "sample", "response", "extracted", "score", "length", "truncated", "ground_truth", "timed_out",
)


def evaluate_problems(
    model, tokenizer, problems: Sequence[Problem], settings: EvalSettings, *, seed: int = 0, desc: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-response rows and the summary (avg@k, pass@1, pass@k, best@k, no-boxed, distinct-4)."""
    params = sampling_params(settings, seed)
    prompt_ids = chat_prompts(tokenizer, [build_messages(p) for p in problems])
    completions = generate(model, tokenizer, prompt_ids, params, batch_size=settings.batch_size, desc=desc)
    return score_completions(problems, completions, settings)


def evaluate_with_backend(
    backend, problems: Sequence[Problem], settings: EvalSettings, *, seed: int = 0, desc: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`evaluate_problems` through any backend of :mod:`polaris.backends`."""
    params = sampling_params(settings, seed)
    prompt_ids = chat_prompts(backend.tokenizer, [build_messages(p) for p in problems])
    completions = backend.generate(prompt_ids, params, batch_size=settings.batch_size, desc=desc)
    return score_completions(problems, completions, settings)


def sampling_params(settings: EvalSettings, seed: int) -> SamplingParams:
    return SamplingParams(
        n=settings.k,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        max_new_tokens=settings.max_new_tokens,
        seed=seed,
    )


def score_completions(
    problems: Sequence[Problem], completions: Sequence[Sequence[Completion]], settings: EvalSettings
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade every completion against its problem's ground truth; rows and the summary."""
    from polaris.reward import grade_batch

    responses = [c.text for cs in completions for c in cs]
    truths = [p.answer for p, cs in zip(problems, completions, strict=True) for _ in cs]
    verdicts = grade_batch(responses, truths, require_think=False)
    rows: list[dict[str, Any]] = []
    it = iter(verdicts)
    for p, cs in zip(problems, completions, strict=True):
        for j, c in enumerate(cs):
            v = next(it)
            rows.append({
                "problem_id": p.id,
                "sample": j,
                "response": c.text,
                "extracted": v.extracted,
                "score": float(v.score),
                "length": len(c.token_ids),
                "truncated": bool(c.truncated),
                # always a list of alternatives, so the column has one type in parquet
                "ground_truth": [p.answer] if isinstance(p.answer, str) else list(p.answer),
                "timed_out": bool(v.timed_out),
            })
    return rows, summarize(rows, settings)


def summarize(rows: Sequence[Mapping[str, Any]], settings: EvalSettings) -> dict[str, Any]:
    """The benchmark summary from per-response rows (grouped by ``problem_id``, in order)."""
    from polaris.recipe.diversity import mean_distinct_n
    from polaris.recipe.metrics import avg_at_k, best_at_k, mean_pass_at_k

    scores: dict[str, list[float]] = {}
    texts: dict[str, list[str]] = {}
    for r in rows:
        scores.setdefault(r["problem_id"], []).append(float(r["score"]))
        texts.setdefault(r["problem_id"], []).append(r["response"])
    by_problem = list(scores.values())
    k = settings.k
    n = max(1, len(rows))
    return {
        "problems": len(by_problem),
        "k": k,
        "avg@k": avg_at_k(by_problem),
        "pass@1": mean_pass_at_k(by_problem, 1),
        "pass@k": mean_pass_at_k(by_problem, k),  # k is in the summary's "k"
        "best@k": best_at_k(by_problem),
        "no_boxed": sum(1 for r in rows if r["extracted"] is None),
        "timeouts": sum(1 for r in rows if r.get("timed_out")),
        "distinct_4": mean_distinct_n(list(texts.values()), 4),
        "mean_length": sum(r["length"] for r in rows) / n,
        "truncated": sum(1 for r in rows if r["truncated"]) / n,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "max_new_tokens": settings.max_new_tokens,
    }


def write_results(rows: Sequence[dict[str, Any]], path) -> None:
    """The per-response results file (parquet), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from polaris.io import atomic_path

    table = pa.Table.from_pylist(list(rows))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# -- the command ------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """Evaluate a model on benchmarks with the paper's protocol (avg@k; optional YaRN)."""

    model: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="MODEL")]
    """A Hugging Face causal LM: a local folder, or a Hub id when online."""
    benchmark: list[str] = field(default_factory=lambda: ["arith-test"])
    """Benchmarks: aime24, aime25, amc23, minerva, olympiad (from the Hub, the paper's k), arith-test
    (the built-in task), or local .parquet/.jsonl files (k 8 by default)."""
    k: int | None = None
    """Samples per problem; default: the benchmark's (32/32/8/4/4 for the named ones, 8 for files)."""
    temperature: float | None = None
    """Sampling temperature; default 1.4 (the paper; never above the training temperature)."""
    top_p: float | None = None
    """Nucleus sampling; default 1.0."""
    top_k: int | None = None
    """Top-k sampling (0: off); default 20."""
    max_new_tokens: int | None = None
    """Response budget in tokens; default 90000."""
    limit: int | None = None
    """Evaluate only the first N problems of each benchmark."""
    out: str | None = None
    """Results directory (NAME.parquet per benchmark, summary.json); default evals/<model name>/."""
    run_dir: str | None = None
    """A `polaris run` directory: arith-test is read from its data/arith-test.parquet."""
    backend: str = "transformers"
    """Generation backend: transformers (CPU/GPU) or vllm (GPU; pip install 'polaris-rl[vllm]')."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype."""
    device: str | None = None
    """transformers backend: torch device (cuda, cpu); default: where the weights load."""
    batch_size: int = 512
    """transformers backend: sequences (prompts × k) per generate call."""
    seed: int = 0
    """Sampling seed."""
    yarn_factor: float | None = None
    """YaRN rope scaling factor at inference (the paper: 1.5); needs --original-max-position."""
    original_max_position: int | None = None
    """The context length the model was trained with; with YaRN the context becomes this × factor."""
    tensor_parallel_size: int = 1
    """vllm backend: GPUs per model."""

    def __post_init__(self) -> None:
        from polaris.backends import check_backend
        from polaris.models.yarn import make_yarn

        if not self.benchmark:
            raise ValueError("--benchmark: give at least one benchmark name or file")
        checks = [
            (self.k is not None and self.k < 1, f"--k must be >= 1, got {self.k}"),
            (self.temperature is not None and self.temperature < 0, f"--temperature must be >= 0, got {self.temperature}"),
            (self.top_p is not None and not 0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}"),
            (self.top_k is not None and self.top_k < 0, f"--top-k must be >= 0 (0 turns it off), got {self.top_k}"),
            (self.max_new_tokens is not None and self.max_new_tokens < 1,
             f"--max-new-tokens must be >= 1, got {self.max_new_tokens}"),
            (self.limit is not None and self.limit < 1, f"--limit must be >= 1, got {self.limit}"),
            (self.batch_size < 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.tensor_parallel_size < 1, f"--tensor-parallel-size must be >= 1, got {self.tensor_parallel_size}"),
        ]
        for bad, message in checks:
            if bad:
                raise ValueError(message)
        check_backend(self.backend)
        make_yarn(self.yarn_factor, self.original_max_position)

    def settings_for(self, k: int, defaults) -> EvalSettings:
        """Evaluation settings of one benchmark: its defaults, overridden by the options given."""

        def pick(value, default):
            return default if value is None else value

        return EvalSettings(
            benchmarks=[],
            k=pick(self.k, k),
            temperature=pick(self.temperature, defaults.temperature),
            top_p=pick(self.top_p, defaults.top_p),
            top_k=pick(self.top_k, defaults.top_k),
            max_new_tokens=pick(self.max_new_tokens, defaults.max_new_tokens),
            batch_size=self.batch_size,
        )

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("evals") / (Path(self.model.rstrip("/")).name or "model")


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table of benchmark summaries (percentages for the rates)."""
    header = ("benchmark", "problems", "k", "avg@k", "pass@k", "best@k", "no-boxed", "distinct-4", "mean len", "trunc")
    lines = [header]
    for name, s in results.items():
        lines.append((
            name, str(s["problems"]), str(s["k"]), f"{100 * s['avg@k']:.1f}", f"{100 * s['pass@k']:.1f}",
            f"{100 * s['best@k']:.1f}", str(s["no_boxed"]), f"{100 * s['distinct_4']:.1f}",
            f"{s['mean_length']:.1f}", f"{100 * s['truncated']:.1f}",
        ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
           for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _check_model(model: str) -> None:
    from polaris.benchmarks import offline

    if not Path(model).is_dir() and (offline() or model.startswith((".", "/")) or model.count("/") != 1):
        raise SystemExit(
            f"polaris eval: model {model!r} is not a local folder"
            + (" and Hugging Face access is offline (HF_HUB_OFFLINE); pass a local model folder" if offline()
               else "; pass a local model folder or a Hub id (owner/name)")
        )


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Evaluate ``config.model`` on every benchmark; returns the summary written to ``summary.json``."""
    from polaris.backends import BackendOptions, load_backend
    from polaris.benchmarks import resolve_benchmark
    from polaris.io import write_json
    from polaris.models.loading import set_threads
    from polaris.models.yarn import make_yarn
    from polaris.progress import log

    _check_model(config.model)
    yarn = make_yarn(config.yarn_factor, config.original_max_position)
    # Data first: a missing file or an offline Hub id fails before the model loads.
    benches = [resolve_benchmark(b, run_dir=config.run_dir, limit=config.limit) for b in config.benchmark]
    names = [b.name for b in benches]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"polaris eval: two benchmarks named {duplicates}; results would overwrite each other")
    set_threads()
    backend = load_backend(config.backend, config.model, BackendOptions(
        dtype=config.dtype, device=config.device, yarn=yarn, seed=config.seed,
        tensor_parallel_size=config.tensor_parallel_size,
    ))
    out = config.out_dir
    summary: dict[str, Any] = {
        "model": config.model,
        "backend": backend.describe(),
        "seed": config.seed,
        "yarn": yarn.to_dict() if yarn else None,
        "benchmarks": {},
    }
    for bench in benches:
        settings = config.settings_for(bench.k, bench.sampling)
        log(f"[polaris] eval {bench.name}: {len(bench.problems)} problems × k={settings.k}, "
            f"T={settings.temperature}, top-p={settings.top_p}, top-k={settings.top_k}, "
            f"max {settings.max_new_tokens} new tokens" + (f", YaRN ×{yarn.factor}" if yarn else ""))
        rows, result = evaluate_with_backend(backend, bench.problems, settings, seed=config.seed,
                                             desc=f"eval {bench.name}")
        result.update(source=bench.source, yarn=summary["yarn"], results_file=f"{bench.name}.parquet")
        write_results(rows, out / f"{bench.name}.parquet")
        summary["benchmarks"][bench.name] = result
        write_json(out / "summary.json", summary)
    return summary


def main(config: EvalConfig) -> int:
    from polaris.backends import BackendError
    from polaris.data.problem import DataError

    try:
        summary = run_eval(config)
    except (DataError, BackendError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"polaris eval: {e}") from None
    print(format_table(summary["benchmarks"]))
    print(f"results: {config.out_dir}")
    return 0
