"""Evaluation with the paper's protocol: k samples per problem, graded, avg@k per benchmark.

Every evaluation goes through here and through a backend (:mod:`polaris.backends`): ``polaris eval``,
each stage's evaluation in ``polaris run`` (the built-in model and real models alike), and validation
during training (:mod:`polaris.validation`, the model in training wrapped as a backend).
The protocol (docs/method.md § Evaluation protocol):

1. Each benchmark is resolved (:mod:`polaris.benchmarks`): a registered name (``aime24``,
   ``aime25``, ``amc23``, ``minerva``, ``olympiad``, from the Hub, with the paper's k 32/32/8/4/4),
   the built-in ``arith-test``, or a local file (k 8 unless ``--k``).
2. Prompts are one user turn, ``{problem} Let's think step by step and output the final answer
   within \\boxed{}.``, through the model's chat template.
3. A backend (:mod:`polaris.backends`: ``transformers`` or ``vllm``) samples k responses per
   problem: T 1.4, top-p 1.0, top-k 20, up to 90000 new tokens unless overridden; YaRN
   (``--yarn-factor F --original-max-position N``, :mod:`polaris.models.yarn`) applies to the
   loaded copy only.
4. Responses are graded with ``require_think=False`` (docs/method.md § Evaluation protocol: the evaluation grades the final
   boxed answer whether or not the model closed its thinking).
5. Per benchmark: ``OUT/NAME.parquet`` (one row per response: problem id, sample index,
   response, extracted answer, score, length in tokens, truncated, ground truth as a list of
   alternatives) and an entry of ``OUT/summary.json``: avg@k (mean over problems of correct/k),
   pass@1, pass@k (unbiased estimator), best@k (at least one correct), no-boxed count,
   distinct-4 diversity, mean length, truncation rate, the sampling and YaRN settings. Both files
   are rewritten atomically after each benchmark, so a killed evaluation keeps what finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from polaris.config import EvalSettings
from polaris.data.problem import Problem, build_messages
from polaris.generation import Completion, SamplingParams, chat_prompts

RESULT_COLUMNS = (
    "problem_id", "sample", "response", "extracted", "score", "length", "truncated", "ground_truth", "timed_out",
)


def evaluate_with_backend(
    backend, problems: Sequence[Problem], settings: EvalSettings, *, seed: int = 0, desc: str | None = None,
    extra: Mapping[str, Any] | None = None, keep: int | None = None, reward: Callable | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-response rows and the summary (avg@k, pass@1, pass@k, best@k, no-boxed, distinct-4) of
    ``problems`` sampled through ``backend`` (any of :mod:`polaris.backends`).

    ``extra``: backend-specific sampling keywords (``synced_gpus`` for sharded engines); ``keep``: grade
    only the first ``keep`` problems (the rest padded a rank's share to equal length); ``reward``: a
    reward function of the recipe (:mod:`polaris.reward.custom`) instead of the built-in grader.
    """
    params = sampling_params(settings, seed, extra)
    prompt_ids = chat_prompts(backend.tokenizer, [build_messages(p) for p in problems])
    keep = len(problems) if keep is None else keep
    skipped = 0
    if settings.skip_long_prompts:
        context = backend.context_length()
        fits = [context is None or len(ids) < context for ids in prompt_ids]
        skipped = sum(not f for f in fits[:keep])
        keep -= skipped
        problems = [p for p, f in zip(problems, fits, strict=True) if f]
        prompt_ids = [ids for ids, f in zip(prompt_ids, fits, strict=True) if f]
    completions = backend.generate(prompt_ids, params, batch_size=settings.batch_size,
                                   batch_tokens=settings.batch_tokens, desc=desc) if prompt_ids else []
    rows, summary = score_completions(problems[:keep], completions[:keep], settings, reward=reward)
    summary.update(skipped_long_prompts=skipped, peak_rss_mb=peak_rss_mb())
    return rows, summary


def load_eval_backend(name: str, model_path: str, options, benchmarks: Sequence[Any], max_new_tokens: int, *,
                      planned_context: int = 0):
    """The backend ``name`` loaded for evaluating ``benchmarks`` with up to ``max_new_tokens`` per response.

    Its context holds the longest prompt of the benchmarks (through the model's chat template) plus the
    response budget, and at least ``planned_context`` (the plan's): a vLLM engine's ``max_model_len`` is
    raised to it, so a response is cut by its budget, not by the engine, as with transformers. Used by the
    run's evaluation and by ``polaris eval`` alike.
    """
    import dataclasses

    from polaris.backends import load_backend
    from polaris.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    problems = [p for bench in benchmarks for p in bench.problems]
    longest = max((len(ids) for ids in chat_prompts(tokenizer, [build_messages(p) for p in problems])), default=0)
    context = max(planned_context, longest + max_new_tokens)
    return load_backend(name, model_path, dataclasses.replace(options, context=context))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (what the machine had to give it)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def evaluate_benchmarks(backend, benchmarks: Sequence[Any], settings_for: Callable[[Any], EvalSettings], *,
                        seed: int, label: str = "eval",
                        on_result: Callable[[Any, list[dict[str, Any]], dict[str, Any]], None],
                        reward: Callable | None = None) -> dict[str, Any]:
    """Every benchmark (:class:`polaris.benchmarks.ResolvedBenchmark`) through one loaded backend.

    ``settings_for(bench)`` gives a benchmark's sampling; ``on_result(bench, rows, summary)`` stores a
    finished benchmark (before the next starts, so a killed evaluation keeps what finished). Returns
    ``{benchmark: summary}``.
    """
    from polaris.progress import log

    out: dict[str, Any] = {}
    for bench in benchmarks:
        settings = settings_for(bench)
        log(f"[polaris] {label} {bench.name}: {len(bench.problems)} problems × k={settings.k}, "
            f"T={settings.temperature:g}, top-p={settings.top_p:g}, top-k={settings.top_k}, "
            f"max {settings.max_new_tokens} new tokens")
        rows, summary = evaluate_with_backend(backend, bench.problems, settings, seed=seed,
                                              desc=f"{label} {bench.name}", reward=reward)
        summary["source"] = bench.source
        on_result(bench, rows, summary)
        score = "nothing left to evaluate" if summary["avg@k"] is None else f"{summary['avg@k']:.3f}"
        skipped = f" ({summary['skipped_long_prompts']} long prompts skipped)" if summary.get("skipped_long_prompts") else ""
        log(f"[polaris] {label} {bench.name}: avg@{summary['k']} = {score}{skipped}")
        out[bench.name] = summary
    return out


def sampling_params(settings: EvalSettings, seed: int, extra: Mapping[str, Any] | None = None) -> SamplingParams:
    return SamplingParams(
        n=settings.k,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        max_new_tokens=settings.max_new_tokens,
        seed=seed,
        extra=dict(extra or {}),
    )


def score_completions(
    problems: Sequence[Problem], completions: Sequence[Sequence[Completion]], settings: EvalSettings,
    *, reward: Callable | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade every completion against its problem's ground truth; rows and the summary.

    ``reward``: a recipe's own reward function; the rows' ``extracted`` is then still the boxed answer
    (or ``None``), for reading, and ``score`` is the function's.
    """
    from polaris.reward import Verdict, answer_region, extract_boxed, grade_batch

    responses = [c.text for cs in completions for c in cs]
    truths = [p.answer for p, cs in zip(problems, completions, strict=True) for _ in cs]
    if reward is None:
        verdicts = grade_batch(responses, truths, require_think=False)
    else:
        verdicts = [Verdict(score=s, extracted=extract_boxed(answer_region(r, require_think=False) or ""),
                            timed_out=False)
                    for r, s in zip(responses, reward(responses, truths), strict=True)]
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
    """The benchmark summary from per-response rows (grouped by ``problem_id``, in order). Without rows
    (every problem skipped) the rates are ``None``: there is nothing to average."""
    from polaris.recipe.diversity import mean_distinct_n
    from polaris.recipe.metrics import avg_at_k, best_at_k, mean_pass_at_k

    if not rows:
        return {"problems": 0, "k": settings.k, **dict.fromkeys(("avg@k", "pass@1", "pass@k", "best@k"), None),
                "no_boxed": 0, "timeouts": 0, "distinct_4": None, "mean_length": None, "truncated": None,
                "temperature": settings.temperature, "top_p": settings.top_p, "top_k": settings.top_k,
                "max_new_tokens": settings.max_new_tokens}

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

    # no rows (every problem skipped): the columns still, so that readers find the schema
    table = pa.Table.from_pylist(list(rows)) if rows else pa.table({c: [] for c in RESULT_COLUMNS})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table of benchmark summaries (percentages for the rates)."""
    header = ("benchmark", "problems", "k", "avg@k", "pass@k", "best@k", "no-boxed", "distinct-4", "mean len", "trunc")
    lines = [header]
    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    for name, s in results.items():
        lines.append((
            name, str(s["problems"]), str(s["k"]), pct(s["avg@k"]), pct(s["pass@k"]), pct(s["best@k"]),
            str(s["no_boxed"]), pct(s["distinct_4"]), "—" if s["mean_length"] is None else f"{s['mean_length']:.1f}",
            pct(s["truncated"]),
        ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
           for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
