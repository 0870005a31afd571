"""Find and remove llama-server options in an argument list, whatever spelling was used.

An option is named by its key (its first long spelling in the pinned ``--help``, e.g.
``--batch-size`` for ``-b``); ``--foo_bar`` reads as ``--foo-bar`` as in ``common/arg.cpp``.
Arguments the table does not know are kept as single tokens, so an edit never moves or drops
anything it was not asked to.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from solver.llama.options import ServerOption, server_options


def _walk(args: Sequence[str]) -> Iterator[tuple[int, ServerOption | None, list[str]]]:
    """(index, option or None, its values) for each argument group in order."""
    table = server_options()
    i = 0
    while i < len(args):
        name = args[i].replace("_", "-") if args[i].startswith("--") else args[i]
        option = table.get(name)
        n_values = option.n_values if option else 0
        yield i, option, list(args[i + 1 : i + 1 + n_values])
        i += 1 + n_values


def option_values(args: Sequence[str], key: str) -> list[str]:
    """Every value given to option ``key`` in order (an empty string for a flag)."""
    found = []
    for _, option, values in _walk(args):
        if option is not None and option.key == key:
            found.append(values[0] if values else "")
    return found


def last_value(args: Sequence[str], key: str) -> str | None:
    """The value llama.cpp uses for a repeated option: the last one."""
    values = option_values(args, key)
    return values[-1] if values else None


def without_options(args: Sequence[str], keys: Collection[str]) -> list[str]:
    """``args`` with every occurrence of the options ``keys`` (and their values) removed."""
    kept: list[str] = []
    for i, option, values in _walk(args):
        if option is None or option.key not in keys:
            kept += [args[i], *values]
    return kept
