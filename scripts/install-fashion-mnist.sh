#!/usr/bin/env bash
# Installs Fashion-MNIST (MIT) from Debian's `dataset-fashion-mnist` package, as root.
# Files land in /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz,
# where `offload train`, `offload profile` and the model tests read them.
set -euo pipefail

dir=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

have_all() {
    for f in "${files[@]}"; do
        [[ -s "$dir/$f" ]] || return 1
    done
}

if have_all; then
    echo "Fashion-MNIST already installed in $dir"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "run as root (apt-get install needs it): sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y dataset-fashion-mnist

have_all || { echo "dataset-fashion-mnist installed but files are missing under $dir" >&2; exit 1; }
echo "Fashion-MNIST installed in $dir"
