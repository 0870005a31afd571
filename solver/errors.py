"""One exception tree for fit; the CLI maps each branch to an exit code in one place.

``BadInput`` (exit 2): the user gave fit something it cannot read or accept — a truncated
GGUF, an unknown architecture, a malformed models.conf, an argument llama.cpp would reject.
``OperationFailed`` (exit 1): the input was fine but the operation did not succeed — the model
cannot fit anywhere, a server died, a download broke.
"""


class FitError(Exception):
    """Base of every error fit reports to a user. The message is one clear line."""

    exit_code = 1


class BadInput(FitError):
    """The input (file, flag, config) is wrong; nothing was attempted."""

    exit_code = 2


class OperationFailed(FitError):
    """The input was valid but the operation failed (no fit, server crash, timeout)."""

    exit_code = 1


class GGUFError(BadInput):
    """A GGUF file is unreadable; the message names the file, the offset and the problem."""

    def __init__(self, path: str, problem: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path}: {problem}{where}")
        self.path = path
        self.problem = problem
        self.offset = offset


class CannotFit(OperationFailed):
    """No placement satisfies every device's memory; the message says what is missing."""
