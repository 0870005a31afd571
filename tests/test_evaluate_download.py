"""``fit evaluate`` and ``fit download`` against the local stand-in Hub (HF_ENDPOINT): listings,
cards and GGUF files with range requests, in every layout (flat, per-quant folders, UD-
quants, a split set); no request leaves the machine."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from profiles.evaluating import QuantEvaluation, recommend
from solver.gguf.repo import RepoFile, group_quants, quant_label
from tests.fake_hub import FakeHub, use_hub
from tests.gguf_bytes import write_llama

REPO = "unsloth/Tiny-GGUF"
CARD = """---
license: apache-2.0
base_model: someone/Tiny
tags: [code, tool-use]
---
# Tiny

- Number of Parameters: 0.1B
- Number of Layers: 4
- Context Length: 256

| Quant | KLD | PPL |
|---|---|---|
| Q8_0 | 0.001 | 7.01 |
| UD-Q4_K_XL | 0.010 | 7.10 |
| Q4_K_M | 0.030 | 7.30 |

We suggest using `temperature=0.7`, `top_p=0.8`.
"""


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub() as server:
        use_hub(monkeypatch, server, tmp_path / "hf-home")
        monkeypatch.chdir(tmp_path)
        yield server


@pytest.fixture
def tiny_repo(hub: FakeHub, tmp_path: Path) -> FakeHub:
    """Flat Q8_0 (4 layers), folder Q4_K_M (2), UD-Q4_K_XL (3), a 3-part BF16 split set (2
    layers), an mmproj file and the card; every file LFS with its sha256."""
    files = tmp_path / "files"
    files.mkdir()
    for quant, path, layers in (
        ("Q8_0", "Tiny-Q8_0.gguf", 4),
        ("Q4_K_M", "Q4_K_M/Tiny-Q4_K_M.gguf", 2),
        ("UD-Q4_K_XL", "UD-Q4_K_XL/Tiny-UD-Q4_K_XL.gguf", 3),
    ):
        (local,) = write_llama(files / f"{quant}.gguf", n_layers=layers)
        hub.add(REPO, path, local, lfs=True)
    parts = write_llama(files / "bf16.gguf", split_max_tensors=7)
    for index, part in enumerate(parts, start=1):
        hub.add(REPO, f"BF16/Tiny-BF16-{index:05d}-of-{len(parts):05d}.gguf", part, lfs=True)
    (files / "mmproj.gguf").write_bytes(b"GGUF")
    hub.add(REPO, "mmproj-F16.gguf", files / "mmproj.gguf")
    (files / "README.md").write_text(CARD)
    hub.add(REPO, "README.md", files / "README.md")
    return hub


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("Qwen3-30B-A3B-Q4_K_M.gguf", "Q4_K_M"),
        ("Q4_K_M/Qwen3-235B-A22B-Q4_K_M-00001-of-00003.gguf", "Q4_K_M"),
        ("UD-Q4_K_XL/Qwen3-235B-A22B-UD-Q4_K_XL-00002-of-00003.gguf", "UD-Q4_K_XL"),
        ("Qwen3-30B-A3B-UD-IQ2_XXS.gguf", "UD-IQ2_XXS"),
        ("gpt-oss-120b-mxfp4-00001-of-00003.gguf", "MXFP4"),
        ("Llama-3.3-70B-Instruct-q8_0.gguf", "Q8_0"),
        ("BF16/DeepSeek-V3-BF16-00001-of-00030.gguf", "BF16"),
        ("model.gguf", "model"),
    ],
)
def test_quant_labels(path: str, label: str) -> None:
    assert quant_label(path) == label


def test_grouping_sums_split_sets_and_flags_missing_parts() -> None:
    files = [
        RepoFile(path="Q8_0/M-Q8_0-00002-of-00003.gguf", size=20),
        RepoFile(path="Q8_0/M-Q8_0-00001-of-00003.gguf", size=30),
        RepoFile(path="Q8_0/M-Q8_0-00003-of-00003.gguf", size=5),
        RepoFile(path="Q4_0/M-Q4_0-00001-of-00002.gguf", size=10),
        RepoFile(path="M-Q2_K.gguf", size=1),
        RepoFile(path="mmproj-M-F16.gguf", size=3),
        RepoFile(path="imatrix_unsloth.gguf", size=2),
        RepoFile(path="README.md", size=9),
    ]
    listing = group_quants("o/M-GGUF", files)
    assert [(q.name, q.size, q.complete) for q in listing.quants] == [
        ("Q8_0", 55, True), ("Q4_0", 10, False), ("Q2_K", 1, True),
    ]  # fmt: skip
    assert listing.quants[0].first == "Q8_0/M-Q8_0-00001-of-00003.gguf"
    assert [f.path for f in listing.extras] == ["imatrix_unsloth.gguf", "mmproj-M-F16.gguf"]


def test_evaluate_every_layout(tiny_repo: FakeHub) -> None:
    code, out, err = run("evaluate", REPO, "--ctx", "256", "--json", "--quant", "ud-q4_k_xl")
    assert code == 0, err
    document = json.loads(out)
    quants = {q["name"]: q for q in document["quants"]}
    assert list(quants) == ["Q8_0", "UD-Q4_K_XL", "BF16", "Q4_K_M"]  # largest first
    assert quants["BF16"]["files"] == [
        f"BF16/Tiny-BF16-{i:05d}-of-00003.gguf" for i in (1, 2, 3)
    ]  # fmt: skip
    assert all(q["fits"] and q["error"] is None for q in quants.values())
    assert all(q["decode_tps"] > 0 and q["decode_interval"] for q in quants.values())
    assert quants["Q8_0"]["kld"] == 0.001 and quants["Q4_K_M"]["ppl"] == 7.30
    assert quants["BF16"]["kld"] is None
    # KLD is missing for BF16, so quality falls back to size: Q8_0 is the largest.
    assert document["recommended"] == "Q8_0"
    assert "largest file" in document["reason"]
    assert document["chosen"] == "UD-Q4_K_XL"
    assert document["extras"] == ["mmproj-F16.gguf"]
    card = document["card"]
    assert (card["license"], card["base_model"], card["layers"]) == (
        "apache-2.0", ["someone/Tiny"], 4,
    )  # fmt: skip
    assert "coding" in card["specialties"] and "tool use" in card["specialties"]
    # Headers only: every GGUF file was read by range requests, none in full.
    for method, path, byte_range, _ in tiny_repo.requests:
        if method == "GET" and path.endswith(".gguf"):
            assert byte_range is not None and byte_range.startswith("bytes="), path
    assert "next: fit download unsloth/Tiny-GGUF --quant UD-Q4_K_XL" in err


def test_evaluate_text_and_min_tps(tiny_repo: FakeHub) -> None:
    code, out, err = run("evaluate", REPO, "--ctx", "256", "--min-tps", "1e9")
    assert code == 0, err
    assert "BF16" in out and "UD-Q4_K_XL" in out
    assert "no quant reaches 1e+09 t/s at 256 tokens" in out


def test_evaluate_offline_from_saved_card_and_local_gguf(tmp_path: Path) -> None:
    (local,) = write_llama(tmp_path / "Tiny-Q8_0.gguf", n_layers=2)
    card = tmp_path / "README_tiny.md"
    card.write_text(CARD)
    code, out, err = run("evaluate", str(local), "--card", str(card), "--ctx", "256", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["repo_id"] is None and document["card_source"] == str(card)
    (quant,) = document["quants"]
    assert quant["fits"] and quant["kld"] is None  # the file's type is F32, not a card row


def test_evaluate_unknown_quant_answer(tiny_repo: FakeHub) -> None:
    code, out, _ = run("evaluate", REPO, "--ctx", "256", "--quant", "Q3_K_S", "--json")
    assert code == 2
    assert "--quant Q3_K_S: not a quant of unsloth/Tiny-GGUF" in json.loads(out)["error"]["message"]


def test_repo_without_gguf(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    hub.add("someone/Tiny", "model.safetensors", tmp_path / "model.safetensors")
    code, _, err = run("evaluate", "someone/Tiny")
    assert code == 2
    assert err.strip() == (
        "Error: someone/Tiny: no GGUF quants in this repository (1 files, none of them a GGUF "
        "model); GGUF conversions usually live in a separate repository, often named "
        "<model>-GGUF"
    )


def test_unknown_repo_and_bad_id(hub: FakeHub) -> None:
    code, out, _ = run("evaluate", "nobody/nothing-GGUF", "--json")
    assert code == 2
    assert "repository not found, or private" in json.loads(out)["error"]["message"]
    code, _, err = run("download", "not a repo", "--quant", "Q4_K_M")
    assert code == 2 and "expected a Hugging Face repository id OWNER/NAME" in err


def test_gated_repo_without_token(tiny_repo: FakeHub) -> None:
    tiny_repo.gated.add(REPO)
    code, _, err = run("evaluate", REPO, "--ctx", "256")
    assert code == 2
    assert "unsloth/Tiny-GGUF is a gated repository: accept its conditions" in err
    assert "set HF_TOKEN" in err and "Traceback" not in err
    code, _, err = run("download", REPO, "--quant", "Q8_0")
    assert code == 2 and "gated repository" in err, err
    assert not Path("models/Tiny/Q8_0/Tiny-Q8_0.gguf").exists()


def test_download_split_quant(tiny_repo: FakeHub, tmp_path: Path) -> None:
    code, out, err = run("download", REPO, "--quant", "bf16", "--json")
    assert code == 0, err
    folder = Path("models/Tiny/BF16")
    names = [f"Tiny-BF16-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert sorted(p.name for p in folder.iterdir()) == names  # no staging folder left
    for name in names:
        served = tiny_repo.files[(REPO, f"BF16/{name}")]
        assert (folder / name).read_bytes() == served.read_bytes()
    document = json.loads(out)
    assert document["model_path"] == str(folder / names[0])
    assert all(f["sha256"] for f in document["files"])
    command = err.strip().splitlines()[0]
    assert shlex.split(command) == [
        "huggingface-cli", "download", REPO, *(f"BF16/{n}" for n in names),
        "--local-dir", "models/Tiny",
    ]  # fmt: skip
    # Again: kept, verified, nothing fetched.
    fetched = len(tiny_repo.requests)
    code, out, err = run("download", REPO, "--quant", "BF16")
    assert code == 0, err
    assert out.count("kept ") == 3 and "sha256 verified" in out
    assert all(not r[1].endswith(".gguf") for r in tiny_repo.requests[fetched:])


def test_download_flat_quant_command(tiny_repo: FakeHub) -> None:
    code, out, err = run("download", REPO, "--quant", "Q8_0", "--dest", "store")
    assert code == 0, err
    assert Path("store/Tiny/Q8_0/Tiny-Q8_0.gguf").is_file()
    assert shlex.split(err.splitlines()[0])[-2:] == ["--local-dir", "store/Tiny/Q8_0"]
    assert out.splitlines()[-1] == "MODEL=store/Tiny/Q8_0/Tiny-Q8_0.gguf"


def test_interrupted_download_resumes(tiny_repo: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub writes whole chunks (10 MB by default): smaller ones, so that part of
    # this 0.6 MB file arrives before the cut.
    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    path = "Tiny-Q8_0.gguf"
    size = tiny_repo.files[(REPO, path)].stat().st_size
    tiny_repo.cut_after = size // 2
    code, _, err = run("download", REPO, "--quant", "Q8_0")
    assert code == 1, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    final = Path("models/Tiny/Q8_0/Tiny-Q8_0.gguf")
    assert not final.exists()  # nothing half-done under the final name
    (partial,) = Path("models/Tiny/Q8_0/.fit-download").iterdir()
    arrived = partial.stat().st_size
    assert partial.name == "Tiny-Q8_0.gguf.incomplete" and 0 < arrived <= size // 2
    assert f"the {arrived} bytes that arrived are kept in {partial}" in err
    tiny_repo.cut_after = None
    before = len(tiny_repo.requests)
    code, out, err = run("download", REPO, "--quant", "Q8_0")
    assert code == 0, err
    assert final.read_bytes() == tiny_repo.files[(REPO, path)].read_bytes()
    ranges = [r[2] for r in tiny_repo.requests[before:] if r[0] == "GET" and r[1].endswith(path)]
    assert ranges == [f"bytes={arrived}-"]  # resumed where it broke
    assert "sha256 verified" in out


def test_download_refuses_names_leaving_the_destination(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    hub.add("evil/Model-GGUF", "Q4_K_M/../../../escape-Q4_K_M.gguf", tmp_path / "x.gguf")
    code, _, err = run("download", "evil/Model-GGUF", "--quant", "Q4_K_M")
    assert code == 2
    assert "may not contain '.', '..' or empty segments" in err
    assert not list(Path().rglob("escape*"))


def test_download_unknown_quant(tiny_repo: FakeHub) -> None:
    code, _, err = run("download", REPO, "--quant", "Q3_K_S")
    assert code == 2
    assert "no quant 'Q3_K_S' (quants: Q8_0, UD-Q4_K_XL, BF16, Q4_K_M)" in err


def quant(
    name: str, size: int, *, fits: bool = True, tps: float = 50.0, kld: float | None = None
) -> QuantEvaluation:
    return QuantEvaluation(
        name=name, size_bytes=size, files=(f"{name}.gguf",), model=name, fits=fits,
        decode_tps=tps if fits else None, kld=kld,
    )  # fmt: skip


def test_recommendation_rules() -> None:
    # KLD for every candidate: the lowest wins, whatever the sizes.
    best, reason = recommend(
        [quant("Q5_K_M", 50, kld=0.02), quant("UD-Q4_K_XL", 40, kld=0.01)], 8192, 10
    )
    assert best == "UD-Q4_K_XL" and "the lowest KLD in the card (0.01)" in reason
    # Too slow or not fitting: the largest usable one, and why not the larger.
    best, reason = recommend(
        [quant("Q8_0", 90, fits=False), quant("Q6_K", 70, tps=5.0), quant("Q4_K_M", 50)], 8192, 10
    )
    assert best == "Q4_K_M"
    assert reason.endswith("Q6_K is larger but reaches only 5.0 t/s")
    best, reason = recommend([quant("Q8_0", 90, fits=False)], 8192, 10)
    assert best is None and reason == "no quant fits this rig at 8192 tokens of context"


def test_type_mix_note(tiny_repo: FakeHub) -> None:
    code, out, err = run("evaluate", REPO, "--ctx", "256", "--json", "--quant", "Q8_0")
    assert code == 0, err
    (q8,) = [q for q in json.loads(out)["quants"] if q["name"] == "Q8_0"]
    assert q8["notes"] == ["types: dense FFN F32 100%; attention F32 100%; output F32 100%"]


def test_download_keeps_a_different_file_under_the_final_name(tiny_repo: FakeHub) -> None:
    final = Path("models/Tiny/Q8_0/Tiny-Q8_0.gguf")
    final.parent.mkdir(parents=True)
    final.write_bytes(b"mine")
    code, _, err = run("download", REPO, "--quant", "Q8_0")
    assert code == 1
    assert "Tiny-Q8_0.gguf: 4 bytes, the Hub lists" in err and "move it away" in err
    assert final.read_bytes() == b"mine"
