"""Fuzz harness for every fit command that reads a user file (issue 15).

Six kinds of file, each from a well-formed base that fit accepts, each mutated by a seeded
generator (case N of a kind is reproducible from the seed and N alone), each run through the
real CLI entry (click's ``CliRunner`` in-process; ``run_in_subprocess`` for a sample, with
memory and CPU limits and the child's own peak RSS):

- ``gguf``: a tiny llama's GGUF -> ``fit inspect`` (text, --json), ``fit memory``, ``fit solve``;
- ``split``: a 3-part split set of it (a part damaged, dropped or from another model) ->
  ``fit inspect`` / ``fit memory`` on a part;
- ``toml``: a scenario -> ``fit hardware show FILE``, ``fit memory/solve --hardware FILE``;
- ``conf``: the fixture models.conf -> ``fit start P --dry-run``, ``fit check P``;
- ``calibration``: this machine's calibration file -> ``fit calibrate --dry-run``;
- ``runs``: a run record among valid ones -> ``fit calibrate --runs DIR --dry-run``.

The property (``Outcome.problem`` is None): exit 0 with a sane answer (case 0, the unmutated
base, with the right one), or exit 1/2 with exactly one line on stderr (with ``--json``: one
JSON error object on stdout); never a traceback, never an exception other than
``SystemExit``, never a raw escape character; each case within ``CASE_LIMIT_S``.
``python -m tests.fuzz_harness --scale N`` runs N times the CI counts and prints the table
(``benchmarks/fuzz_inputs.py`` runs it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20261203
REPO = Path(__file__).resolve().parents[1]
CONF_FIXTURE = Path(__file__).parent / "fixtures" / "models.conf"
# What the CI run generates per kind (tests/test_fuzz_inputs.py); the benchmark scales them.
CI_COUNTS = {"gguf": 1500, "split": 300, "toml": 600, "conf": 600, "calibration": 300, "runs": 300}
CASE_LIMIT_S = 10.0  # any one case slower than this fails the suite
RSS_LIMIT = 1 << 30  # peak RSS of a subprocess case over this fails the suite
ADDRESS_LIMIT = 8 << 30  # RLIMIT_AS of a subprocess case: a runaway allocation dies, not CI
CPU_LIMIT_S = 60  # RLIMIT_CPU of a subprocess case: a hang in a loop dies

EXTREME_NUMBERS = [
    "0", "-1", "1e308", "-1e308", "1e-300", "2e-300", str(2**63), str(2**63 - 1), str(2**64),
    str(2**32 - 1), "nan", "inf", "-inf", "99999999999999999999999", "-0", "0.0", "1.5",
]  # fmt: skip
WRONG_TYPES = ['"text"', "true", "[1, 2]", "{}", '""', "[]", "null", '"\\u0000"']
HUGE_LENGTHS = [2**64 - 1, 2**63 - 1, 250_000_000, 2**32 + 5, 2**31, 0, 1 << 40]


@dataclass(frozen=True)
class Case:
    """One mutated input: files to write under a fresh folder, the fit command line
    (``{dir}`` stands for that folder) and environment additions."""

    kind: str
    number: int
    mutation: str
    files: dict[str, bytes]
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.number} ({self.mutation}): fit {' '.join(self.argv)}"


@dataclass(frozen=True)
class Outcome:
    case: Case
    exit_code: int
    seconds: float
    stderr: str
    stdout: str
    problem: str | None  # None: the property holds
    rss_bytes: int | None = None  # subprocess runs only

    @classmethod
    def of(cls, case: Case, exit_code: int, seconds: float, stderr: str, stdout: str,
           problem: str | None, rss_bytes: int | None = None) -> Outcome:  # fmt: skip
        """An outcome that keeps what a report needs, not the input files or whole outputs
        (thousands are held at once)."""
        slim = dataclasses.replace(case, files={})
        return cls(slim, exit_code, seconds, stderr[-2000:], stdout[:2000], problem, rss_bytes)


# --- byte and text mutations ------------------------------------------------------------------


def flip(rng: random.Random, data: bytes, head: int | None = None) -> bytes:
    out = bytearray(data)
    limit = min(head or len(out), len(out))
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(limit)] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def stomp(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    fill = bytes([rng.choice((0x00, 0xFF, 0x80))]) * rng.choice((1, 4, 8, 16))
    return data[:at] + fill + data[at + len(fill) :]


def splice(rng: random.Random, data: bytes) -> bytes:
    """A chunk of the file copied over another place (or inserted there)."""
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.randint(1, 256)]
    at = rng.randrange(len(data))
    if rng.random() < 0.5:
        return data[:at] + chunk + data[at:]
    return data[:at] + chunk + data[at + len(chunk) :]


def non_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    bad = rng.choice((b"\xff\xfe", b"\x80", b"\xc3\x28", b"\xed\xa0\x80", b"\0"))
    return data[:at] + bad + data[at:]


def crlf_bom(rng: random.Random, data: bytes) -> bytes:
    out = data.replace(b"\n", b"\r\n") if rng.random() < 0.7 else data.replace(b"\n", b"\r")
    return (b"\xef\xbb\xbf" + out) if rng.random() < 0.6 else out


BYTE_MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "flip": flip, "truncate": truncate, "stomp": stomp, "splice": splice,
    "non-utf8": non_utf8, "crlf/bom": crlf_bom,
}  # fmt: skip


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def extreme_number(rng: random.Random, data: bytes) -> bytes:
    """A number in the text (or a value after '=') replaced by an extreme one."""
    spots = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", data)]
    if not spots:
        return data + b"\n"
    start, end = rng.choice(spots)
    return data[:start] + rng.choice(EXTREME_NUMBERS).encode() + data[end:]


def wrong_type(rng: random.Random, data: bytes) -> bytes:
    spots = [m.span() for m in re.finditer(rb'-?\d+(\.\d+)?|"[^"\n]*"|true|false', data)]
    if not spots:
        return data
    start, end = rng.choice(spots)
    return data[:start] + rng.choice(WRONG_TYPES).encode() + data[end:]


def line_edit(rng: random.Random, data: bytes) -> bytes:
    """Delete, duplicate, swap or blank out lines."""
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    action = rng.choice(("delete", "duplicate", "swap", "blank"))
    if action == "delete":
        del lines[i]
    elif action == "duplicate":
        lines.insert(j, lines[i])
    elif action == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = b""
    return b"\n".join(lines)


def huge_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    at = rng.randrange(len(lines) + 1)
    filler = rng.choice((b"x", b"[", b"#", b"=", b" ")) * rng.choice((4096, 70_000, 300_000))
    lines.insert(at, rng.choice((b"", b"a = ", b"KEY=", b"# ")) + filler)
    return b"\n".join(lines)


TEXT_MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "extreme-number": extreme_number, "wrong-type": wrong_type, "line-edit": line_edit,
    "huge-line": huge_line,
}  # fmt: skip


def mutate(
    rng: random.Random,
    base: bytes,
    extra: dict[str, Callable[[random.Random, bytes], bytes]],
) -> tuple[str, bytes]:
    """1-3 stacked mutations from the byte-level ones and ``extra`` (the kind's own)."""
    table = {**BYTE_MUTATIONS, **extra}
    names, data = [], base
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        name = rng.choice(sorted(table))
        data = table[name](rng, data) if data else data
        names.append(name)
    return "+".join(names), data


# --- bases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bases:
    """The well-formed inputs every kind starts from, built once."""

    gguf: bytes
    length_offsets: tuple[int, ...]  # u64 string lengths and counts in the GGUF header
    header_size: int
    split: tuple[bytes, ...]
    other_split: tuple[bytes, ...]  # parts of a different (3-layer) model
    toml: bytes
    conf: bytes
    profiles: tuple[str, ...]
    calibration: bytes
    calibration_name: str
    runs: tuple[bytes, ...]


def build_bases(folder: Path) -> Bases:
    from gguf import GGUFReader

    from profiles.calibration_store import this_machine
    from solver.cost.calibrate import calibrate
    from solver.gguf.reader import read_local_header
    from tests.gguf_bytes import write_llama

    (model,) = write_llama(folder / "base.gguf")
    reader = GGUFReader(model)
    offsets = [8, 16, *(f.offset for f in reader.fields.values())]
    offsets += [t.field.offset for t in reader.tensors]
    parts = write_llama(folder / "split.gguf", split_max_tensors=8)
    others = write_llama(folder / "other.gguf", n_layers=3, split_max_tensors=11)
    hardware, machine = this_machine()
    calibration = calibrate(_synthetic_runs(8), hardware, machine=machine)
    conf = CONF_FIXTURE.read_bytes()
    return Bases(
        gguf=model.read_bytes(),
        length_offsets=tuple(offsets),
        header_size=read_local_header(model)[0].header_size,
        split=tuple(p.read_bytes() for p in parts),
        other_split=tuple(p.read_bytes() for p in others),
        toml=(
            b'# a rig\nname = "fuzz"\nnotes = ["one"]\n\n[host]\nram_gib = 64\ncores = 16\n'
            b'mt_per_s = 6000\nchannels = 2\n\n[[gpus]]\nmodel = "RTX 4090"\nvram_gib = 24\n'
            b"free_gib = 22.5\npcie_gen = 4\npcie_lanes = 16\n\n[[gpus]]\nmodel = "
            b'"RTX 3090"\nbandwidth_gb_s = 900\n'
        ),
        conf=conf,
        profiles=tuple(re.findall(r"^\[([^\]]+)\]", conf.decode(), re.M)),
        calibration=calibration.to_file_text().encode(),
        calibration_name=f"{machine}.json",
        runs=tuple(run_record(machine, i) for i in range(6)),
    )


def _synthetic_runs(n: int) -> list:
    from solver.cost.calibrate import PrefillSample, RunSamples, TokenSample

    rng = random.Random(7)
    runs = []
    for i in range(n):
        read = rng.uniform(100e6, 400e6)
        seconds = read / 20e9 + 2e-3
        decode = TokenSample(tokens=32, seconds=32 * seconds, bytes_read={"CPU": read}, splits=0)
        flops = {"CPU": 2 * read}
        prefill = PrefillSample(tokens=300, seconds=300 * 2 * read / 40e9, flops_per_token=flops)
        runs.append(RunSamples(run=f"r{i}", decode=(decode,), prefill=(prefill,)))
    return runs


def run_record(machine: str, i: int) -> bytes:
    """A successful ``fit test`` record of this machine with one measured request."""
    from profiles.runs import RequestMeasurement, RunRecord
    from profiles.server import CompletionTimings
    from solver.cost.model import DeviceLoads

    read = 100e6 * (i + 1)
    record = RunRecord(
        kind="test", profile=f"p{i}", conf="models.conf", machine_id=machine,
        started=f"2026-01-0{i + 1}T00:00:00", model="m.gguf", args=("-c", "4096"),
        binary="llama-server", log_path="log", ok=True, decode_tps=20.0, prompt_tps=300.0,
        requests=(
            RequestMeasurement(
                label="long",
                timings=CompletionTimings(
                    prompt_n=300, prompt_ms=300 * 2 * read / 40e9 * 1000, prompt_per_second=1.0,
                    predicted_n=32, predicted_ms=32 * (read / 20e9 + 2e-3 * i) * 1000,
                    predicted_per_second=1.0,
                ),
                decode_loads=DeviceLoads(
                    bytes_read={"CPU": read}, flops_per_token={"CPU": 2 * read},
                    bytes_stored={"CPU": read}, splits=i,
                ),
            ),
        ),
    )  # fmt: skip
    return (record.model_dump_json(indent=1) + "\n").encode()


# --- generators, one per kind -----------------------------------------------------------------


def huge_length(bases: Bases) -> Callable[[random.Random, bytes], bytes]:
    """A header length or count (string length, array length, n_tensors, n_kv) set huge."""

    def mutation(rng: random.Random, data: bytes) -> bytes:
        at = rng.choice(bases.length_offsets)
        if at + 8 > len(data):
            return data
        return data[:at] + struct.pack("<Q", rng.choice(HUGE_LENGTHS)) + data[at + 8 :]

    return mutation


def header_flip(bases: Bases) -> Callable[[random.Random, bytes], bytes]:
    return lambda rng, data: flip(rng, data, head=bases.header_size)


def gguf_cases(bases: Bases, count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    extra = {"huge-length": huge_length(bases), "header-flip": header_flip(bases)}
    extra["header-flip2"] = extra["header-flip"]  # the header is where the reader can go wrong
    commands = [
        ("inspect", "{dir}/m.gguf"), ("inspect", "{dir}/m.gguf", "--json"),
        ("memory", "{dir}/m.gguf", "--json", "--", "-c", "256", "-ngl", "99", "-ub", "64"),
        ("memory", "{dir}/m.gguf", "--", "-c", "256"),
        ("solve", "{dir}/m.gguf", "--ctx", "256", "--time-limit", "1"),
    ]  # fmt: skip
    weights = [4, 3, 3, 2, 1]
    for number in range(count):
        mutation, data = ("none", bases.gguf) if number == 0 else mutate(rng, bases.gguf, extra)
        argv = commands[0] if number == 0 else rng.choices(commands, weights)[0]
        yield Case("gguf", number, mutation, {"m.gguf": data}, argv)


def split_cases(bases: Bases, count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    names = [f"s-0000{i + 1}-of-00003.gguf" for i in range(len(bases.split))]
    extra = {"huge-length": huge_length(bases), "header-flip": header_flip(bases)}
    commands = [("inspect", "{dir}/" + names[0]), ("inspect", "{dir}/" + names[1], "--json"),
                ("memory", "{dir}/" + names[0], "--", "-c", "256", "-ngl", "99")]  # fmt: skip
    for number in range(count):
        parts = dict(zip(names, bases.split, strict=True))
        which = rng.choice(names)
        action = "none" if number == 0 else rng.choice(("mutate", "mutate", "drop", "foreign"))
        if action == "mutate":
            action, parts[which] = mutate(rng, parts[which], extra)
        elif action == "drop":
            del parts[which]
        elif action == "foreign":  # a part of another model under this set's name
            parts[which] = rng.choice(bases.other_split)
        argv = commands[0] if number == 0 else rng.choice(commands)
        yield Case("split", number, f"{which}:{action}", parts, argv)


def nesting(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice((50, 1000, 5000, 100_000))
    value = rng.choice((b"[" * depth + b"]" * depth, b"{a = " * depth + b"1" + b"}" * depth))
    return b"deep = " + value + b"\n" + data


def toml_cases(bases: Bases, count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    extra = {**TEXT_MUTATIONS, "nesting": nesting, "extreme-number2": extreme_number,
             "wrong-type2": wrong_type}  # fmt: skip
    tiny = bases.gguf
    commands = [("hardware", "show", "{dir}/rig.toml"),
                ("hardware", "show", "{dir}/rig.toml", "--json"),
                ("memory", "{dir}/m.gguf", "--hardware", "{dir}/rig.toml", "--", "-c", "256"),
                ("solve", "{dir}/m.gguf", "--hardware", "{dir}/rig.toml", "--ctx", "256",
                 "--time-limit", "1")]  # fmt: skip
    for number in range(count):
        mutation, data = ("none", bases.toml) if number == 0 else mutate(rng, bases.toml, extra)
        argv = commands[0] if number == 0 else rng.choices(commands, [5, 2, 2, 1])[0]
        files = {"rig.toml": data, **({"m.gguf": tiny} if "{dir}/m.gguf" in argv else {})}
        yield Case("toml", number, mutation, files, argv)


def conf_value(rng: random.Random, data: bytes) -> bytes:
    """A fit key set to something odd: extreme, empty, quoted wrong, a different type."""
    spots = [m.span(2) for m in re.finditer(rb"^([A-Z_]+)=(.*)$", data, re.M)]
    if not spots:
        return data
    start, end = rng.choice(spots)
    value = rng.choice(
        [*(n.encode() for n in EXTREME_NUMBERS), b"", b'"unbalanced', b"'", b"-ngl", b"\\",
         b"-c -5", b"--mlock", b"-ts 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", b"$(reboot)",
         b"-ot \"(((\"", b"-fa maybe", b"--rpc 1.2.3.4:0", b"x" * 10_000, b"\x1b]0;title\x07"]
    )  # fmt: skip
    return data[:start] + value + data[end:]


def conf_section(rng: random.Random, data: bytes) -> bytes:
    """A section header broken, duplicated or renamed."""
    spots = [m.span() for m in re.finditer(rb"^\[[^\]\n]*\]$", data, re.M)]
    if not spots:
        return data
    start, end = rng.choice(spots)
    header = rng.choice((b"[", b"[]", b"[a b]", b"[glm-flash-q8]", b"[[x]]", b"[\xff]",
                         b"[" + b"a" * 5000 + b"]", b"[ok]\n[ok]"))  # fmt: skip
    return data[:start] + header + data[end:]


def conf_cases(bases: Bases, count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    extra = {**TEXT_MUTATIONS, "value": conf_value, "value2": conf_value,
             "section": conf_section}  # fmt: skip
    for number in range(count):
        mutation, data = ("none", bases.conf) if number == 0 else mutate(rng, bases.conf, extra)
        profile = bases.profiles[0] if number == 0 else rng.choice(bases.profiles)
        command = "start" if number == 0 or rng.random() < 0.75 else "check"
        argv = (command, profile, "--conf", "{dir}/models.conf")
        argv += ("--dry-run",) if command == "start" else ("--hardware", "reference")
        if rng.random() < 0.2:
            argv += ("--json",)
        yield Case("conf", number, mutation, {"models.conf": data}, argv)


def json_value(rng: random.Random, data: bytes) -> bytes:
    """A JSON value replaced by an extreme number, another type, or deep nesting."""
    scalar = rb'-?\d+(\.\d+)?([eE][-+]?\d+)?|"[^"\n]*"|null|true|false'
    spots = [m.span() for m in re.finditer(scalar, data)]
    if not spots:
        return data
    start, end = rng.choice(spots)
    depth = rng.choice((10, 2000, 200_000))
    value = rng.choice(
        [*(n.encode() for n in EXTREME_NUMBERS if n not in ("nan", "inf", "-inf")),
         b"Infinity", b"-Infinity", b"NaN", b'"x"', b"true", b"null", b"[]", b"{}",
         b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth,
         b'"' + b"\\ud800" * 3 + b'"', b"1" + b"0" * 5000]
    )  # fmt: skip
    return data[:start] + value + data[end:]


def json_key(rng: random.Random, data: bytes) -> bytes:
    """A key dropped (with its value) or renamed."""
    spots = [m.span() for m in re.finditer(rb'"([a-z_]+)": ', data)]
    if not spots:
        return data
    start, end = rng.choice(spots)
    return data[:start] + rng.choice((b'"unknown": ', b'"": ', b'"version": ')) + data[end:]


JSON_MUTATIONS = {"json-value": json_value, "json-value2": json_value, "json-value3": json_value,
                  "json-key": json_key, "line-edit": line_edit}  # fmt: skip


def calibration_cases(bases: Bases, count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    files = {f"runs/{i}.json": run for i, run in enumerate(bases.runs)}
    for number in range(count):
        mutation, data = (
            ("none", bases.calibration)
            if number == 0
            else mutate(rng, bases.calibration, JSON_MUTATIONS)
        )
        argv = ("calibrate", "--runs", "{dir}/runs", "--dry-run", "--conf", "{dir}/models.conf")
        if number and rng.random() < 0.3:
            argv += ("--json",)
        written = {**files, f"config/calibration/{bases.calibration_name}": data}
        env = {"FIT_CONFIG_DIR": "{dir}/config"}
        yield Case("calibration", number, mutation, written, argv, env)


def runs_cases(bases: Bases, count: int, seed: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for number in range(count):
        which = rng.randrange(len(bases.runs))
        files = {f"runs/{i}.json": run for i, run in enumerate(bases.runs)}
        mutation = "none"
        if number:
            mutation, files[f"runs/{which}.json"] = mutate(rng, bases.runs[which], JSON_MUTATIONS)
        argv = ("calibrate", "--runs", "{dir}/runs", "--dry-run", "--conf", "{dir}/models.conf")
        if number and rng.random() < 0.3:
            argv += ("--json",)
        yield Case("runs", number, mutation, files, argv, {"FIT_CONFIG_DIR": "{dir}/config"})


GENERATORS: dict[str, Callable[[Bases, int, int], Iterator[Case]]] = {
    "gguf": gguf_cases, "split": split_cases, "toml": toml_cases, "conf": conf_cases,
    "calibration": calibration_cases, "runs": runs_cases,
}  # fmt: skip


def cases(bases: Bases, kind: str, count: int, seed: int = SEED) -> Iterator[Case]:
    """``count`` cases of ``kind``; case 0 is the unmutated base (it must succeed)."""
    yield from GENERATORS[kind](bases, count, seed + sorted(GENERATORS).index(kind))


# --- running a case and judging it ------------------------------------------------------------


def _materialise(case: Case, folder: Path) -> tuple[list[str], dict[str, str]]:
    for name, data in case.files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "runs").mkdir(exist_ok=True)
    argv = [arg.replace("{dir}", str(folder)) for arg in case.argv]
    env = {key: value.replace("{dir}", str(folder)) for key, value in case.env.items()}
    return argv, env


def judge(case: Case, exit_code: int, stdout: str, stderr: str, seconds: float) -> str | None:
    """What is wrong with this outcome, or None (see the module docstring)."""
    if "Traceback" in stderr or "Traceback" in stdout:
        return "traceback"
    if seconds > CASE_LIMIT_S:
        return f"took {seconds:.1f} s"
    if exit_code not in (0, 1, 2):
        return f"exit {exit_code}"
    if case.mutation.endswith("none") and exit_code != 0:
        return "the unmutated base was refused"
    if "\x1b" in stdout + stderr:  # model or user text must not drive the terminal
        return "a raw escape character in the output"
    json_out = "--json" in case.argv[: case.argv.index("--") if "--" in case.argv else None]
    if exit_code:
        lines = stderr.strip("\n").split("\n")
        if json_out:
            document = _strict_json(stdout)
            if not isinstance(document, dict) or "error" not in document:
                return "--json failure without an error object on stdout"
        elif len(lines) != 1 or not lines[0].strip():
            return f"{len(lines)} lines on stderr"
        return None
    if not stdout.strip():
        return "exit 0 with nothing on stdout"
    if case.mutation.endswith("none") and BASE_ANSWERS[case.kind] not in stdout:
        return f"the unmutated base's answer lacks {BASE_ANSWERS[case.kind]!r}"
    if json_out:
        document = _strict_json(stdout)
        if document is None:
            return "--json output is not one strict JSON document"
        return _sane(case, document)
    return None


# What the answer to each kind's unmutated base (case 0) contains: the right answer, not
# merely exit 0.
BASE_ANSWERS = {
    "gguf": "llama", "split": "llama", "toml": "RTX 3090", "conf": "--fit off",
    "calibration": "bandwidth", "runs": "bandwidth",
}  # fmt: skip


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return None


def _sane(case: Case, document: object) -> str | None:
    """Numbers in a successful JSON answer are finite and sizes within what the input
    explains (the tiny llama at 256 tokens needs far less than 64 MiB)."""
    if case.argv[0] == "memory" and isinstance(document, dict):
        totals = [d.get("total") for d in document.get("devices", {}).values()]
        if any(isinstance(t, int | float) and t >= 64 << 20 for t in totals):
            return f"predicted {max(totals)} bytes for a tiny model"
    return None


def run_in_process(case: Case, folder: Path) -> Outcome:
    from click.testing import CliRunner

    from cli import cli

    argv, env = _materialise(case, folder)
    start = time.perf_counter()
    result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=True)
    seconds = time.perf_counter() - start
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "\nTraceback: " + f"{type(result.exception).__name__}: {result.exception}"
    problem = judge(case, result.exit_code, result.stdout, stderr, seconds)
    return Outcome.of(case, result.exit_code, seconds, stderr, result.stdout, problem)


# The child limits itself before importing fit, and reports its own peak RSS: VmHWM of its
# address space. (ru_maxrss from wait4 or getrusage would not do: Linux carries the forking
# parent's high-water mark over exec, so every child would report the test process's RSS.)
CHILD = """
import atexit, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({address}, {address}))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))

def report():
    with open("/proc/self/status") as status, open({rss_file!r}, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")))

atexit.register(report)
from cli import main
sys.exit(main())
"""


def run_in_subprocess(case: Case, folder: Path) -> Outcome:
    """The case through a real ``fit`` process under RLIMIT_AS and RLIMIT_CPU; its own peak
    RSS and wall time, start-up included."""
    argv, env = _materialise(case, folder)
    out, err, rss_file = folder / ".stdout", folder / ".stderr", folder / ".rss"
    code = CHILD.format(address=ADDRESS_LIMIT, cpu=CPU_LIMIT_S, rss_file=str(rss_file))
    start = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=stdout,
                                 stderr=stderr, cwd=REPO, env={**os.environ, **env})  # fmt: skip
        try:
            exit_code = child.wait(timeout=3 * CASE_LIMIT_S)
        except subprocess.TimeoutExpired:  # a hang still ends
            child.kill()
            exit_code = child.wait()
    seconds = time.perf_counter() - start
    stdout_text = out.read_text(errors="replace")
    stderr_text = err.read_text(errors="replace")
    problem = judge(case, exit_code, stdout_text, stderr_text, seconds)
    rss = int(rss_file.read_text().split()[1]) * 1024 if rss_file.exists() else None  # kB
    if problem is None and (rss is None or rss > RSS_LIMIT):
        problem = "no peak RSS reported (killed?)" if rss is None else f"peak RSS {rss >> 20} MiB"
    return Outcome.of(case, exit_code, seconds, stderr_text, stdout_text, problem, rss or 0)


def run_case(case: Case, root: Path, *, in_subprocess: bool = False) -> Outcome:
    """The case in a fresh folder under ``root``, removed afterwards (thousands of cases
    must not fill the disk)."""
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        return (run_in_subprocess if in_subprocess else run_in_process)(case, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _heavy(case: Case) -> bool:
    """Mutations most likely to cost memory or time."""
    return re.search(r"huge|nesting|json-value", case.mutation) is not None


def subprocess_sample(bases: Bases, counts: dict[str, int], per_kind: int) -> Iterator[Case]:
    """``per_kind`` mutated cases of each kind for real processes: the first heavy ones (huge
    lengths, nesting, huge lines) for half of them, then cases spread evenly over the run."""
    for kind, count in counts.items():
        heavy_left, picked = per_kind // 2, 0
        step = max(1, count // per_kind)
        for case in cases(bases, kind, count):
            if picked == per_kind:
                break
            if case.number and heavy_left and _heavy(case):
                heavy_left -= 1
            elif not (case.number and case.number % step == 0 and picked + heavy_left < per_kind):
                continue
            picked += 1
            yield case


def run_all(
    bases: Bases,
    counts: dict[str, int],
    root: Path,
    *,
    per_kind_subprocess: int = 0,
) -> list[Outcome]:
    """Every case in process, then the subprocess sample."""
    outcomes = [
        run_case(case, root) for kind, count in counts.items() for case in cases(bases, kind, count)
    ]
    for case in subprocess_sample(bases, counts, per_kind_subprocess):
        outcomes.append(run_case(case, root, in_subprocess=True))
    return outcomes


# --- the table --------------------------------------------------------------------------------


def summary_rows(outcomes: list[Outcome]) -> list[dict[str, object]]:
    """Per file kind: in-process cases and their exits, problems, worst seconds; then the
    subprocess sample's count, worst seconds (start-up included) and worst peak RSS."""
    rows = []
    for kind in GENERATORS:
        inside = [o for o in outcomes if o.case.kind == kind and o.rss_bytes is None]
        outside = [o for o in outcomes if o.case.kind == kind and o.rss_bytes is not None]
        if not inside:
            continue
        row: dict[str, object] = {"file kind": kind, "cases": len(inside)}
        row.update({f"exit {code}": sum(o.exit_code == code for o in inside) for code in (0, 1, 2)})
        row["problems"] = sum(o.problem is not None for o in inside + outside)
        row["worst s"] = round(max(o.seconds for o in inside), 3)
        row["subprocess"] = len(outside)
        row["worst subprocess s"] = round(max((o.seconds for o in outside), default=0), 2)
        row["worst RSS MiB"] = max((o.rss_bytes or 0 for o in outside), default=0) >> 20
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="times the CI counts")
    parser.add_argument("--subprocess", type=int, default=6, help="subprocess cases per kind")
    args = parser.parse_args(argv)
    from solver.text_table import rows_table

    counts = {k: max(1, math.ceil(v * args.scale)) for k, v in CI_COUNTS.items()}
    with tempfile.TemporaryDirectory(prefix="fit-fuzz-") as folder:
        root = Path(folder)
        bases = build_bases(Path(tempfile.mkdtemp(dir=root)))
        start = time.perf_counter()
        outcomes = run_all(bases, counts, root, per_kind_subprocess=args.subprocess)
        elapsed = time.perf_counter() - start
    print(rows_table(summary_rows(outcomes)))
    total = sum(o.rss_bytes is None for o in outcomes)
    print(f"{total} cases in process + {len(outcomes) - total} in subprocesses, {elapsed:.0f} s")
    problems = [o for o in outcomes if o.problem]
    for outcome in problems[:20]:
        print(f"PROBLEM {outcome.case.label}: {outcome.problem}: {outcome.stderr.strip()[-300:]}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
