"""The fuzz suite of issue 15 at larger counts: mutated GGUF headers, split sets, scenario
TOML, models.conf, calibration files and run records through the real ``fit`` commands, and
a table of cases per file kind, exits 0/1/2, worst time and worst peak RSS (the subprocess
sample). Exits 1 when any case broke the property (a traceback, a second line, a case over
10 s or 1 GiB).

    python -m benchmarks.fuzz_inputs [--scale 4] [--subprocess 6]   # --scale 1: the CI counts

The harness is ``tests/fuzz_harness.py`` (generators, judge, CI counts), run here as its own
process: the import contracts keep benchmarks from importing tests. It needs the repository
checkout (tests/ is not part of the wheel).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=4.0, help="times the CI counts")
    parser.add_argument("--subprocess", type=int, default=6, help="subprocess cases per kind")
    args = parser.parse_args(argv)
    if not (REPO / "tests" / "fuzz_harness.py").exists():
        print("benchmarks.fuzz_inputs needs the repository checkout (tests/)", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "tests.fuzz_harness", "--scale", str(args.scale),
               "--subprocess", str(args.subprocess)]  # fmt: skip
    return subprocess.run(command, cwd=REPO, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
