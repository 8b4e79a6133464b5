#!/usr/bin/env bash
# Side-by-side timing of the detector's device-side encoder: candle (this project) vs onnxruntime
# running the same layers (image 1x3x300x300 -> MobileNetV2 block 12, 1x96x19x19), at 1 and 2
# threads. Benchmark only: onnx + onnxruntime + safetensors are pip-installed into the detector
# venv (${OFFLOAD_CACHE:-$HOME/.cache/offload}/detector/venv, made by
# scripts/install-detector.sh --with-reference, or here), never a dependency of the project.
#
#   scripts/bench-onnxruntime.sh [--rounds N] [--iters N] [--threads 1,2] [--old-path]
#
# Needs the installed detector (scripts/install-detector.sh). Writes the ONNX graph, the .npy
# files and results.json to ${BENCH_OUT:-/tmp/offload-bench-onnxruntime}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cache="${OFFLOAD_CACHE:-$HOME/.cache/offload}"
venv="$cache/detector/venv"
out="${BENCH_OUT:-/tmp/offload-bench-onnxruntime}"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import onnx, onnxruntime, safetensors, numpy' 2>/dev/null; then
    PIP_CACHE_DIR="$cache/pip" "$venv/bin/pip" install --quiet onnx onnxruntime safetensors numpy
fi

target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -p offload-model --example detector_encoder_time)
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "onnxruntime $("$venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$venv/bin/python" "$here/bench-onnxruntime.py" \
    --candle-bin "$target/release/examples/detector_encoder_time" --work "$out" "$@"
