"""fit against llama.cpp's own fitter on two RPC devices with the same budget.

The launched cases (``profiles.fitter_comparison.CI_CASES``) run ``llama-fit-params`` and
``fit solve`` for the same two ``ggml-rpc-server`` devices, launch both plans on the real
llama-server and assert what fit must show: its plan within budget in the real log (the RPC
servers' exact bytes), priced at least as fast as llama-fit-params' plan by fit's cost model,
and at least as many weight bytes on the devices unless fewer are strictly faster (each CI
case is one where llama-fit-params' plan stays within the budget, so all three apply).
``python -m benchmarks.fit_params`` runs every case and prints the table.
"""

from __future__ import annotations

import pytest

from profiles.fidelity_cases import model_blueprint
from profiles.fit_params import fit_target, parse_fit_params_output, reported_free_bytes
from profiles.fitter_comparison import CI_CASES, Case, run_case
from solver.errors import OperationFailed
from solver.quantities import MIB

FREE = 25_276_071_936  # what a CPU-backed RPC device reported here (physical memory)


def test_fit_target_is_the_budget_fit_cpp_fits_to() -> None:
    target = fit_target(40 * MIB + 123, FREE)
    # fit.cpp: target = free - margin, the margin in whole MiB; never above the asked budget
    assert target.budget_bytes == FREE - target.margin_mib * MIB
    assert target.budget_bytes <= 40 * MIB + 123 < target.budget_bytes + MIB
    assert fit_target(FREE - 7 * MIB, FREE).margin_mib == 7
    for impossible in (0, FREE + 1):
        with pytest.raises(OperationFailed, match="not within"):
            fit_target(impossible, FREE)


def test_fit_params_output_and_rpc_free_memory_are_read() -> None:
    # tools/fit-params/fit-params.cpp prints the -ot list in double quotes
    stdout = (
        "-c 2048 -ngl 9 -ts 4,5 -ot "
        '"blk\\.3\\.ffn_(gate|up|gate_up|down).*=RPC0[127.0.0.1:4001],blk\\.7\\.ffn_down.*=CPU"\n'
    )
    assert parse_fit_params_output(stdout) == (
        "-c", "2048", "-ngl", "9", "-ts", "4,5", "-ot",
        "blk\\.3\\.ffn_(gate|up|gate_up|down).*=RPC0[127.0.0.1:4001],blk\\.7\\.ffn_down.*=CPU",
    )  # fmt: skip
    with pytest.raises(OperationFailed, match="no arguments"):
        parse_fit_params_output("llama_params_fit: failed\n")
    # ggml-rpc.cpp rpc_server::get_device_memory under GGML_RPC_DEBUG=1
    log = f"[get_device_memory] device: 0, free_mem: {FREE}, total_mem: {FREE}\n"
    assert reported_free_bytes({"127.0.0.1:4001": log, "127.0.0.1:4002": ""}) == {
        "127.0.0.1:4001": FREE
    }


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.parametrize("case", CI_CASES, ids=lambda case: case.id)
def test_fit_shows_what_it_must_against_llama_fit_params(
    case: Case, synthetic_gguf, shared_rpc_servers, server_env, tmp_path
) -> None:
    found = model_blueprint(case.model)
    assert found is not None
    (model,) = synthetic_gguf(*found)
    result = run_case(case, model, shared_rpc_servers, env=server_env, log_dir=tmp_path)
    # the comparison ran: both plans launched on both devices under the one budget
    assert set(result.fit.device_bytes) == set(result.llama.device_bytes) == {"RPC0", "RPC1"}
    assert result.rival, f"llama-fit-params overfilled a device: {result.llama.device_bytes}"
    assert not result.failures(), "\n".join(
        [*result.failures(), f"fit: {result.fit.args}", f"llama-fit-params: {result.llama.args}"]
    )
