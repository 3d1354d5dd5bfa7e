"""Models: the built-in tiny model and tokenizer, loading any HF causal LM, YaRN settings."""
