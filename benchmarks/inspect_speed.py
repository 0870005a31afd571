"""How fast ``fit inspect`` reads a DeepSeek-V3-sized split set, and how little it reads.

Writes a sparse 9-part DeepSeek-V3 Q4_K_M GGUF (≈404 GB apparent, a few MB on disk) from the
catalogue blueprint, then times fit's reader against gguf-py's ``GGUFReader`` (memory-maps
each part and parses the same headers) in the same run, and prints seconds and the bytes
fit read as a fraction of the files' size.

    python -m benchmarks.inspect_speed [--parts 9] [--repeat 3] [--dir /tmp/fit-bench]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import gguf

from solver.gguf.catalogue import catalogue_blueprint
from solver.gguf.sources import load_inventory
from solver.gguf.synthetic import write_synthetic_gguf


def _best_of(repeat: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        blueprint = catalogue_blueprint("deepseek-v3:Q4_K_M")
        paths = write_synthetic_gguf(
            blueprint, "Q4_K_M", Path(tmp) / "DeepSeek-V3-Q4_K_M.gguf",
            n_parts=args.parts, sparse=True,
        )  # fmt: skip
        apparent = sum(p.stat().st_size for p in paths)
        on_disk = sum(p.stat().st_blocks * 512 for p in paths)

        fit_seconds, inventory = _best_of(args.repeat, lambda: load_inventory(str(paths[0])))

        def gguf_py() -> int:
            return sum(len(gguf.GGUFReader(p).tensors) for p in paths)

        baseline_seconds, n_tensors_py = _best_of(args.repeat, gguf_py)

    assert inventory.n_tensors == n_tensors_py
    print(f"model        DeepSeek-V3 Q4_K_M, {len(paths)} parts, {inventory.n_tensors} tensors")
    print(f"file size    {apparent / 1e9:.1f} GB apparent, {on_disk / 1e6:.1f} MB on disk")
    print(f"fit inspect  {fit_seconds * 1000:.1f} ms (median of {args.repeat})")
    print(f"gguf-py      {baseline_seconds * 1000:.1f} ms (GGUFReader on every part)")
    print(f"ratio        {fit_seconds / baseline_seconds:.2f}x gguf-py's time")
    print(
        f"bytes read   {inventory.bytes_read:,} of {apparent:,} "
        f"({inventory.bytes_read / apparent:.2e} of the files; header {inventory.header_bytes:,})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
