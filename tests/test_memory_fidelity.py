"""fit's memory model against the real llama-server: the CI grid of the fidelity benchmark.

``benchmarks.memory_fidelity.CI_GRID``: the real gemma-3-270m and 6-layer synthetic llama,
qwen3, qwen3moe, gemma3, deepseek2 (MLA), gpt-oss, glm4moe and a llama with rope_freqs, on the
CPU and on two ``ggml-rpc-server`` devices, with FA on/off, quantized KV, -ub/-b, slots,
-nkvo, -ngl/-ts splits and -ot of FFN and expert tensors. Each launch must meet every target
of ``profiles.fidelity`` per device and component: weights, KV and output exact (each buffer;
RPC devices to the byte), compute within 5% and the device total within 1% beyond the log's
rounding, graph splits of both graphs, the context sizes and the device of every layer and
``-ot`` tensor equal (``check_case`` in conftest.py). The benchmark prints the same
comparison for more launches: ``python -m benchmarks.memory_fidelity``.
"""

from __future__ import annotations

import pytest

from profiles.fidelity_cases import CI_GRID, Case

pytestmark = [pytest.mark.llama, pytest.mark.slow]


@pytest.mark.parametrize("case", CI_GRID, ids=[case.id for case in CI_GRID])
def test_prediction_meets_the_targets(case: Case, check_case) -> None:
    check_case(case)
