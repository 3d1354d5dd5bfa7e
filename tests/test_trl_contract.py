"""The TRL internals the adapter relies on (``polaris.train.grpo``), pinned to TRL 1.16.0.

If one of these fails after a TRL upgrade, read the adapter's module docstring and the new
TRL source before changing anything: the adapter replaces ``_generate``'s outputs, provides the
rewards through a reward function, overwrites ``advantages`` and skips ``compute_loss``.
"""

from __future__ import annotations

import inspect

import trl
from trl import GRPOConfig, GRPOTrainer


def source(fn) -> str:
    return inspect.getsource(fn)


def test_pinned_version():
    assert trl.__version__ == "1.16.0"


def test_generate_returns_the_eight_fields_in_order():
    assert list(inspect.signature(GRPOTrainer._generate).parameters) == ["self", "prompts"]
    assert "return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images" in (
        source(GRPOTrainer._generate)
    )


def test_single_turn_generation_takes_token_ids_and_returns_completions_cut_after_eos():
    """The adapter's ``_generate_single_turn`` (sampling without vLLM, finished rows leaving the batch)
    stands in for TRL's plain ``generate`` branch: same arguments, ``(completion_ids, None)`` back, each
    completion cut after its first EOS, sampled with ``self.generation_config``."""
    params = list(inspect.signature(GRPOTrainer._generate_single_turn).parameters)
    assert params == ["self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"]
    src = source(GRPOTrainer._generate_single_turn)
    assert "generation_config=self.generation_config" in src
    assert "completion_mask = (sequence_indices <= eos_idx.unsqueeze(1)).int()" in src  # the EOS is kept
    assert "logprobs = None  # not used in this case" in src and src.rstrip().endswith("return completion_ids, logprobs")
    assert "self._generate_single_turn(\n                prompt_ids, images, multimodal_fields, num_generations" in (
        source(GRPOTrainer._generate))


def test_generate_and_score_uses_generate_then_rewards_then_advantages():
    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) == ["self", "inputs"]
    src = source(GRPOTrainer._generate_and_score_completions)
    gen, rewards, adv = src.index("= self._generate(prompts)"), src.index("self._calculate_rewards("), src.index(
        '"advantages": advantages'
    )
    assert gen < rewards < adv
    # rewards are gathered over processes in process order, and each rank keeps its slice
    assert "self.accelerator.process_index * len(prompts)" in src
    assert "rewards.view(-1, num_generations)" in src  # groups are consecutive runs of n


def test_reward_functions_receive_prompts_and_completions():
    src = source(GRPOTrainer._calculate_rewards)
    assert "prompts=prompts, completions=completions" in src
    assert "rewards_per_func = gather(rewards_per_func)" in src


def test_compute_loss_signature_and_objective():
    params = list(inspect.signature(GRPOTrainer.compute_loss).parameters)
    assert params == ["self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    loss = source(GRPOTrainer._compute_loss)
    assert "torch.clamp(coef_1, 1 - self.epsilon_low, 1 + self.epsilon_high)" in loss
    assert "coef_1 = torch.clamp(coef_1, max=self.args.delta)" in loss  # the dual-clip cap
    assert 'self.loss_type in ["cispo", "dapo", "vespo"]' in loss  # dapo = token mean over the batch
    init = source(GRPOTrainer.__init__)
    assert "temperature=self.temperature" in init  # log-probs on logits / T


def test_config_fields_exist():
    config = GRPOConfig(output_dir="/tmp/unused", loss_type="dapo", epsilon=0.2, epsilon_high=0.28, delta=3.0,
                        beta=0.0, steps_per_generation=1, num_iterations=1, num_generations=8,
                        per_device_train_batch_size=8, scale_rewards="group", use_cpu=True, report_to=[])
    assert (config.epsilon, config.epsilon_high, config.delta, config.beta) == (0.2, 0.28, 3.0, 0.0)
    assert config.top_k == 0 and config.top_p == 1.0


def test_prepare_inputs_generates_once_per_step():
    src = source(GRPOTrainer._prepare_inputs)
    assert "generate_every = self.args.steps_per_generation * self.num_iterations" in src
    assert "self._generate_and_score_completions(generation_batch)" in src


def test_the_colocated_engine_is_built_and_synced_where_polaris_reaches_it():
    """polaris.train.vllm_engine wraps the ``LLM`` name TRL's colocated generation calls, replaces
    ``sync_weights`` on CPU engines (reusing ``_iter_named_params``), and TRL then reads sampling log-probs
    whose NaN means "no correction"."""
    import trl.generation.vllm_generation as generation

    from polaris.train.vllm_engine import RENDEZVOUS_VARIABLES, TRL_ENGINE_CONSTRUCTOR

    assert TRL_ENGINE_CONSTRUCTOR == ("trl.generation.vllm_generation", "LLM")
    init = source(generation.VLLMGeneration._init_vllm)
    assert "self.llm = LLM(" in init and "distributed_executor_backend=\"external_launcher\"" in init
    assert all(f'os.environ["{key}"]' in init for key in RENDEZVOUS_VARIABLES[:3])
    assert "self._iter_named_params()" in source(generation.VLLMGeneration.sync_weights)
    assert "self.vllm_generation.sync_weights()" in source(GRPOTrainer._generate_single_turn)
    scoring = source(GRPOTrainer._generate_and_score_completions)
    assert "torch.nan_to_num(per_token_logps_diff, nan=0.0)" in scoring
    for field in ("vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max",
                  "vllm_importance_sampling_correction"):
        assert field in GRPOConfig.__dataclass_fields__


def test_per_token_inputs_and_the_loss_normaliser_allow_trimming_completion_padding():
    """``trim_completion_padding`` cuts TRL's per-token tensors by name; the dapo loss divides by the generation
    batch's token count (``num_items_in_batch``), not by the micro-batch's width, and the log-probs are computed
    for ``completion_ids.size(1)`` positions."""
    from polaris.train.grpo import PER_TOKEN_KEYS

    made = source(GRPOTrainer._generate_and_score_completions)
    for key in PER_TOKEN_KEYS:
        assert f'"{key}"' in made or f"'{key}'" in made, key
    loss = source(GRPOTrainer._compute_loss)
    assert "logits_to_keep = completion_ids.size(1)" in loss
    assert 'normalizer = inputs["num_items_in_batch"]' in loss


def test_the_log_probs_come_from_a_fused_tiled_lm_head_of_the_size_the_memory_plan_counts():
    from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    from polaris.run.memory import LOGIT_TILE

    assert "fused_lm_head=True" in source(GRPOTrainer._get_per_token_logps_and_entropies)
    assert LOGIT_TILE == (TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE)
