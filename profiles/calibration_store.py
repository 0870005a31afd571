"""Where this machine's calibration lives: ``<config dir>/calibration/<machine id>.json``,
and which cost coefficients a prediction on this machine uses.

The config dir is ``$FIT_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/fit``, else ``~/.config/fit``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from profiles.models_conf import write_atomic
from profiles.runs import load_runs
from solver.cost.calibrate import Calibration, CalibrationRun, calibrate, machine_id
from solver.cost.model import CostCoefficients
from solver.errors import BadInput
from solver.hardware.detect import detect
from solver.hardware.scenario import Hardware


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
    """Atomic write of strict JSON (``Calibration.to_file_text``: infinite rates as null)."""
    path = calibration_path(calibration.machine_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, calibration.to_file_text(), backup=True)
    return path


def load_calibration(machine: str) -> Calibration | None:
    """This machine's saved calibration, or None; a damaged file is bad input."""
    path = calibration_path(machine)
    if not path.exists():
        return None
    try:
        # Python's json also reads the Infinity that files before issue 15 hold
        return Calibration.from_file_data(json.loads(path.read_text()))
    except (OSError, ValueError, RecursionError) as error:  # Recursion: JSON nested too deep
        raise BadInput(f"{path}: not a fit calibration ({str(error).splitlines()[0]})") from None


def this_machine() -> tuple[Hardware, str]:
    """This machine's detected hardware and its id (hostname, CPU model, GPU names)."""
    detected = detect()
    return detected.hardware, machine_id([gpu.name for gpu in detected.gpus])


def coefficients_in_use(machine: str, *, use_calibration: bool) -> tuple[CostCoefficients, str]:
    """The coefficients predictions on ``machine`` use (its saved calibration, else the
    corpus-fitted defaults, data/cost_coefficients.json) and one line that says which."""
    calibration = load_calibration(machine) if use_calibration else None
    if calibration is None:
        why = "--no-calibration" if not use_calibration else "run `fit calibrate`"
        return CostCoefficients(), f"cost coefficients: corpus-fitted defaults ({why})"
    return calibration.coefficients, (
        f"cost coefficients: calibrated {calibration.created:%Y-%m-%d} from "
        f"{calibration.runs} runs ({calibration_path(machine)})"
    )


def calibrate_this_machine(folders: Sequence[Path], *, save: bool = True) -> CalibrationRun:
    """Fit this machine's coefficients to its successful runs stored in ``folders``, starting
    from the coefficients in use now, and save them unless ``save`` is off."""
    hardware, machine = this_machine()
    coefficients, _ = coefficients_in_use(machine, use_calibration=True)
    records, skipped = load_runs(folders)
    mine = [r for r in records if r.machine_id == machine and r.ok]
    calibration = calibrate(
        [r.samples() for r in mine], hardware, machine=machine, base=coefficients
    )
    return CalibrationRun(
        calibration=calibration,
        left_out=len(records) - len(mine),
        skipped=tuple(skipped),
        saved_to=save_calibration(calibration) if save else None,
    )
