"""Read and edit ``models.conf`` (and ``bench-client.conf``) without disturbing a byte.

The format, as ``start.sh`` reads it::

    # comment lines (``#`` after optional blanks) and blank lines anywhere
    # comments directly above a header (no blank line between) belong to that profile
    [profile-id]
    KEY=VALUE            # VALUE is raw text up to the line end: no quoting, no interpolation

Keys are any ``[A-Za-z_][A-Za-z0-9_]*``; unknown keys are kept like known ones.

Rules this module decides, and why:

- A profile's *body* runs from its header to its last ``KEY=`` line, so comments and blank
  lines between keys are part of it; blank lines and loose comments after the last key belong
  to no profile (in the example file, ``# --- Bench profiles ---`` separates groups, it does
  not describe the profile above or below it).
- Duplicate profile ids and a key repeated inside one profile are errors (``BadInput`` with
  both line numbers): which one ``start.sh`` would use depends on how it reads the file, and
  fit must not guess which of two values it is editing.
- A key line before the first header, a malformed header and a line that is neither blank,
  comment, header nor ``KEY=VALUE`` are errors naming the file and line.

Edits (set a value, replace a comment block, add or remove a profile) rewrite only the lines
they concern; every other byte — other profiles, comments, blank lines, order, unknown keys,
CRLF or LF line ends, a missing final newline — is kept. New lines use the file's dominant
line ending. The only byte an edit may add elsewhere is the newline that a last line without
one needs before a profile is appended after it.

Writes (``edit_conf``, ``write_atomic``) go to the file a symlink points at (the link stays),
refuse a read-only file, hold an exclusive ``flock`` from the read to the rename so two fit
processes editing one file both land, give a new file the umask's mode, remove the temporary
files a killed writer left, and replace the file by ``rename``: a reader, or a crash at any
instant, sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shlex
import shutil
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from solver.errors import BadInput, OperationFailed

UNTESTED_MARK = "NOT YET TESTED"

_HEADER = re.compile(r"^\s*\[(?P<id>[^\]]*)\]\s*$")
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=(?P<value>.*)$")
_VALID_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Profile(BaseModel):
    """One ``[section]``: its id, its keys in file order, the comment block above it."""

    model_config = ConfigDict(frozen=True)

    id: str
    keys: tuple[tuple[str, str], ...] = ()
    comments: tuple[str, ...] = ()
    first_line: int
    header_line: int
    last_line: int

    @property
    def values(self) -> dict[str, str]:
        return dict(self.keys)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


def is_tested(profile: Profile) -> bool:
    """A profile is tested unless its comment block says ``NOT YET TESTED``."""
    return not any(UNTESTED_MARK in line for line in profile.comments)


def check_overwrite(profile: Profile, *, force: bool) -> None:
    """Refuse to overwrite a tested profile unless ``force`` (the CLI's ``--force``)."""
    if is_tested(profile) and not force:
        raise BadInput(
            f"profile [{profile.id}] is tested (its comments do not say {UNTESTED_MARK}); "
            "use --force to overwrite it"
        )


class _Line(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    ending: str  # "\n", "\r\n" or "" (last line without newline)


def _split_lines(text: str) -> list[_Line]:
    lines = []
    for chunk in text.split("\n"):
        lines.append(_Line(text=chunk, ending="\n"))
    last = lines.pop()  # text after the final "\n" (empty if the file ends with one)
    if last.text:
        lines.append(_Line(text=last.text, ending=""))
    for index, line in enumerate(lines):
        if line.ending == "\n" and line.text.endswith("\r"):
            lines[index] = _Line(text=line.text[:-1], ending="\r\n")
    return lines


def _kind(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return "blank"
    if stripped.startswith("#"):
        return "comment"
    if stripped.startswith("["):
        return "header"
    if _KEY_LINE.match(text):
        return "key"
    return "bad"


class ModelsConf:
    """A parsed models.conf-style document that renders back to its exact bytes."""

    def __init__(self, text: str, source: str = "<text>") -> None:
        self.source = source
        # a UTF-8 byte order mark (Windows editors add one) is kept, not parsed
        self._bom = "\ufeff" if text.startswith("\ufeff") else ""
        self._lines = _split_lines(text[len(self._bom) :])
        self._profiles: tuple[Profile, ...] = ()
        # profile id -> (first line, header line, last line), 0-based indices into _lines
        self._spans: dict[str, tuple[int, int, int]] = {}
        self._reparse()

    @classmethod
    def read(cls, path: str | Path) -> ModelsConf:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BadInput(f"{path}: cannot read: {error.strerror or error}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(f"{path}: not UTF-8 at byte {error.start}") from None
        return cls(text, source=str(path))

    # --- reading ------------------------------------------------------------------------

    def render(self) -> str:
        return self._bom + "".join(line.text + line.ending for line in self._lines)

    @property
    def profiles(self) -> tuple[Profile, ...]:
        return self._profiles

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(profile.id for profile in self._profiles)

    def profile(self, profile_id: str) -> Profile:
        for profile in self._profiles:
            if profile.id == profile_id:
                return profile
        raise BadInput(f"{self.source}: no profile [{profile_id}]")

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self.ids

    # --- editing ------------------------------------------------------------------------

    def set_value(self, profile_id: str, key: str, value: str) -> None:
        """Replace a key's value in place, or append the key after the profile's last key."""
        _check_key(key)
        _check_value(key, value)
        self.profile(profile_id)
        _, header, last = self._spans[profile_id]
        for index in range(header + 1, last + 1):
            line = self._lines[index]
            match = _KEY_LINE.match(line.text)
            if match and match["key"] == key:
                text = line.text[: match.start("value")] + value
                self._lines[index] = _Line(text=text, ending=line.ending)
                break
        else:
            self._insert(last + 1, [f"{key}={value}"])
        self._reparse()

    def set_comments(self, profile_id: str, comments: Iterable[str]) -> None:
        """Replace the comment block directly above a profile's header.

        The lines the old and new blocks share (a longest common subsequence) keep their
        bytes, line endings included; only new lines take the file's dominant ending.
        """
        self.profile(profile_id)
        first, header, _ = self._spans[profile_id]
        old = self._lines[first:header]
        texts = comment_lines(comments)
        kept = _common_lines([line.text for line in old], texts)
        ending = self._ending()
        self._lines[first:header] = [
            old[kept[j]] if j in kept else _Line(text=text, ending=ending)
            for j, text in enumerate(texts)
        ]
        self._reparse()

    def replace_comments(
        self, profile_id: str, owned: Callable[[str], bool], comments: Iterable[str]
    ) -> None:
        """Replace the lines of a profile's comment block that ``owned`` accepts by
        ``comments``, slot by slot: the i-th owned line becomes the i-th new line, the new
        lines left over follow the last owned line (or end the block when none was owned),
        owned lines left over go. Every other line keeps its bytes and its place."""
        self.profile(profile_id)
        first, header, _ = self._spans[profile_id]
        ending = self._ending()
        queue = [_Line(text=text, ending=ending) for text in comment_lines(comments)]
        old = self._lines[first:header]
        slots = [i for i, line in enumerate(old) if owned(line.text)]
        lines: list[_Line] = []
        for i, line in enumerate(old):
            if i not in slots:
                lines.append(line)
                continue
            taken, queue = (queue, []) if i == slots[-1] else (queue[:1], queue[1:])
            # an owned line whose text stays keeps its bytes
            lines += [line if new.text == line.text else new for new in taken[:1]] + taken[1:]
        self._lines[first:header] = lines + (queue if not slots else [])
        self._reparse()

    def add_profile(
        self,
        profile_id: str,
        keys: Mapping[str, str] | Sequence[tuple[str, str]],
        *,
        comments: Iterable[str] = (),
        after: str | None = None,
        before_comment: re.Pattern[str] | None = None,
    ) -> Profile:
        """Add a profile at the end, or right after profile ``after``; blank line before it.

        With ``before_comment`` (and no ``after``), a comment line outside every profile's
        body that matches it (a divider such as ``# --- Bench profiles ---``) is a boundary:
        the profile goes right after the last profile above that line, or, when none is above
        it, right before the line with a blank line after the new profile.
        """
        if not _VALID_ID.match(profile_id):
            raise BadInput(f"profile id {profile_id!r} must match {_VALID_ID.pattern}")
        if profile_id in self:
            raise BadInput(f"{self.source}: profile [{profile_id}] already exists")
        pairs = list(keys.items()) if isinstance(keys, Mapping) else list(keys)
        seen: set[str] = set()
        for key, value in pairs:
            _check_key(key)
            _check_value(key, value)
            if key in seen:
                raise BadInput(f"profile [{profile_id}]: key {key} given twice")
            seen.add(key)
        block = [
            "",
            *comment_lines(comments),
            f"[{profile_id}]",
            *(f"{key}={value}" for key, value in pairs),
        ]
        divider = (
            None if after is not None or before_comment is None else self._divider(before_comment)
        )
        if divider is not None:
            above = [span for span in self._spans.values() if span[2] < divider]
            if above:
                self._insert(max(last for _, _, last in above) + 1, block)
            else:
                if divider == 0 or not self._lines[divider - 1].text.strip():
                    block = block[1:]
                self._insert(divider, [*block, ""])
        elif after is None:
            if not self._lines:
                block = block[1:]  # an empty file needs no separating blank line
            self._insert(len(self._lines), block)
        else:
            self.profile(after)
            _, _, last = self._spans[after]
            self._insert(last + 1, block)
        self._reparse()
        return self.profile(profile_id)

    def remove_profile(self, profile_id: str) -> None:
        """Remove a profile's comments, header and body, and the blank lines that followed it."""
        self.profile(profile_id)
        first, _, last = self._spans[profile_id]
        end = last + 1
        while end < len(self._lines) and not self._lines[end].text.strip():
            end += 1
        if end == len(self._lines):
            # last profile: drop the blank lines before it instead, keeping the file's ending
            end = last + 1
            while first > 0 and not self._lines[first - 1].text.strip():
                first -= 1
            if first > 0 and end == len(self._lines):
                self._lines[first - 1] = self._lines[first - 1].model_copy(
                    update={"ending": self._lines[last].ending}
                )
        del self._lines[first:end]
        self._reparse()

    def write(self, path: str | Path | None = None, *, backup: bool = True) -> Path:
        """Write atomically to ``path`` (default: where it was read), keeping a ``.bak``."""
        target = Path(path if path is not None else self.source)
        write_atomic(target, self.render(), backup=backup)
        return target

    # --- internals ----------------------------------------------------------------------

    def _divider(self, pattern: re.Pattern[str]) -> int | None:
        """The first comment line matching ``pattern`` that lies in no profile's body."""
        bodies = [range(header, last + 1) for _, header, last in self._spans.values()]
        for index, line in enumerate(self._lines):
            if _kind(line.text) != "comment" or not pattern.search(line.text):
                continue
            if not any(index in body for body in bodies):
                return index
        return None

    def _ending(self) -> str:
        counts = Counter(line.ending for line in self._lines if line.ending)
        return counts.most_common(1)[0][0] if counts else "\n"

    def _insert(self, index: int, texts: list[str]) -> None:
        ending = self._ending()
        new = [_Line(text=text, ending=ending) for text in texts]
        if index == len(self._lines) and self._lines and not self._lines[-1].ending:
            # appending after a last line without newline: it gets one, and the new last
            # line goes without, so the file keeps its "no final newline" style
            self._lines[-1] = self._lines[-1].model_copy(update={"ending": ending})
            new[-1] = new[-1].model_copy(update={"ending": ""})
        self._lines[index:index] = new

    def _reparse(self) -> None:
        """Rebuild the profiles from the lines; every edit ends here, so it also validates."""
        profiles: list[Profile] = []
        spans: dict[str, tuple[int, int, int]] = {}
        current: dict | None = None
        comment_run: list[int] = []  # the comment lines since the last non-comment line

        def close() -> None:
            if current is None:
                return
            first, header, last = current["first"], current["header"], current["last"]
            profiles.append(
                Profile(
                    id=current["id"],
                    keys=tuple(current["keys"]),
                    comments=tuple(self._lines[i].text for i in range(first, header)),
                    first_line=first + 1,
                    header_line=header + 1,
                    last_line=last + 1,
                )
            )
            spans[current["id"]] = (first, header, last)

        for index, line in enumerate(self._lines):
            where = f"{self.source}: line {index + 1}"
            kind = _kind(line.text)
            if kind == "comment":
                comment_run.append(index)
                continue
            if kind == "header":
                match = _HEADER.match(line.text)
                if not match or not _VALID_ID.match(match["id"]):
                    raise BadInput(f"{where}: bad section header {line.text.strip()!r}")
                close()
                profile_id = match["id"]
                if profile_id in spans:
                    at = spans[profile_id][1] + 1
                    raise BadInput(
                        f"{where}: duplicate section [{profile_id}] (first at line {at})"
                    )
                first = comment_run[0] if comment_run else index
                current = {"id": profile_id, "keys": [], "key_at": {}, "first": first}
                current.update(header=index, last=index)
            elif kind == "key":
                if current is None:
                    raise BadInput(f"{where}: key line before any [section]")
                match = _KEY_LINE.match(line.text)
                key = match["key"]
                if key in current["key_at"]:
                    at = current["key_at"][key] + 1
                    raise BadInput(
                        f"{where}: duplicate key {key} in [{current['id']}] (first at line {at})"
                    )
                current["key_at"][key] = index
                current["keys"].append((key, match["value"]))
                current["last"] = index
            elif kind == "bad":
                raise BadInput(f"{where}: not a comment, [section] or KEY=VALUE: {line.text!r}")
            comment_run = []
        close()
        self._profiles = tuple(profiles)
        self._spans = spans


def _common_lines(old: Sequence[str], new: Sequence[str]) -> dict[int, int]:
    """A longest common subsequence of two short line lists: new index -> old index."""
    lengths = [[0] * (len(new) + 1) for _ in range(len(old) + 1)]
    for i in range(len(old) - 1, -1, -1):
        for j in range(len(new) - 1, -1, -1):
            lengths[i][j] = (
                lengths[i + 1][j + 1] + 1
                if old[i] == new[j]
                else max(lengths[i + 1][j], lengths[i][j + 1])
            )
    pairs: dict[int, int] = {}
    i = j = 0
    while i < len(old) and j < len(new):
        if old[i] == new[j]:
            pairs[j] = i
            i, j = i + 1, j + 1
        elif lengths[i + 1][j] >= lengths[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _check_key(key: str) -> None:
    if not _VALID_KEY.match(key):
        raise BadInput(f"key {key!r} must match {_VALID_KEY.pattern}")


def _check_value(key: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise BadInput(f"value of {key} must be one line")
    check_utf8(f"value of {key}", value)


def check_utf8(what: str, text: str) -> None:
    """``BadInput`` naming the first byte that is not UTF-8.

    Arguments reach Python with undecodable bytes as lone surrogates (PEP 383); models.conf is
    UTF-8, so such a value cannot be written, and the message must not print the raw byte.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        byte = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise BadInput(
            f"{what} is not UTF-8 text ({byte} at character {error.start + 1}); "
            "models.conf holds UTF-8 only"
        ) from None


def comment_lines(comments: Iterable[str]) -> list[str]:
    """Comment texts as lines: '# text', or the line as given when it already starts with #."""
    lines = []
    for comment in comments:
        for part in comment.splitlines() or [""]:
            check_utf8("a comment", part)
            if part.lstrip().startswith("#"):
                lines.append(part)
            else:
                lines.append(f"# {part}".rstrip())
    return lines


# --- EXTRA_ARGS -------------------------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def split_args(value: str) -> list[str]:
    """Split an EXTRA_ARGS value into arguments exactly as a POSIX shell would (shlex)."""
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError as error:
        raise BadInput(f"cannot split arguments {value!r}: {error}") from None


def quote_arg(arg: str) -> str:
    """Shell-quote one argument, preferring double quotes so regexes stay readable.

    Inside double quotes a backslash is literal unless it precedes ``$ ` " \\`` or a newline,
    so ``blk\\.(1[0-9])\\.ffn_.*_exps\\.=CPU`` needs no escaping there. Arguments with those
    characters get single quotes (``shlex.quote``) instead.
    """
    if arg and _BARE.match(arg):
        return arg
    needs_single = any(char in arg for char in '$`"\n') or "\\\\" in arg or arg.endswith("\\")
    if needs_single:
        return shlex.quote(arg)
    return f'"{arg}"'


def join_args(args: Iterable[str]) -> str:
    """The inverse of ``split_args``: ``split_args(join_args(a)) == list(a)``."""
    return " ".join(quote_arg(arg) for arg in args)


# --- writes ---------------------------------------------------------------------------------

LOCK_TIMEOUT_S = 30.0
_TEMP_RANDOM = "[a-z0-9_]{8}"  # tempfile.mkstemp's (earlier fit versions) and ours (hex)
_held = threading.local()  # the targets this thread holds the lock of (the lock is reentrant)

T = TypeVar("T")


def real_target(path: str | Path) -> Path:
    """The file a write replaces: ``path`` with every symlink resolved, so a linked
    models.conf is edited where it lives and the link stays a link."""
    return Path(os.path.realpath(path))


def check_writable(path: str | Path) -> None:
    """``BadInput`` when fit must not or cannot replace ``path``: its folder is missing or not
    writable, or the file is read-only. Read-only means no write bit at all (mode 444), which
    fit honours even as root, or no write permission for this user: a ``rename`` would
    replace such a file anyway, so the check must be explicit."""
    path = Path(path)
    target = real_target(path)
    folder = target.parent
    if not folder.is_dir():
        raise BadInput(f"{path}: its folder {folder} does not exist")
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise BadInput(f"{path}: cannot read: {error.strerror or error}") from None
    if mode is not None and (not mode & 0o222 or not os.access(target, os.W_OK)):
        raise BadInput(
            f"{path}: read-only (mode {stat.S_IMODE(mode):04o}); fit does not rewrite it — "
            "make it writable (chmod u+w) to let fit edit it"
        )
    if not os.access(folder, os.W_OK):
        raise BadInput(f"{path}: cannot write in {folder}")


@contextmanager
def conf_lock(path: str | Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold the exclusive lock of ``path``'s real target; yields that target.

    The lock is ``flock`` on ``.<name>.lock`` beside the target (the target itself is replaced
    by each write, so its inode cannot carry the lock). The holder removes the lock file before
    releasing it; a process that locked a file since removed tries again, so a lock is only
    ever held on the file the path names. The kernel drops the lock of a killed process, and
    its stale lock file is reused and then removed by the next writer. Nested use in one
    thread does not lock twice. Waits at most ``timeout_s``, then ``OperationFailed``.
    """
    target = real_target(path)
    held: set[Path] = _held.__dict__.setdefault("targets", set())
    if target in held:
        yield target
        return
    lock_path = target.with_name(f".{target.name}.lock")
    fd = _acquire(lock_path, Path(path), timeout_s)
    held.add(target)
    try:
        yield target
    finally:
        held.discard(target)
        with suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)


def _acquire(lock_path: Path, shown: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # read-only is enough for flock, and lets another user's lock file be used
            fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise OperationFailed(f"{shown}: cannot lock: {error.strerror or error}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OperationFailed(
                            f"{shown}: another process has held its lock ({lock_path}) for "
                            f"{timeout_s:.0f} s; try again when it is done"
                        ) from None
                    time.sleep(0.01)
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                current = False
            if current:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder before us removed this lock file: lock the new one


def edit_conf(
    path: str | Path,
    change: Callable[[ModelsConf], T],
    *,
    create: bool = False,
    backup: bool = True,
) -> T:
    """Read ``path``, apply ``change`` to it and write it back, all under its lock, so an edit
    by another process in between cannot be lost. With ``create`` a missing file starts empty.
    Nothing is written when ``change`` changes nothing; returns what ``change`` returns."""
    path = Path(path)
    check_writable(path)
    with conf_lock(path) as target:
        missing = create and not path.exists()
        conf = ModelsConf("", str(path)) if missing else ModelsConf.read(path)
        before = conf.render()
        result = change(conf)
        if conf.render() != before:
            write_atomic(path, conf.render(), backup=backup)
        else:
            clean_temporaries(target)
        return result


def write_atomic(path: str | Path, text: str, *, backup: bool = True) -> None:
    """Replace ``path``'s real target with ``text`` (UTF-8, bytes as given) so that it is
    never half-written, under its lock (``conf_lock``).

    Steps: refuse a read-only file (``check_writable``); remove temporary files a killed
    writer left; write a temporary file in the target's directory with the target's mode and
    owner (a new file: the umask's mode), fsync it; copy the previous version to
    ``<target>.bak`` (when ``backup`` and the file exists); ``os.replace`` the temporary file
    over the target; fsync the directory. Any failure leaves the original untouched and
    removes the temporary file; it is reported as ``OperationFailed``.
    """
    check_utf8(str(path), text)
    data = text.encode("utf-8")
    check_writable(path)
    with conf_lock(path) as target:
        clean_temporaries(target)
        _replace(target, data, backup=backup, shown=Path(path))


def clean_temporaries(target: Path) -> list[Path]:
    """Remove ``.<name>.XXXXXXXX.tmp`` and ``.<name>.bak.XXXXXXXX.tmp`` beside ``target``: a
    writer killed mid-write leaves them. Only call it holding the target's lock, when no
    live writer of this file can own one. Returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(target.name)}(?:\.bak)?\.{_TEMP_RANDOM}\.tmp")
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if pattern.fullmatch(name):
            with suppress(FileNotFoundError):
                os.unlink(target.parent / name)
                removed.append(target.parent / name)
    return removed


def _replace(target: Path, data: bytes, *, backup: bool, shown: Path) -> None:
    directory = target.parent
    try:
        previous = target.stat()
    except FileNotFoundError:
        previous = None
    except OSError as error:
        raise OperationFailed(f"{shown}: cannot write: {error.strerror or error}") from None
    try:
        fd, temporary = _create_temporary(target)
    except OSError as error:
        raise OperationFailed(f"{shown}: cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if previous is not None:
                _copy_owner_and_mode(handle.fileno(), previous)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None and backup:
            _copy_atomic(target, target.with_name(target.name + ".bak"))
        os.replace(temporary, target)
        _fsync_directory(directory)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OperationFailed(f"{shown}: write failed: {error.strerror or error}") from None
        raise


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new empty file ``.<name>.<8 hex>.tmp`` beside ``target``, created with mode 0666 so
    the kernel applies the umask (``mkstemp`` would make every new file 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    while True:
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _copy_owner_and_mode(fd: int, previous: os.stat_result) -> None:
    with suppress(OSError):  # only root (or the owner, for the group) may; keep what we can
        os.fchown(fd, previous.st_uid, previous.st_gid)
    os.fchmod(fd, stat.S_IMODE(previous.st_mode))


def _copy_atomic(source: Path, target: Path) -> None:
    fd, temporary = _create_temporary(target)
    os.close(fd)
    try:
        shutil.copy2(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename itself is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
