"""models.conf: parse -> render is byte-identical, edits touch only their lines, bad input is
BadInput with a line number, writes are atomic, EXTRA_ARGS splits and joins like a shell."""

import os
import shlex
from pathlib import Path

import pytest

from profiles.models_conf import (
    ModelsConf,
    check_overwrite,
    is_tested,
    join_args,
    quote_arg,
    split_args,
    write_atomic,
)
from solver.errors import BadInput, OperationFailed

# Byte copies of shared/examples/workspace/models.conf and .../evalplus/bench-client.conf,
# kept here so the tests run wherever the repository is cloned.
FIXTURES = Path(__file__).parent / "fixtures"
MODELS_CONF = FIXTURES / "models.conf"
BENCH_CLIENT = FIXTURES / "bench-client.conf"

SMALL = "# top\n\n# about a\n[a]\nX=1\n# between keys\n\nY=two words\n\n# loose\n\n[b]\nZ=3\n"


@pytest.mark.parametrize("path", [MODELS_CONF, BENCH_CLIENT])
def test_example_files_round_trip_byte_for_byte(path):
    assert ModelsConf.read(path).render().encode() == path.read_bytes()


def test_example_profiles():
    conf = ModelsConf.read(MODELS_CONF)
    assert conf.ids == (
        "glm-flash-q8", "gpt-oss-120b", "qwen3-coder-30b", "qwen3-32b-q8", "bench-glm-flash-q8",
    )  # fmt: skip
    glm = conf.profile("glm-flash-q8")
    assert glm.comments[0].startswith("# GLM-4.7-Flash") and len(glm.comments) == 3
    assert [key for key, _ in glm.keys][:3] == ["NAME", "DESCRIPTION", "SPEED"]
    assert (glm.first_line, glm.header_line, glm.last_line) == (11, 14, 22)
    # the "--- Bench profiles" separator is followed by a blank line: it belongs to no profile
    assert conf.profile("bench-glm-flash-q8").comments == ()
    extra = conf.profile("gpt-oss-120b").get("EXTRA_ARGS")
    assert '-ot "blk\\.([0-9]|1[0-9]|2[0-3])\\.ffn_.*_exps\\.=CPU"' in extra
    client = ModelsConf.read(BENCH_CLIENT).profile("bench-gpt-oss-120b")
    assert client.get("SYSTEM_PROMPT") == "Reasoning: high" and len(client.comments) == 1


@pytest.mark.parametrize(
    "text",
    [
        SMALL,
        SMALL.replace("\n", "\r\n"),
        SMALL.rstrip("\n"),
        SMALL.replace("\n", "\r\n").rstrip("\r\n"),
        "",
        "\n\n",
        "# only a comment",
        "[a]\nKEY=value with = signs and 'quotes' and \"more\"\nEMPTY=\n  SPACED = x  \n",
        "[a]\r\nX=1\nY=2\r\n",  # mixed endings stay mixed
        "[a]\nX=1\n\n\n\n",
        "\ufeff# a byte order mark, as Windows editors write it\n[a]\nX=1\n",
    ],
)
def test_odd_inputs_round_trip(text):
    assert ModelsConf(text).render() == text


def test_comments_and_blank_lines_between_keys_stay_in_the_profile():
    conf = ModelsConf(SMALL)
    a = conf.profile("a")
    assert a.keys == (("X", "1"), ("Y", "two words"))
    assert a.comments == ("# about a",)
    assert (a.first_line, a.header_line, a.last_line) == (3, 4, 8)
    assert conf.profile("b").comments == ()  # "# loose" is followed by a blank line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("X=1\n[a]\n", r"line 1: key line before any \[section\]"),
        ("[a]\nX=1\n[bad id]\n", r"line 3: bad section header '\[bad id\]'"),
        ("[a]\n[a\n", r"line 2: bad section header"),
        ("[a]\nX=1\n\n[b]\n[a]\n", r"line 5: duplicate section \[a\] \(first at line 1\)"),
        ("[a]\nX=1\n# c\nX=2\n", r"line 4: duplicate key X in \[a\] \(first at line 2\)"),
        ("[a]\nthis is not a key\n", r"line 2: not a comment, \[section\] or KEY=VALUE"),
        ("[a]\n1X=2\n", r"line 2: not a comment"),
    ],
)
def test_malformed_input_names_file_and_line(text, message):
    with pytest.raises(BadInput, match=rf"^my\.conf: {message}"):
        ModelsConf(text, source="my.conf")


def test_same_key_in_two_profiles_is_fine():
    assert ModelsConf("[a]\nX=1\n[b]\nX=2\n").profile("b").get("X") == "2"


def test_set_value_replaces_only_that_value():
    conf = ModelsConf(SMALL)
    conf.set_value("a", "Y", "three words")
    assert conf.render() == SMALL.replace("Y=two words", "Y=three words")


def test_set_value_keeps_spacing_and_crlf():
    text = "[a]\r\n  KEY = old\r\nZ=1\r\n"
    conf = ModelsConf(text)
    conf.set_value("a", "KEY", " new")
    assert conf.render() == "[a]\r\n  KEY = new\r\nZ=1\r\n"


def test_set_value_appends_a_missing_key_after_the_last_key():
    conf = ModelsConf(SMALL)
    conf.set_value("a", "NEW", "v")
    assert conf.render() == SMALL.replace("Y=two words\n", "Y=two words\nNEW=v\n")
    assert conf.profile("a").keys[-1] == ("NEW", "v")


def test_set_value_on_last_line_without_newline():
    conf = ModelsConf("[a]\nX=1")
    conf.set_value("a", "Y", "2")
    assert conf.render() == "[a]\nX=1\nY=2"


def test_set_comments_replaces_the_block_only():
    conf = ModelsConf(SMALL)
    conf.set_comments("a", ["NOT YET TESTED", "# kept as given"])
    assert conf.render() == SMALL.replace("# about a\n", "# NOT YET TESTED\n# kept as given\n")
    conf.set_comments("b", ["new block"])
    assert conf.profile("b").comments == ("# new block",)
    assert conf.render().endswith("# loose\n\n# new block\n[b]\nZ=3\n")


def test_add_profile_at_end_and_after():
    conf = ModelsConf(SMALL)
    conf.add_profile("c", {"K": "v"}, comments=["about c"])
    assert conf.render() == SMALL + "\n# about c\n[c]\nK=v\n"
    conf.add_profile("a2", [("K", "1")], after="a")
    expected = SMALL.replace("Y=two words\n", "Y=two words\n\n[a2]\nK=1\n") + (
        "\n# about c\n[c]\nK=v\n"
    )
    assert conf.render() == expected
    assert conf.ids == ("a", "a2", "b", "c")


def test_add_profile_uses_crlf_and_keeps_missing_final_newline():
    text = "[a]\r\nX=1"
    conf = ModelsConf(text)
    conf.add_profile("b", {"Y": "2"})
    assert conf.render() == "[a]\r\nX=1\r\n\r\n[b]\r\nY=2"


def test_add_profile_to_an_empty_file():
    conf = ModelsConf("")
    conf.add_profile("a", {"X": "1"}, comments=["first"])
    assert conf.render() == "# first\n[a]\nX=1\n"


def test_add_rejects_existing_or_bad_ids_and_values():
    conf = ModelsConf(SMALL)
    with pytest.raises(BadInput, match="already exists"):
        conf.add_profile("a", {"X": "1"})
    with pytest.raises(BadInput, match="profile id"):
        conf.add_profile("has space", {"X": "1"})
    with pytest.raises(BadInput, match="one line"):
        conf.add_profile("c", {"X": "1\n[evil]"})
    with pytest.raises(BadInput, match="key"):
        conf.set_value("a", "BAD KEY", "1")
    assert conf.render() == SMALL


def test_remove_profile_keeps_the_rest():
    conf = ModelsConf(SMALL)
    conf.remove_profile("a")
    assert conf.render() == "# top\n\n# loose\n\n[b]\nZ=3\n"
    conf = ModelsConf(SMALL)
    conf.remove_profile("b")
    assert conf.render() == SMALL.removesuffix("\n[b]\nZ=3\n")


def test_edits_leave_every_other_byte_of_the_example_alone():
    original = MODELS_CONF.read_text()
    conf = ModelsConf(original)
    conf.set_value("qwen3-32b-q8", "CTX_SIZE", "40960")
    conf.add_profile("bench-new", {"NAME": "new"}, comments=["NOT YET TESTED"])
    conf.remove_profile("bench-new")  # adding then removing the last profile restores the file
    assert conf.render() == original.replace("CTX_SIZE=32768", "CTX_SIZE=40960")


def test_tested_profiles_are_guarded():
    conf = ModelsConf("# NOT YET TESTED: first try\n[new]\nX=1\n\n# measured\n[old]\nX=1\n")
    assert not is_tested(conf.profile("new"))
    assert is_tested(conf.profile("old"))
    check_overwrite(conf.profile("new"), force=False)
    check_overwrite(conf.profile("old"), force=True)
    with pytest.raises(BadInput, match="--force"):
        check_overwrite(conf.profile("old"), force=False)


# --- EXTRA_ARGS -------------------------------------------------------------------------------

REGEX = r"blk\.(1[0-9])\.ffn_.*_exps\.=CPU"


def test_regex_argument_gets_readable_double_quotes():
    assert join_args(["-ot", REGEX]) == f'-ot "{REGEX}"'
    assert split_args(f'-ot "{REGEX}"') == ["-ot", REGEX]


@pytest.mark.parametrize(
    "arg",
    [REGEX, "plain", "", "it's", 'say "hi"', "$HOME", "back\\\\slash", "ends\\", "a b", "`x`"],
)
def test_quote_arg_agrees_with_the_shell(arg):
    assert shlex.split(quote_arg(arg)) == [arg]


def test_example_extra_args_split_and_join_back_to_the_same_text():
    for profile in ModelsConf.read(MODELS_CONF).profiles:
        extra = profile.get("EXTRA_ARGS")
        assert join_args(split_args(extra)) == extra


def test_unbalanced_quotes_are_bad_input():
    with pytest.raises(BadInput, match="cannot split"):
        split_args('-ot "blk')


# --- atomic writes ----------------------------------------------------------------------------


def test_write_atomic_keeps_a_backup_and_the_mode(tmp_path):
    path = tmp_path / "models.conf"
    path.write_text("old\n")
    path.chmod(0o640)
    write_atomic(path, "new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert (tmp_path / "models.conf.bak").read_text() == "old\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.conf", "models.conf.bak"]


def test_write_atomic_without_backup_or_previous_file(tmp_path):
    path = tmp_path / "fresh.conf"
    write_atomic(path, "x\n", backup=False)
    write_atomic(path, "y\n", backup=False)
    assert path.read_text() == "y\n" and not (tmp_path / "fresh.conf.bak").exists()


def test_failure_mid_write_leaves_the_original_intact(tmp_path, monkeypatch):
    path = tmp_path / "models.conf"
    path.write_text("original\n")

    def disk_full(fd):  # the data is written but never reaches the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OperationFailed, match="No space left on device"):
        write_atomic(path, "replacement that never lands\n" * 1000)
    assert path.read_text() == "original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["models.conf"]  # no temp file, no .bak


def test_conf_write_round_trip(tmp_path):
    path = tmp_path / "models.conf"
    path.write_bytes(SMALL.replace("\n", "\r\n").encode())
    conf = ModelsConf.read(path)
    conf.set_value("b", "Z", "4")
    conf.write()
    assert path.read_bytes() == SMALL.replace("Z=3", "Z=4").replace("\n", "\r\n").encode()
    assert (tmp_path / "models.conf.bak").read_bytes() == SMALL.replace("\n", "\r\n").encode()
