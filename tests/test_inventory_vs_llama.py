"""The inventory of the real gemma file against what the real llama-server logs when it loads it.

llama-server prints its hyperparameters (``print_info: ...``), tensor type counts
(``llama_model_loader: - type ...``) and, at debug verbosity, whether each layer uses the
sliding window (``load_tensors: layer N ... is_swa = B``).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from solver.sources import load_inventory

pytestmark = pytest.mark.llama

MIB = 1024 * 1024


def load_log(binary: Path, model: Path, log: Path, n_layers: int) -> str:
    """Start llama-server until it has loaded the model, then stop it; return its log."""
    args = [str(binary), "-m", str(model), "--no-warmup", "-c", "512", "-v"]
    args += ["--host", "127.0.0.1", "--port", "0", "-t", "1"]
    with log.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                text = log.read_text(errors="replace")
                if len(re.findall(r"load_tensors: layer +\d+ assigned", text)) > n_layers:
                    break
                time.sleep(0.2)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return log.read_text(errors="replace")


def info(log: str, key: str) -> str:
    match = re.search(rf"print_info: {re.escape(key)} *= (.*)", log)
    assert match, f"no print_info {key} in the log"
    return match.group(1).strip()


def test_gemma_matches_llama_server_log(
    gemma_gguf: Path, tmp_path: Path, llama_server_bin: Path
) -> None:
    inv = load_inventory(str(gemma_gguf))
    log = load_log(llama_server_bin, gemma_gguf, tmp_path / "server.log", inv.n_layers)

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
