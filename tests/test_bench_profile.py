"""fit bench-profile: [bench-<id>] from a production profile, and the benchmark's data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from profiles.bench_data import BenchEntry, record_bench_entry
from profiles.bench_profile import BENCH_CONTEXT, bench_extra_args
from profiles.models_conf import ModelsConf
from profiles.workspace import Workspace
from tests.workspace_support import example_workspace, invoke


def _with_gemma(tmp_path: Path, gemma_gguf: Path) -> Path:
    conf = example_workspace(tmp_path)
    text = conf.read_text().replace(
        "# --- Bench profiles",
        "[gemma]\nNAME=Gemma 3 270M\nMODEL=" + str(gemma_gguf) + "\nCTX_SIZE=4096\n"
        "N_GPU_LAYERS=99\nFIT=off\nEXTRA_ARGS=-fa on -b 2048 --jinja --temp 1.0 --top-k 64 "
        "-t 1\n\n# --- Bench profiles",
    )
    conf.write_text(text)
    return conf


def test_bench_profile_from_gemma(tmp_path: Path, gemma_gguf: Path) -> None:
    conf = _with_gemma(tmp_path, gemma_gguf)
    result = invoke("bench-profile", "gemma", "--conf", str(conf), "--hardware", "reference")
    assert result.exit_code == 0, result.output
    profile = ModelsConf.read(conf).profile("bench-gemma")
    assert profile.get("CTX_SIZE") == str(BENCH_CONTEXT)
    assert profile.get("MODEL") == str(gemma_gguf)
    extra = profile.get("EXTRA_ARGS") or ""
    assert "-b 512 -ub 512" in extra and extra.endswith("--jinja -t 1")
    assert "--temp" not in extra and "--top-k" not in extra and "--reasoning-format" not in extra
    assert "left out sampler flags (EvalPlus sends temperature 0): --temp 1.0, --top-k 64" in (
        result.output
    )
    assert ModelsConf.read(conf).ids[-1] == "bench-gemma"  # after the example's bench profile
    workspace = Workspace.of(conf)
    assert json.loads(workspace.display_names.read_text()) == {"bench-gemma": "Gemma 3 270M"}
    assert json.loads(workspace.reference_scores.read_text()) == {"bench-gemma": {}}
    readme = workspace.bench_readme.read_text()
    assert "| bench-gemma | Gemma 3 270M | 10240 | - |" in readme
    # a bench profile is not the PROFILE to start from
    again = invoke("bench-profile", "bench-gemma", "--conf", str(conf), "--hardware", "reference")
    assert again.exit_code == 2 and "is a bench profile" in again.output


def test_thinking_model_gets_reasoning_format_none_and_no_samplers() -> None:
    keys = {"EXTRA_ARGS": "-b 512 -ub 512 -fa on", "CTX_SIZE": "10240"}
    value, dropped = bench_extra_args(
        "-b 4096 --jinja --temp 0.6 --min-p 0.0 --reasoning-format deepseek", keys, thinking=True
    )
    assert value == "-b 512 -ub 512 -fa on --reasoning-format none --jinja"
    assert dropped == ("--temp 0.6", "--min-p 0.0")


def test_gpt_oss_gets_its_system_prompt_and_user_entries_stay(tmp_path: Path) -> None:
    conf = example_workspace(tmp_path)
    workspace = Workspace.of(conf)
    workspace.display_names.write_text('{"bench-gpt-oss-120b": "my name"}\n')
    entry = BenchEntry(
        bench_profile="bench-gpt-oss-120b", display_name="GPT-OSS", architecture="gpt-oss"
    )
    before = workspace.bench_client.read_text()
    record_bench_entry(workspace, entry)
    record_bench_entry(workspace, entry)  # twice: nothing more
    assert json.loads(workspace.display_names.read_text()) == {"bench-gpt-oss-120b": "my name"}
    assert workspace.bench_client.read_text() == before  # the example already has its prompt
    record_bench_entry(workspace, entry.model_copy(update={"bench_profile": "bench-oss-2"}))
    prompts = ModelsConf.read(workspace.bench_client)
    assert prompts.profile("bench-oss-2").get("SYSTEM_PROMPT") == "Reasoning: high"


def _thinking_llama(path: Path) -> Path:
    """A tiny llama whose chat template opens a think block, as Qwen3's does."""
    from gguf import GGUFWriter

    from tests.gguf_bytes import llama_metadata, llama_tensors

    writer = GGUFWriter(path, "llama")
    llama_metadata(writer, 2)
    writer.add_chat_template("{% if enable_thinking %}<think>\n{% endif %}{{ messages }}")
    for name, shape in llama_tensors(2, n_vocab=32).items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_thinking_model_from_its_chat_template(tmp_path: Path) -> None:
    model = _thinking_llama(tmp_path / "thinker.gguf")
    conf = example_workspace(tmp_path / "ws")
    with conf.open("a") as handle:
        handle.write(f"\n[thinker]\nNAME=Thinker\nMODEL={model}\nCTX_SIZE=4096\nN_GPU_LAYERS=99\n"
                     "FIT=off\nEXTRA_ARGS=-fa on --jinja --temp 0.6\n")  # fmt: skip
    result = invoke("bench-profile", "thinker", "--conf", str(conf), "--hardware", "reference")
    assert result.exit_code == 0, result.output
    extra = ModelsConf.read(conf).profile("bench-thinker").get("EXTRA_ARGS") or ""
    assert "--reasoning-format none" in extra and "--temp" not in extra
    assert "thinking model: --reasoning-format none" in result.output
