"""Where this machine's calibration lives: ``<config dir>/calibration/<machine id>.json``.

The config dir is ``$FIT_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/fit``, else ``~/.config/fit``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from profiles.models_conf import write_atomic
from solver.calibrate import Calibration
from solver.errors import BadInput


def config_dir() -> Path:
    """``$FIT_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/fit``, else ``~/.config/fit``."""
    explicit = os.environ.get("FIT_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "fit"


def calibration_path(machine: str) -> Path:
    return config_dir() / "calibration" / f"{machine}.json"


def save_calibration(calibration: Calibration) -> Path:
    """Atomic write (infinite link rates are stored as JSON's ``Infinity``)."""
    path = calibration_path(calibration.machine_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(calibration.model_dump(mode="python"), indent=1, default=str)
    write_atomic(path, text + "\n", backup=True)
    return path


def load_calibration(machine: str) -> Calibration | None:
    """This machine's saved calibration, or None; a damaged file is bad input."""
    path = calibration_path(machine)
    if not path.exists():
        return None
    try:
        return Calibration.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError) as error:
        raise BadInput(f"{path}: not a fit calibration ({str(error).splitlines()[0]})") from None
