"""fit's memory model against llama-server logs recorded from other builds.

``tests/fixtures/llama_logs/gemma3-270m-native-amx.log``: the buffer lines of the pinned
llama-server built with GGML_NATIVE=ON on an AMX-capable Xeon (its system_info line is in the
log), run as ``llama-server -m gemma-3-270m-q4_k_m.gguf -c 1024 --fit off --no-warmup``. The
CPU's AMX extra buffer type repacks every weight it supports, and the tied output head is
loaded a second time into it.
"""

from __future__ import annotations

from pathlib import Path

from profiles.fidelity import COMPONENTS, compare
from profiles.server_log import parse_server_log
from solver.gguf.sources import load_inventory
from solver.llama.args import parse_llama_args
from solver.llama.device_map import CpuFeatures
from solver.llama.memory import estimate_memory

LOGS = Path(__file__).parent / "fixtures" / "llama_logs"


def test_native_build_with_amx_repacking(gemma_gguf: Path) -> None:
    log = parse_server_log((LOGS / "gemma3-270m-native-amx.log").read_text())
    cpu = CpuFeatures.from_system_info(log.system_info or "")
    assert cpu.amx_int8 and cpu.avx2
    report = estimate_memory(
        load_inventory(str(gemma_gguf)), parse_llama_args(["-c", "1024", "--fit", "off"]), cpu=cpu
    )
    fidelity = compare(report, log)
    assert not fidelity.misses(), "\n".join(fidelity.misses())
    assert {row.component for row in fidelity.rows} == set(COMPONENTS)
    assert fidelity.splits_measured == (1, 1)
    assert report.devices["CPU"].repack > 0
