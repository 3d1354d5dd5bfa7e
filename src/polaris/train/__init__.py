"""Training: the supervised warm start of the tiny model, the GRPO adapter, the stage runner."""
