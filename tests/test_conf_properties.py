"""Properties of every fit write to models.conf, on seeded random inputs (each case is its
seed, so a failure reproduces with that seed alone).

1. Random user edits survive every fit write: comments (above the section, between its keys,
   anywhere else), blank lines, unknown keys, flags in EXTRA_ARGS (any quoting), CRLF or mixed
   line ends, a UTF-8 BOM, no final newline. Every byte outside what fit owns is kept.
2. A writer killed with SIGKILL at any point leaves the old file or the new one, never a mix,
   and the next write leaves no temporary or lock file behind.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiles.models_conf import (
    UNTESTED_MARK,
    ModelsConf,
    edit_conf,
    is_tested,
    join_args,
    quote_arg,
    split_args,
)
from profiles.profile_writer import (
    BENCH_DIVIDER,
    NewProfile,
    arg_groups,
    is_fit_comment,
    place_profile,
    write_profile,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CONF = Path(__file__).parent / "fixtures" / "models.conf"
N_CASES = 300
FIT_KEYS = ("SPEED", "MODEL", "CTX_SIZE", "N_GPU_LAYERS", "FIT", "EXTRA_ARGS")

USER_GROUPS = [
    ("--jinja",), ("--temp", "0.7"), ("--top-k", "20"), ("--min-p", "0.01"),
    ("--reasoning-format", "deepseek"), ("--reasoning_budget", "0"), ("--my-unknown-flag",),
    ("--unknown-with-value", "a b"), ("--reverse-prompt", "User:"), ("-t", "8"),
    ("--chat-template-kwargs", '{"enable_thinking": false}'), ("--samplers", "top_k;top_p"),
    ("--alias", "my model"), ("--api-key", "s3cr$t"), ("--seed", "-1"),
    ("--repeat-penalty", "1.05"),
]  # fmt: skip
WORDS = [
    "note",
    "try",
    "ctx",
    "é",
    "日本語",
    "→",
    "[x]",
    "KEY=VALUE",
    "--jinja",
    "tab\there",
    "'q'",
]


# --- generators ------------------------------------------------------------------------------


def user_comment(rng: random.Random) -> str:
    while True:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))
        line = rng.choice(["# ", "#", "   # ", "\t#", "## "]) + words
        if not is_fit_comment(line) and UNTESTED_MARK not in line:
            return line.rstrip() if rng.random() < 0.8 else line + " "


def quoted(rng: random.Random, arg: str) -> str:
    styles = [quote_arg(arg), shlex.quote(arg)]
    if not re.search(r'["\\$`]', arg):
        styles.append(f'"{arg}"')
    return rng.choice(styles)


def group_text(rng: random.Random, group: tuple[str, ...]) -> str:
    text = (" " * rng.randint(1, 3)).join(quoted(rng, arg) for arg in group)
    assert split_args(text) == list(group)
    return text


def fit_args(rng: random.Random) -> list[str]:
    kv = rng.choice(["f16", "q8_0", "q4_0"])
    args = [
        "-b", str(rng.choice([512, 2048, 4096])), "-ub", str(rng.choice([256, 512])),
        "-fa", rng.choice(["on", "auto"]), "-ctk", kv, "-ctv", kv, "-np", str(rng.randint(1, 4)),
    ]  # fmt: skip
    if rng.random() < 0.6:
        args += ["-ts", f"{rng.randint(1, 60)},{rng.randint(0, 40)}"]
    if rng.random() < 0.5:
        args += ["-ot", rng.choice([r"blk\.([0-9]|1[0-9])\.ffn_.*_exps\.=CPU", "output=CUDA1"])]
    return args


def new_profile(rng: random.Random, profile_id: str) -> NewProfile:
    decode = rng.randint(5, 300)
    strategy = rng.choice(["A", "B", "C", "D"])
    comments = (
        f"Qwen3-30B-A3B ({rng.randint(10, 99)}.5B-A3.4B MoE, 48 layers, 128 experts, 8 active, "
        "Q4_K_M)",
        "Architecture: qwen3moe, read from the GGUF header.",
        f"Strategy {strategy}: a title — because it fits.",
        f"Memory budget: CUDA0 {rng.random() * 20:.1f}/23.5 GiB (weights 1.0, KV 0.1, compute 0)",
        f"Placed by fit solve on reference (optimal, gap 0.00%), 2026-01-0{rng.randint(1, 9)}; "
        f"estimated decode {decode} t/s.",
        f"{UNTESTED_MARK} — run `fit test {profile_id}` to measure it.",
    )
    keys = (
        ("NAME", "Qwen3-30B-A3B Q4_K_M"),
        ("DESCRIPTION", "Placed by fit (everything on one GPU)"),
        ("SPEED", f"~{decode} t/s (estimated)"),
        ("MODEL", rng.choice(["m.gguf", "models/a b/ü.gguf", "/abs/x-00001-of-00002.gguf"])),
        ("CTX_SIZE", str(rng.choice([4096, 8192, 131072]))),
        ("N_GPU_LAYERS", str(rng.randint(0, 99))),
        ("FIT", "off"),
        ("EXTRA_ARGS", join_args(fit_args(rng))),
    )
    return NewProfile(
        profile_id=profile_id, keys=keys, comments=comments, label_defaults=("NAME", "DESCRIPTION")
    )


def base_file(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.35:
        text = FIXTURE_CONF.read_text(encoding="utf-8")
    elif choice < 0.45:
        text = ""
    else:
        parts = []
        for index in range(rng.randint(0, 4)):
            if rng.random() < 0.5:
                parts.append(user_comment(rng))
            if index == 2 and rng.random() < 0.5:
                parts += ["", "# --- Bench profiles ---", ""]
            keys = [f"K{k}={rng.choice(WORDS)}" for k in range(rng.randint(0, 3))]
            parts += [f"[other-{index}]", *keys, *([""] * rng.randint(0, 2))]
        text = "\n".join(parts) + ("\n" if parts else "")
    return transform_file(rng, text)


def transform_file(rng: random.Random, text: str) -> str:
    if rng.random() < 0.3:
        text = text.replace("\n", "\r\n")
    elif rng.random() < 0.15:  # mixed: some lines CRLF
        text = "".join(
            line.replace("\n", "\r\n") if rng.random() < 0.5 else line for line in lines(text)
        )
    if rng.random() < 0.2:
        text = text.rstrip("\r\n")
    if rng.random() < 0.2:
        text = "\ufeff" + text
    return text


def lines(text: str) -> list[str]:
    """Lines with their ends, split on "\\n" only, as models.conf is read."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


class Edited:
    """A file as lines (with ends), its BOM apart, and what the user put into profile ``pid``."""

    def __init__(self, text: str, pid: str) -> None:
        self.bom = "\ufeff" if text.startswith("\ufeff") else ""
        self.lines = lines(text[len(self.bom) :])
        self.pid = pid
        self.parts: list[tuple[str, bool]] | None = None  # EXTRA_ARGS: (text, the user's?)
        self.override: str | None = None
        self.tested = False

    @property
    def text(self) -> str:
        return self.bom + "".join(self.lines)

    def span(self) -> tuple[int, int, int]:
        profile = ModelsConf(self.text).profile(self.pid)
        return profile.first_line - 1, profile.header_line - 1, profile.last_line - 1

    def ending(self, rng: random.Random) -> str:
        return rng.choice(["\n", "\r\n"])

    def insert(self, index: int, text: str, rng: random.Random) -> None:
        if index == len(self.lines) and self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"
        ending = self.ending(rng) if index < len(self.lines) or rng.random() < 0.5 else ""
        self.lines.insert(index, text + ending)

    def edit(self, rng: random.Random) -> None:
        first, header, last = self.span()
        action = rng.choice(
            ["above", "above", "body", "blank", "key", "flag", "flag", "elsewhere", "label"]
        )
        if action == "above":
            self.insert(rng.randint(first, header), user_comment(rng), rng)
        elif action == "body" and last > header:
            self.insert(rng.randint(header + 1, last), user_comment(rng), rng)
        elif action == "blank" and last > header:
            self.insert(rng.randint(header + 1, last), rng.choice(["", "  ", "\t"]), rng)
        elif action == "key":
            key = f"USER_KEY_{rng.randint(0, 10**6)}"
            spaced = rng.choice([f"{key}={rng.choice(WORDS)}", f"  {key} = spaced  "])
            self.insert(rng.randint(header + 1, last + 1), spaced, rng)
        elif action == "flag":
            self.add_flag(rng)
        elif action == "elsewhere":
            index = rng.choice([i for i in range(len(self.lines) + 1) if not first <= i <= last])
            self.insert(index, rng.choice([user_comment(rng), ""]), rng)
        elif action == "label":
            self.set_key("NAME", f"My model {rng.randint(0, 99)}")

    def add_flag(self, rng: random.Random) -> None:
        """A user group at a random place among EXTRA_ARGS' parts (before an override)."""
        index, prefix, value, ending = self.key_line("EXTRA_ARGS")
        if self.parts is None:  # fit's groups, as fit wrote them
            self.parts = [(group.text, False) for group in arg_groups(value)]
        new = group_text(rng, rng.choice(USER_GROUPS))
        if any(text == new for text, _ in self.parts):
            return
        limit = len(self.parts) - (self.override is not None)
        self.parts.insert(rng.randint(0, limit), (new, True))
        self.lines[index] = prefix + " ".join(text for text, _ in self.parts) + ending

    def add_override(self, rng: random.Random) -> None:
        index, prefix, value, ending = self.key_line("EXTRA_ARGS")
        if self.parts is None:
            self.parts = [(group.text, False) for group in arg_groups(value)]
        self.override = group_text(rng, ("-ctk", "q4_1"))
        self.parts.append((self.override, True))
        self.lines[index] = prefix + value + " " + self.override + ending

    @property
    def user_args(self) -> list[str]:
        return [text for text, users in self.parts or () if users]

    def key_line(self, key: str) -> tuple[int, str, str, str]:
        _, header, last = self.span()
        for index in range(header + 1, last + 1):
            match = re.match(rf"(\s*{key}\s*=)(.*?)(\r?\n)?\Z", self.lines[index], re.S)
            if match:
                return index, match[1], match[2], match[3] or ""
        raise AssertionError(key)

    def set_key(self, key: str, value: str) -> None:
        index, prefix, _, ending = self.key_line(key)
        self.lines[index] = prefix + value + ending

    def mark_tested(self) -> None:
        first, header, _ = self.span()
        for index in range(first, header):
            if UNTESTED_MARK in self.lines[index]:
                ending = "\r\n" if self.lines[index].endswith("\r\n") else "\n"
                self.lines[index] = "# Tested 2026-02-03 by fit test: decode 9.9 t/s." + ending
        self.tested = True


def user_view(text: str, pid: str, fit_labels: bool) -> str:
    """The file less what fit owns in profile ``pid``: its comment lines and its keys."""
    owned = FIT_KEYS + (("NAME", "DESCRIPTION") if fit_labels else ())
    conf = ModelsConf(text)
    profile = conf.profile(pid)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    kept = []
    for number, line in enumerate(lines(text[len(bom) :]), start=1):
        inside = profile.first_line <= number <= profile.last_line
        key = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if inside and (is_fit_comment(line) or (key and key[1] in owned)):
            continue
        kept.append(line)
    return bom + "".join(kept)


# --- property 1: user edits survive ----------------------------------------------------------


def check_added(before: str, after: str, pid: str) -> None:
    """Adding a profile inserts lines and changes nothing else (but the newline a last line
    without one gets)."""
    old, new = lines(before.removeprefix("\ufeff")), lines(after.removeprefix("\ufeff"))
    assert after.startswith("\ufeff") == before.startswith("\ufeff")
    prefix = 0
    while prefix < len(old) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < len(old) - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    missing = old[prefix : len(old) - suffix]
    if missing:  # only a last line without newline may change: it gets one
        assert prefix == len(old) - 1 and missing[0] == old[-1] and "\n" not in old[-1]
        assert new[prefix] in (old[-1] + "\n", old[-1] + "\r\n")
    conf = ModelsConf(after)
    ids = conf.ids
    if any(BENCH_DIVIDER.search(line) for line in old):
        header = conf.profile(pid).header_line
        assert header - 1 < next(i for i, line in enumerate(new) if BENCH_DIVIDER.search(line))
    else:
        assert ids[-1] == pid


@pytest.mark.parametrize("seed", range(N_CASES))
def test_random_user_edits_survive_every_fit_write(seed: int) -> None:
    rng = random.Random(seed)
    pid = rng.choice(["q3", "p-1", "Model.v2"])
    base = base_file(rng)
    conf = ModelsConf(base)
    assert place_profile(conf, new_profile(rng, pid), force=False) == ()
    check_added(base, conf.render(), pid)

    edited = Edited(conf.render(), pid)
    for _ in range(rng.randint(1, 8)):
        edited.edit(rng)
    if rng.random() < 0.3:
        edited.add_override(rng)
    if rng.random() < 0.3:
        edited.mark_tested()
    user_label = "NAME=My model" in edited.text
    before = edited.text
    assert ModelsConf(before).render() == before

    new = new_profile(rng, pid)
    conf = ModelsConf(before)
    notes = place_profile(conf, new, force=edited.tested)
    after = conf.render()

    assert ModelsConf(after).render() == after
    assert user_view(after, pid, not user_label) == user_view(before, pid, not user_label)
    profile = ModelsConf(after).profile(pid)
    values = dict(new.keys)
    fit_extra = values.pop("EXTRA_ARGS")
    assert all(profile.get(key) == value for key, value in values.items() if key in FIT_KEYS)
    expected = " ".join(part for part in [fit_extra, *edited.user_args] if part)
    assert profile.get("EXTRA_ARGS") == expected
    fit_lines = [line for line in profile.comments if is_fit_comment(line)]
    assert fit_lines == [f"# {line}" for line in new.comments]
    # fit's new lines took the places of its old ones (the user's lines kept theirs)
    old_comments = ModelsConf(before).profile(pid).comments
    assert [i for i, line in enumerate(profile.comments) if is_fit_comment(line)] == [
        i for i, line in enumerate(old_comments) if is_fit_comment(line)
    ]
    assert not is_tested(profile)
    overrides = [note for note in notes if "-ctk q4_1" in note]
    assert len(overrides) == (edited.override is not None and "-ctk q4_1" not in fit_extra)


@pytest.mark.parametrize("seed", range(0, N_CASES, 15))
def test_the_same_edits_on_disk_keep_mode_and_leave_no_debris(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    pid = "q3"
    folder = tmp_path / "ws"
    folder.mkdir()
    path = folder / "models.conf"
    if rng.random() < 0.3:  # a linked conf: the link stays, its target is edited
        (tmp_path / "real.conf").write_bytes(base_file(rng).encode())
        path.symlink_to(tmp_path / "real.conf")
    else:
        path.write_bytes(base_file(rng).encode())
    mode = rng.choice([0o600, 0o640, 0o664])
    os.chmod(path, mode)
    write_profile(path, new_profile(rng, pid))
    edited = Edited(path.read_bytes().decode(), pid)
    for _ in range(rng.randint(1, 6)):
        edited.edit(rng)
    path.write_bytes(edited.text.encode())
    before = path.read_bytes()
    new = new_profile(rng, pid)
    expected = ModelsConf(edited.text)
    place_profile(expected, new, force=False)
    write_profile(path, new)
    assert path.read_bytes() == expected.render().encode()
    assert os.stat(path).st_mode & 0o777 == mode
    real = Path(os.path.realpath(path))
    assert real.with_name(real.name + ".bak").read_bytes() == before
    leftovers = [p.name for p in (*folder.iterdir(), *tmp_path.iterdir()) if p.name.startswith(".")]
    assert leftovers == []


# --- property 2: SIGKILL at any point --------------------------------------------------------

KILLED_WRITER = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from profiles import models_conf
path, point, nth, when = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]

def toggle(conf):
    conf.set_value("flip", "X", "1" if conf.profile("flip").get("X") == "0" else "0")

if point != "none":  # die at the nth call of a step: before it runs, or right after
    module, name = point.split(".")
    owner = {"os": os, "fcntl": models_conf.fcntl, "shutil": models_conf.shutil}[module]
    real, calls = getattr(owner, name), [0]
    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if calls[0] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, dying)
print("ready", flush=True)
while True:
    models_conf.edit_conf(path, toggle)
"""
STEPS = [
    ("fcntl.flock", 1), ("os.open", 2), ("os.open", 3), ("os.fchmod", 1), ("os.fsync", 1),
    ("shutil.copy2", 1), ("os.replace", 1), ("os.replace", 2), ("os.fsync", 2),
    ("os.unlink", 1), ("os.fsync", 5), ("os.replace", 5),
]  # fmt: skip


def big_conf() -> tuple[str, set[str]]:
    """A conf of ~1 MB (so a write takes a while) and its two valid states."""
    # few long lines: parsing is quick, so a random kill often lands in the write itself
    profile = "# profile {i}\n[p{i}]\nNAME=" + "x" * 4000 + "\nEXTRA_ARGS=--jinja\n\n"
    bulk = "".join(profile.format(i=i) for i in range(250))
    states = {f"{bulk}[flip]\nX={value}\n" for value in "01"}
    return f"{bulk}[flip]\nX=0\n", states


def kill_cases() -> list[tuple[str, int, str, float]]:
    cases = [(point, nth, when, 0.0) for point, nth in STEPS for when in ("before", "after")]
    rng = random.Random(15)
    cases += [("none", 0, "-", rng.uniform(0.0, 0.15)) for _ in range(16)]
    return cases


def test_sigkill_at_any_point_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "models.conf"
    text, states = big_conf()
    path.write_text(text)
    summary = dict.fromkeys(["killed", "writes_seen", "left_debris", "left_temporary"], 0)
    for point, nth, when, delay in kill_cases():
        writer = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, str(REPO), str(path), point, str(nth), when],
            stdout=subprocess.PIPE,
        )
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        if point == "none":
            time.sleep(delay)
            writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        assert writer.returncode == -signal.SIGKILL, (point, nth, when)
        summary["killed"] += 1
        assert path.read_text() in states, (point, nth, when, delay)
        backup = tmp_path / "models.conf.bak"
        assert not backup.exists() or backup.read_text() in states
        summary["writes_seen"] += path.read_text() != text
        debris = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
        summary["left_debris"] += bool(debris)
        summary["left_temporary"] += any(p.suffix == ".tmp" for p in debris)
        flipped = "0" if path.read_text().endswith("X=1\n") else "1"
        # the next write lands and leaves nothing behind
        edit_conf(path, lambda conf, value=flipped: conf.set_value("flip", "X", value))
        text = path.read_text()
        assert text in states
        assert sorted(p.name for p in tmp_path.iterdir()) == ["models.conf", "models.conf.bak"]
    print(summary)
    assert summary["killed"] == len(kill_cases())
    # the kills did land inside writes: some left a temporary file for the next write to clean
    assert summary["left_temporary"] >= 4 and summary["writes_seen"] >= 4
