"""Every catalogue model goes through the memory model under common launch shapes.

The catalogue holds real models' headers (DeepSeek-V3 MLA + MTP, gpt-oss iSWA, GLM MoE with
an MTP layer, Qwen3 MoE, Llama 3.3, Gemma 3). These checks use llama.cpp facts that do not
depend on fit's arithmetic: the weights llama.cpp allocates are the file's tensors (the MTP
layer's tensors excepted that llama.cpp skips: ``ModelHparams.loads``), and with
``--load-mode none`` on the CPU every tensor is allocated once, padded to 32 bytes.
"""

from __future__ import annotations

import pytest

from solver.ggml.dtypes import pad
from solver.gguf.catalogue import catalogue_models, load_catalogue_entry
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.hparams import model_hparams
from solver.llama.memory import estimate_memory

CPU = CpuFeatures()


@pytest.mark.parametrize("model", catalogue_models())
def test_all_on_cpu_allocates_every_used_tensor_once(model: str) -> None:
    inventory = load_catalogue_entry(model)
    hparams = model_hparams(inventory)
    used = [t for t in inventory.tensors if hparams.loads(t.name, t.layer)]
    config = parse_llama_args(["-c", "4096", "-ngl", "0", "--load-mode", "none", "--fit", "off"])
    report = estimate_memory(inventory, config, cpu=CPU)
    assert report.devices["CPU"].weights == sum(pad(t.n_bytes, 32) for t in used)


@pytest.mark.parametrize("model", catalogue_models())
def test_two_gpus_hold_everything_but_the_input_layer(model: str) -> None:
    inventory = load_catalogue_entry(model)
    config = parse_llama_args(["-c", "8192", "-ngl", "99", "-ts", "3,2", "-fa", "on"])
    report = estimate_memory(inventory, config, ["CUDA0", "CUDA1"], cpu=CPU)
    assert set(report.devices) == {"CPU", "CUDA0", "CUDA1"}
    on_cpu = {n for n, d in report.placement.tensor_devices.items() if d == "CPU"}
    # the input layer always stays on the CPU (gemma4's per-layer token rows are input too)
    assert on_cpu == {"token_embd.weight"} | ({"per_layer_token_embd.weight"} & on_cpu)
    assert all(d != "CPU" for d in report.placement.layer_kv_devices if d is not None)
