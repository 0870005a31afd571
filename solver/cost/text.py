"""What ``fit calibrate`` shows: the fitted rates per device, the fit's errors, and notes.

A pure function of a ``Calibration``; the CLI only prints it.
"""

from __future__ import annotations

from solver.cost.calibrate import CalibrationRun
from solver.quantities import GB
from solver.text_table import rows_table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def calibration_text(run: CalibrationRun) -> str:
    """The runs used (and how many were left out), bandwidth (GB/s) and throughput (GFLOP/s)
    per device, split latency and token overhead, the mean error before and after, the
    notes, the run files that could not be read, and where it was saved."""
    calibration, left_out = run.calibration, run.left_out
    c, e = calibration.coefficients, calibration.errors
    lines = [
        f"machine {calibration.machine_id}: {calibration.runs} runs, "
        f"{calibration.decode_rows} decode and {calibration.prefill_rows} prompt measurements"
        + (f" ({left_out} runs of other machines or failed launches left out)" if left_out else ""),
    ]
    rows = [
        {
            "device": device,
            "group": group,
            "GB/s": f"{c.measured[device].bandwidth_bytes_per_s / GB:.2f}",
            "GFLOP/s": f"{c.measured[device].flops / 1e9:.1f}",
        }
        for device, group in calibration.grouping.items()
    ]
    lines.append(rows_table(rows))
    lines.append(
        f"split latency {c.split_latency_s * 1e6:.1f} us, "
        f"token overhead {c.token_overhead_s * 1e3:.3f} ms"
    )
    lines.append(f"fitted: {', '.join(calibration.fitted)}")
    for what, before, after in (
        ("decode", e.decode_before, e.decode_after),
        ("prompt", e.prefill_before, e.prefill_after),
    ):
        lines.append(
            f"mean error on these runs, {what}: {_percent(before)} before (coefficients in use), "
            f"{_percent(after)} after"
        )
    lines += [f"note: {note}" for note in calibration.notes]
    lines += [f"skipped: {line}" for line in run.skipped]
    lines.append(f"saved: {run.saved_to}" if run.saved_to else "not saved (--dry-run)")
    return "\n".join(lines)
