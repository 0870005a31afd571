"""The inventory of the real gemma file against what the real llama-server logs when it loads it.

llama-server prints its hyperparameters (``print_info: ...``), tensor type counts
(``llama_model_loader: - type ...``) and, at debug verbosity, whether each layer uses the
sliding window (``load_tensors: layer N ... is_swa = B``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from profiles.server import LlamaServer
from solver.gguf.sources import load_inventory
from solver.quantities import MIB

pytestmark = pytest.mark.llama


def load_log(binary: Path, model: Path, log: Path, env: dict[str, str]) -> str:
    """Start llama-server at -lv 5 (the per-layer lines are debug output), stop it once it is
    ready; return its log."""
    args = ["--no-warmup", "--fit", "off", "-c", "512", "-lv", "5", "-t", "1"]
    with LlamaServer(model, args, binary=binary, log_path=log, env=env):
        pass
    return log.read_text(errors="replace")


def info(log: str, key: str) -> str:
    match = re.search(rf"print_info: {re.escape(key)} *= (.*)", log)
    assert match, f"no print_info {key} in the log"
    return match.group(1).strip()


def test_gemma_matches_llama_server_log(
    gemma_gguf: Path, tmp_path: Path, llama_server_bin: Path, server_env: dict[str, str]
) -> None:
    inv = load_inventory(str(gemma_gguf))
    log = load_log(llama_server_bin, gemma_gguf, tmp_path / "server.log", server_env)

    assert info(log, "arch") == inv.architecture
    assert int(info(log, "n_layer_all")) == inv.n_layers
    assert int(info(log, "n_embd")) == inv.n_embd
    assert int(info(log, "n_ctx_train")) == inv.context_length
    assert int(info(log, "n_head")) == inv.attention.n_head[0]
    assert int(info(log, "n_head_kv")) == inv.attention.n_head_kv[0]
    assert int(info(log, "n_embd_head_k")) == inv.attention.key_length
    assert int(info(log, "n_embd_head_v")) == inv.attention.value_length
    assert int(info(log, "n_rot")) == inv.attention.rope_dim
    assert int(info(log, "n_swa")) == inv.attention.sliding_window
    assert int(info(log, "n_ff")) == inv.n_ff[0]
    assert int(info(log, "n_expert")) == inv.experts.count
    assert int(info(log, "n_vocab")) == inv.n_vocab
    assert info(log, "general.name") == inv.name
    assert info(log, "model params") == f"{inv.n_params / 1e6:.2f} M"
    assert info(log, "file size").startswith(f"{inv.total_bytes / MIB:.2f} MiB")

    swa = {
        int(layer): flag == "1" for layer, flag in re.findall(r"layer +(\d+) .*is_swa = (\d)", log)
    }
    assert [swa[il] for il in range(inv.n_layers)] == list(inv.attention.swa_layers)

    logged_types = {
        name.upper(): int(count)
        for name, count in re.findall(r"llama_model_loader: - type +(\w+): +(\d+) tensors", log)
    }
    assert logged_types == dict(Counter(t.type for t in inv.tensors))
