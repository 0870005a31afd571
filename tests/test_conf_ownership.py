"""models.conf edits own only what fit wrote, and writes respect the user's file.

Issue 15: a re-solve kept nothing a user added to an untested profile; new profiles landed in
the bench section; symlinks, read-only files, the umask, concurrent writers, killed writers and
non-UTF-8 arguments were not respected.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from profiles import outcome
from profiles.models_conf import (
    ModelsConf,
    check_writable,
    conf_lock,
    edit_conf,
    write_atomic,
)
from profiles.profile_writer import (
    FIT_FLAGS,
    KEYED_FLAGS,
    NewProfile,
    arg_groups,
    is_fit_comment,
    merged_extra_args,
    place_profile,
    production_profile,
)
from profiles.runs import RunRecord
from solver.errors import BadInput, OperationFailed
from solver.gguf.sources import load_inventory
from solver.hardware.scenario import load_hardware
from solver.llama.options import server_options
from solver.placement.solve import SolveRequest, solve

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CONF = Path(__file__).parent / "fixtures" / "models.conf"
USER_COMMENT = "# my note: try this one for chat (added by hand)"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def solve_q3(conf: Path, *extra: str) -> str:
    code, out = run(
        "solve", "qwen3-30b-a3b", "--write-profile", "q3", "--conf", str(conf),
        "--model-path", "m.gguf", *extra,
    )  # fmt: skip
    assert code == 0, out
    return out


def user_edits(text: str) -> str:
    """What the issue's user did: a comment above [q3], --jinja --temp 0.7 in its EXTRA_ARGS."""
    lines = text.split("\n")
    header = lines.index("[q3]")
    start = header
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    lines.insert(start, USER_COMMENT)
    extra = next(i for i in range(header, len(lines)) if lines[i].startswith("EXTRA_ARGS="))
    lines[extra] += " --jinja --temp 0.7"
    return "\n".join(lines)


# --- the case ------------------------------------------------------------------------


def test_a_re_solve_keeps_the_users_comment_and_flags_byte_exact(tmp_path: Path) -> None:
    conf, clean = tmp_path / "models.conf", tmp_path / "clean.conf"
    shutil.copy(FIXTURE_CONF, conf)
    solve_q3(conf)
    conf.write_text(user_edits(conf.read_text()))
    shutil.copy(FIXTURE_CONF, clean)
    solve_q3(clean)
    # the same re-solve, with new values for fit to write (context and KV type change)
    again = ("--ctx", "16384", "--kv", "q8_0")
    solve_q3(conf, *again)
    solve_q3(clean, *again)
    after = conf.read_text()
    assert after == user_edits(clean.read_text())  # fit's new profile plus the user's edits
    profile = ModelsConf(after).profile("q3")
    assert profile.comments[0] == USER_COMMENT
    assert profile.get("CTX_SIZE") == "16384"
    assert profile.get("EXTRA_ARGS").endswith(
        "-ctk q8_0 -ctv q8_0 -np 1 -ts 49,0 --jinja --temp 0.7"
    )
    assert sum("Placed by fit solve" in line for line in profile.comments) == 1


def test_new_profiles_go_before_the_bench_divider_and_bench_ones_after(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    shutil.copy(FIXTURE_CONF, conf)
    solve_q3(conf)
    ids = ModelsConf.read(conf).ids
    assert ids.index("q3") == ids.index("bench-glm-flash-q8") - 1
    code, out = run(
        "solve", "qwen3-30b-a3b", "--write-profile", "bench-q3", "--conf", str(conf),
        "--model-path", "m.gguf",
    )  # fmt: skip
    assert code == 0, out
    assert ModelsConf.read(conf).ids[-1] == "bench-q3"


def test_user_flags_that_fight_fit_win_and_the_output_says_so(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    solve_q3(conf)
    text = conf.read_text().replace("-ts 49,0", "-ts 49,0 -ctk q8_0 -c 4096 --n-cpu-moe 4 --jinja")
    conf.write_text(text)
    out = solve_q3(conf)
    extra = ModelsConf.read(conf).profile("q3").get("EXTRA_ARGS")
    assert extra.endswith("-ts 49,0 -ctk q8_0 -c 4096 --jinja")
    assert "kept your -ctk q8_0 over fit's -ctk f16" in out
    assert "kept your -c 4096 over fit's CTX_SIZE=8192" in out
    # --n-cpu-moe is one of fit's own options: a single occurrence is taken as fit's earlier
    # plan and removed when the new plan does not use it, and the output says so
    assert "removed --n-cpu-moe 4, taken as fit's earlier plan" in out
    assert "--jinja" not in out.split("wrote [q3]")[1]  # a flag fit does not fight: no note


# --- ownership rules, on the conf in memory --------------------------------------------------

FIT_BLOCK = (
    "Qwen3-30B-A3B (30.5B-A3.4B MoE, 48 layers, 128 experts, 8 active, Q4_K_M)",
    "Architecture: qwen3moe, read from the GGUF header.",
    "Strategy A: everything on one GPU — it fits.",
    "Memory budget: CUDA0 18.0/23.5 GiB (weights 17.1, KV 0.8, compute 0.2)",
    "Placed by fit solve on reference (optimal, gap 0.00%), 2026-01-02; estimated decode 294 t/s.",
    "NOT YET TESTED — run `fit test p` to measure it.",
)


def new_profile(extra: str = "-b 2048 -fa on -ctk f16 -ts 3,1", ctx: str = "8192", **labels):
    keys = (
        ("NAME", labels.get("name", "Qwen3-30B-A3B Q4_K_M")),
        ("DESCRIPTION", labels.get("description", "Placed by fit (everything on one GPU)")),
        ("SPEED", "~294 t/s (estimated)"),
        ("MODEL", "m.gguf"),
        ("CTX_SIZE", ctx),
        ("N_GPU_LAYERS", "49"),
        ("FIT", "off"),
        ("EXTRA_ARGS", extra),
    )
    defaults = tuple(k for k, given in (("NAME", "name"), ("DESCRIPTION", "description"))
                     if given not in labels)  # fmt: skip
    return NewProfile(profile_id="p", keys=keys, comments=FIT_BLOCK, label_defaults=defaults)


def test_every_line_fit_writes_is_recognised_and_no_hand_written_one() -> None:
    assert all(is_fit_comment(f"# {line}") for line in FIT_BLOCK)
    record = RunRecord(
        kind="test", profile="p", conf="c", machine_id="m", started="2026-01-02T00:00:00",
        model="m", args=(), binary="b", log_path="l", ok=True, decode_tps=12.5, prompt_tps=300,
    )  # fmt: skip
    assert is_fit_comment(outcome.tested_line(record, dt.date(2026, 1, 2)))
    assert (outcome.TESTED_WORDS, outcome.TUNED_WORDS) == ("by fit test", "by fit tune")
    assert is_fit_comment("# Tuned 2026-01-02 by fit tune (study s, trial 3): measured x.")
    # every comment of the example workspace was written by hand
    for profile in ModelsConf.read(FIXTURE_CONF).profiles:
        assert not any(is_fit_comment(line) for line in profile.comments), profile.id


def test_every_solve_line_is_recognised_and_every_flag_is_owned() -> None:
    """Drift guards: what production_profile writes today is what a rewrite replaces."""
    for model, rig, ctx in (
        ("gpt-oss-120b", "reference", 32768),  # -ot, -ts on two GPUs
        ("qwen3-30b-a3b", "single-4090", 8192),
        ("qwen3-32b:Q8_0", "reference", 32768),  # dense, partly on CPU
    ):
        inventory, hardware = load_inventory(model), load_hardware(rig)
        report = solve(inventory, hardware, SolveRequest(contexts=(ctx,), time_limit_s=5))
        profile = production_profile(
            report, inventory, hardware, profile_id="x", model_path="m.gguf"
        )
        for line in profile.comments:
            assert is_fit_comment(f"# {line}"), line
        for group in arg_groups(" ".join(report.args)):
            assert group.key in FIT_FLAGS | set(KEYED_FLAGS), group


def test_fit_owns_one_occurrence_of_its_flags_and_keeps_the_rest_as_written() -> None:
    old = (
        "--reverse-prompt 'User:'  -b 512 --jinja -fa on -ctk f16 -ts 3,1 --my-flag 'x y' "
        '--samplers "top_k;top_p" -b 64 --reasoning_format deepseek'
    )
    keys = {"CTX_SIZE": "8192", "N_GPU_LAYERS": "49", "FIT": "off", "MODEL": "m.gguf"}
    value, notes = merged_extra_args(old, "-b 2048 -fa on -ctk q8_0 -ts 2,1", keys)
    assert value == (
        "-b 2048 -fa on -ctk q8_0 -ts 2,1 --reverse-prompt 'User:' --jinja --my-flag 'x y' "
        '--samplers "top_k;top_p" -b 64 --reasoning_format deepseek'
    )
    assert notes == ["EXTRA_ARGS: kept your -b 64 over fit's -b 2048 (llama-server uses the last)"]
    # a duplicate equal to fit's new value is kept silently; one fit no longer writes is noted
    assert merged_extra_args("-ts 3,1 -ts 2,1", "-ts 2,1", keys) == ("-ts 2,1 -ts 2,1", [])
    value, notes = merged_extra_args("-ot a=CPU -ot b=CPU", "-ts 2,1", keys)
    assert value == "-ts 2,1 -ot b=CPU" and "fit's plan does not include it" in notes[0]
    # every later occurrence is the user's: -ot adds rules, and fit's come first
    value, notes = merged_extra_args("-ot fit=CPU -ot a=CPU -ot b=CPU", "-ot new=CPU", keys)
    assert value == "-ot new=CPU -ot a=CPU -ot b=CPU"
    assert notes[0] == (
        "EXTRA_ARGS: kept your -ot a=CPU after fit's -ot new=CPU; llama.cpp uses the first -ot "
        "rule matching a tensor, so fit's rules decide the tensors both match"
    )


def test_unbalanced_extra_args_are_refused_not_dropped() -> None:
    conf = ModelsConf('[p]\nNAME=x\nEXTRA_ARGS=--jinja "unclosed\n', source="m.conf")
    with pytest.raises(BadInput, match=r"m\.conf: \[p\] EXTRA_ARGS: cannot split"):
        place_profile(conf, new_profile(), force=True)


def test_labels_the_user_wrote_stay_and_fits_defaults_follow_the_model() -> None:
    conf = ModelsConf("")
    place_profile(conf, new_profile(), force=False)
    place_profile(conf, new_profile(name="Other Q8_0"), force=False)  # --name given: replaced
    assert conf.profile("p").get("NAME") == "Other Q8_0"
    conf.set_value("p", "NAME", "My chat model")
    conf.set_value("p", "DESCRIPTION", "for the team")
    place_profile(conf, new_profile(), force=False)  # defaults only: the user's labels stay
    values = conf.profile("p").values
    assert (values["NAME"], values["DESCRIPTION"]) == ("My chat model", "for the team")
    # fit's own default NAME is replaced when the model changes
    fresh = ModelsConf("")
    place_profile(fresh, new_profile(), force=False)
    other = new_profile().model_copy(
        update={"comments": ("Qwen3 32B (32.8B dense, 64 layers, Q8_0)",)}
    )
    other = other.model_copy(update={"keys": (("NAME", "Qwen3 32B Q8_0"), *other.keys[1:])})
    place_profile(fresh, other, force=False)
    assert fresh.profile("p").get("NAME") == "Qwen3 32B Q8_0"


def test_body_comments_unknown_keys_order_and_a_tested_line_under_force() -> None:
    conf = ModelsConf("[a]\nX=1\n")
    place_profile(conf, new_profile(), force=False)
    conf.add_profile("z", {"Y": "2"})
    text = conf.render().replace("SPEED=", "# inside the body\n\nMY_KEY=kept\nSPEED=")
    untested = "# NOT YET TESTED — run `fit test p` to measure it."
    text = text.replace(untested, "# Tested 2026-01-03 by fit test: decode 1.0 t/s.")
    conf = ModelsConf(text)
    with pytest.raises(BadInput, match="--force"):
        place_profile(conf, new_profile(ctx="4096"), force=False)
    place_profile(conf, new_profile(ctx="4096"), force=True)
    after = conf.render()
    assert after == text.replace("CTX_SIZE=8192", "CTX_SIZE=4096").replace(
        "# Tested 2026-01-03 by fit test: decode 1.0 t/s.",
        untested,
    )
    assert conf.ids == ("a", "p", "z")


def test_fit_lines_deleted_by_the_user_come_back_after_the_users_lines() -> None:
    conf = ModelsConf("# mine\n[p]\nNAME=x\nEXTRA_ARGS=--jinja\n")
    place_profile(conf, new_profile(), force=True)
    assert conf.profile("p").comments == ("# mine", *(f"# {line}" for line in FIT_BLOCK))
    assert conf.profile("p").get("EXTRA_ARGS") == "-b 2048 -fa on -ctk f16 -ts 3,1 --jinja"


def test_divider_without_a_profile_above_it_and_a_file_without_one() -> None:
    conf = ModelsConf("# head\n\n# --- Bench profiles ---\n[bench-a]\nX=1\n")
    place_profile(conf, new_profile(), force=False)
    text = conf.render()
    assert text.startswith("# head\n\n# Qwen3") and "X=1\n\n# --- Bench" not in text
    assert (
        "EXTRA_ARGS=-b 2048 -fa on -ctk f16 -ts 3,1\n\n# --- Bench profiles ---\n[bench-a]" in text
    )
    plain = ModelsConf("[a]\nX=1\n")
    place_profile(plain, new_profile(), force=False)
    assert plain.render().startswith("[a]\nX=1\n\n# Qwen3") and plain.ids == ("a", "p")


# --- bad input: one line, exit 2, nothing written ---------------------------------------------


@pytest.fixture
def no_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        pytest.fail("the solve ran although the input was already known to be bad")

    monkeypatch.setattr("profiles.planning.solve", refuse)


def _one_line_exit_2(*args: str) -> str:
    code, out = run(*args)
    assert code == 2, out
    assert out.strip().count("\n") == 0, out
    return out


def test_an_empty_profile_id_is_bad_input(tmp_path: Path, no_solve) -> None:
    conf = tmp_path / "models.conf"
    out = _one_line_exit_2("solve", "qwen3-30b-a3b", "--write-profile", "", "--conf", str(conf),
                           "--model-path", "m.gguf")  # fmt: skip
    assert "profile id ''" in out and not conf.exists()


@pytest.mark.parametrize("option", ["--name", "--description", "--model-path"])
def test_non_utf8_arguments_are_one_clear_line(tmp_path: Path, no_solve, option: str) -> None:
    conf = tmp_path / "models.conf"
    shutil.copy(FIXTURE_CONF, conf)
    before = conf.read_bytes()
    args = {"--model-path": "m.gguf", option: "bad\udcffvalue"}  # how Python passes byte 0xff
    out = _one_line_exit_2("solve", "qwen3-30b-a3b", "--write-profile", "q3", "--conf", str(conf),
                           *(item for pair in args.items() for item in pair))  # fmt: skip
    assert "is not UTF-8 text (byte 0xff at character 4)" in out
    assert conf.read_bytes() == before


def test_non_utf8_bytes_on_a_real_command_line(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    fit = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]
    result = subprocess.run(
        [*fit, "solve", "qwen3-30b-a3b", "--write-profile", "q3", "--conf", str(conf),
         "--model-path", b"models/caf\xe9.gguf"],
        cwd=REPO, capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr and result.stderr.count(b"\n") == 1
    assert b"value of MODEL is not UTF-8 text (byte 0xe9" in result.stderr
    assert not conf.exists()


def test_a_read_only_conf_is_refused_before_solving(tmp_path: Path, no_solve) -> None:
    conf = tmp_path / "models.conf"
    shutil.copy(FIXTURE_CONF, conf)
    conf.chmod(0o444)
    before = conf.read_bytes()
    out = _one_line_exit_2("solve", "qwen3-30b-a3b", "--write-profile", "q3", "--conf", str(conf),
                           "--model-path", "m.gguf")  # fmt: skip
    assert "read-only (mode 0444)" in out
    assert conf.read_bytes() == before and conf.stat().st_mode & 0o777 == 0o444
    with pytest.raises(BadInput, match="read-only"):
        write_atomic(conf, "x\n")
    with pytest.raises(BadInput, match="read-only"):
        edit_conf(conf, lambda c: c.set_value("glm-flash-q8", "SPEED", "1 t/s"))
    assert conf.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.conf"]


# --- writes ----------------------------------------------------------------------------------


def test_a_symlinked_conf_is_edited_through_the_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "ws").mkdir()
    target, link = tmp_path / "real" / "models.conf", tmp_path / "ws" / "models.conf"
    shutil.copy(FIXTURE_CONF, target)
    target.chmod(0o640)
    link.symlink_to(Path("..") / "real" / "models.conf")
    solve_q3(link)
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "real" / "models.conf")
    assert "q3" in ModelsConf.read(target).ids
    assert target.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "real" / "models.conf.bak").read_bytes() == FIXTURE_CONF.read_bytes()
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["models.conf"]


def test_a_dangling_link_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "models.conf"
    link.symlink_to("elsewhere.conf")
    edit_conf(link, lambda c: c.add_profile("a", {"X": "1"}), create=True)
    assert link.is_symlink() and (tmp_path / "elsewhere.conf").read_text() == "[a]\nX=1\n"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_honour_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "models.conf", "[a]\nX=1\n")
        write_atomic(tmp_path / "models.conf", "[a]\nX=2\n")  # its .bak copies the mode too
    finally:
        os.umask(previous)
    assert (tmp_path / "models.conf").stat().st_mode & 0o777 == mode
    assert (tmp_path / "models.conf.bak").stat().st_mode & 0o777 == mode


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    conf.write_text("[a]\nX=1\n")
    stale = [
        ".models.conf.k3j_x9a2.tmp",
        ".models.conf.0badf00d.tmp",
        ".models.conf.bak.abcd1234.tmp",
    ]
    others = [".models.conf.x.tmp", ".other.conf.0badf00d.tmp", "models.conf.0badf00d.tmp"]
    for name in stale + others:
        (tmp_path / name).write_text("half")
    (tmp_path / ".models.conf.lock").write_text("")  # left by a killed writer
    edit_conf(conf, lambda c: c.set_value("a", "X", "2"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["models.conf", "models.conf.bak", *others]
    )


def test_an_edit_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    conf.write_text("[a]\nX=1\n")
    edit_conf(conf, lambda c: c.set_value("a", "X", "1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.conf"]


def test_the_lock_waits_for_its_holder_and_gives_up_after_its_timeout(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    conf.write_text("[a]\nX=1\n")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with conf_lock(conf):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    with (
        pytest.raises(OperationFailed, match=r"another process has held its lock"),
        conf_lock(conf, timeout_s=0.2),
    ):
        pass
    release.set()
    thread.join()
    with conf_lock(conf), conf_lock(conf):  # free again, and reentrant in one thread
        check_writable(conf)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.conf"]


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from profiles.models_conf import edit_conf
path, name, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(count):
    edit_conf(path, lambda conf: conf.add_profile(f"{name}-{i}", {"X": str(i)}), create=True)
"""


def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    conf = tmp_path / "models.conf"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(conf), f"w{n}", "15"])
        for n in range(3)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0]
    ids = set(ModelsConf.read(conf).ids)
    assert ids == {f"w{n}-{i}" for n in range(3) for i in range(15)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.conf", "models.conf.bak"]


def test_the_option_table_knows_every_owned_flag() -> None:
    keys = {option.key for option in server_options().values()}
    assert keys >= FIT_FLAGS | set(KEYED_FLAGS)
