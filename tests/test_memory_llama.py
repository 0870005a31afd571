"""fit's memory model against the real llama-server on gemma-3-270m (gemma3, iSWA).

The launches are ``benchmarks.memory_fidelity.GEMMA_CPU`` and ``GEMMA_RPC``: context padding,
slots with and without a unified cache, quantized KV, --swa-full, --load-mode none, -ot,
--fit on, -sm none, and -ot to an RPC buffer type. Every expected number comes from
llama.cpp: the MiB it prints for each buffer and, on RPC devices, the exact bytes the RPC
servers allocated (``check_case`` in conftest.py asserts every target of
``profiles.fidelity``).
"""

from __future__ import annotations

import pytest

from profiles.fidelity_cases import GEMMA_CPU, GEMMA_RPC, Case

pytestmark = [pytest.mark.llama, pytest.mark.slow]

TOKEN_EMBD_TO_RPC1 = next(case for case in GEMMA_RPC if case.name == "token-embd-to-rpc1")
CASES = [case for case in (*GEMMA_CPU, *GEMMA_RPC) if case is not TOKEN_EMBD_TO_RPC1]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_gemma_launch(case: Case, check_case) -> None:
    check_case(case)


def test_override_to_rpc_buffer(check_case) -> None:
    """-ot naming an RPC buffer type moves the token embeddings off the CPU."""
    measured = check_case(TOKEN_EMBD_TO_RPC1)
    assert measured.memory.placement.tensor_devices["token_embd.weight"] == "RPC1"
    assert measured.run.device_of(measured.run.tensor_overrides["token_embd.weight"]) == "RPC1"
