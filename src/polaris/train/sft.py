"""Supervised warm start of the tiny model on worked solutions (TRL ``SFTTrainer``).

The recipe needs a *partially* competent base model — pass rates spread over 0/8..8/8 — so
that difficulty filtering, rescue and substitution have work to do. Accuracy rises in a steep
phase transition during this training, so we plan a cosine schedule over ``planned_steps``
(lr 3e-3, betas 0.9/0.98, 50 warm-up steps, decay to 0.1×) and stop early at ``steps``: a
schedule that decays early stalls before the transition.

Each step sees fresh examples from the generator (``batch_size`` per step, loss on the
completion only); no held-out expression is ever trained on.
"""

from __future__ import annotations

from pathlib import Path

from polaris.config import WarmStartSettings
from polaris.data import arith
from polaris.data.problem import build_messages
from polaris.progress import quiet


def sft_dataset(settings: WarmStartSettings, tokenizer, exclude: set[str]):
    """``steps × batch_size`` fresh examples, tokenized: prompt through the chat template, then the
    worked solution and EOS, with the loss on the completion only.

    The prompt and the completion are tokenized apart, as at inference (the prompt alone is
    tokenized, the completion is generated token by token); tokenizing here also spares TRL's
    slower per-row preprocessing.
    """
    import datasets

    stream = arith.sft_stream(settings.seed, settings.levels, exclude)
    problems = [next(stream) for _ in range(settings.steps * settings.batch_size)]
    prompts = [tokenizer.apply_chat_template(build_messages(p.question), tokenize=False, add_generation_prompt=True)
               for p in problems]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer([p.solution + tokenizer.eos_token for p in problems], add_special_tokens=False)[
        "input_ids"
    ]
    return datasets.Dataset.from_dict({
        "input_ids": [a + b for a, b in zip(prompt_ids, completion_ids, strict=True)],
        "completion_mask": [[0] * len(a) + [1] * len(b) for a, b in zip(prompt_ids, completion_ids, strict=True)],
    })


def warm_start(model, tokenizer, settings: WarmStartSettings, out_dir: str | Path, exclude: set[str]) -> dict:
    """Train in place and return the trainer's last logged figures."""
    import torch
    from transformers import get_cosine_with_min_lr_schedule_with_warmup
    from trl import SFTConfig, SFTTrainer

    # The schedule is planned over `planned_steps`; training stops at `steps` (see the module docstring).
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=settings.planned_steps, min_lr_rate=0.1
    )
    config = SFTConfig(
        output_dir=str(out_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        max_grad_norm=1.0,
        logging_steps=50,
        save_strategy="no",
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        dataloader_drop_last=True,
        completion_only_loss=True,
        max_length=tokenizer.model_max_length,
        use_cpu=True,
        gradient_checkpointing=False,  # TRL turns it on by default; on a 0.5M model it only costs time
        bf16=False,
        disable_tqdm=quiet(),
    )
    dataset = sft_dataset(settings, tokenizer, exclude)
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, optimizers=(optimizer, schedule)
    )
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    return history[-1] if history else {}
