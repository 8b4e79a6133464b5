#!/usr/bin/env python3
"""Times the detector's device-side encoder in onnxruntime and in candle, side by side.

Builds an ONNX graph of exactly the encoder's layers (normalised 1x3x300x300 image -> output of
MobileNetV2 block 12, 1x96x19x19) from the converted safetensors: the stem 3x3 stride-2
convolution and inverted-residual blocks 0-12, BatchNorm folded into the convolutions in float64
(as crates/model/src/detector/weights.rs folds it), ReLU6 as Clip(0, 6), TF 'SAME' padding as
explicit (asymmetric) pads. Then, for each thread count, alternately runs the candle encoder
(the Rust example `detector_encoder_time`, RAYON_NUM_THREADS=n) and onnxruntime
(intra_op_num_threads=n, inter_op_num_threads=1, ORT_ENABLE_ALL), several rounds each, and
reports medians and the ratio candle / onnxruntime. Candle's output on the real frame (written
as .npy by the Rust example) is compared with onnxruntime's on the same input blob.

Benchmark only: onnxruntime is not a dependency of the project. Run it through
scripts/bench-onnxruntime.sh, which installs onnx + onnxruntime into the detector venv.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

SCOPE = "FeatureExtractor/MobilenetV2"
# (expansion factor, output channels, depthwise stride) of expanded_conv ... expanded_conv_12,
# as crates/model/src/detector/mobilenet_v2.rs lists them.
BLOCKS = [
    (1, 16, 1),
    (6, 24, 2),
    (6, 24, 1),
    (6, 32, 2),
    (6, 32, 1),
    (6, 32, 1),
    (6, 64, 2),
    (6, 64, 1),
    (6, 64, 1),
    (6, 64, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 96, 1),
]
STEM_CHANNELS = 32
INPUT_SIZE = 300


def same_pads(length, kernel, stride):
    """TF 'SAME': output ceil(len/stride), the odd padding pixel after the input."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return out, total // 2, total - total // 2


class GraphBuilder:
    def __init__(self, weights):
        self.w = weights
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def bn(self, scope, channels):
        g = self.w[f"{scope}/BatchNorm/gamma"].astype(np.float64)
        b = self.w[f"{scope}/BatchNorm/beta"].astype(np.float64)
        m = self.w[f"{scope}/BatchNorm/moving_mean"].astype(np.float64)
        v = self.w[f"{scope}/BatchNorm/moving_variance"].astype(np.float64)
        eps_name = f"{scope}/BatchNorm/batchnorm/add/y"
        eps = float(self.w[eps_name]) if eps_name in self.w else 1e-3
        scale = g / np.sqrt(v + eps)
        shift = b - m * scale
        assert scale.shape == (channels,)
        return scale.astype(np.float32), shift.astype(np.float32)

    def conv(self, x, size, scope, kernel, stride, depthwise, relu6):
        """Conv (BN folded) on a square map of side `size`; returns (output name, output side)."""
        if depthwise:
            hwcm = self.w[f"{scope}/depthwise_weights"]  # (k, k, C, 1)
            channels = hwcm.shape[2]
            scale, shift = self.bn(scope, channels)
            oihw = np.transpose(hwcm, (2, 3, 0, 1))  # (C, 1, k, k)
            group = channels
        else:
            hwio = self.w[f"{scope}/weights"]  # (k, k, in, out)
            channels = hwio.shape[3]
            scale, shift = self.bn(scope, channels)
            oihw = np.transpose(hwio, (3, 2, 0, 1))
            group = 1
        weight = (oihw * scale[:, None, None, None]).astype(np.float32)
        wn, bn = self.name("w"), self.name("b")
        self.inits.append(numpy_helper.from_array(weight, wn))
        self.inits.append(numpy_helper.from_array(shift.astype(np.float32), bn))
        out, before, after = same_pads(size, kernel, stride)
        y = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, wn, bn],
                [y],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[before, before, after, after],
                group=group,
            )
        )
        if relu6:
            y = self.clip(y)
        return y, out

    def clip(self, x):
        if not any(i.name == "zero" for i in self.inits):
            self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
            self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "six"))
        y = self.name("relu6")
        self.nodes.append(helper.make_node("Clip", [x, "zero", "six"], [y]))
        return y


def encoder_model(weights):
    gb = GraphBuilder(weights)
    x, size = gb.conv("input", INPUT_SIZE, f"{SCOPE}/Conv", 3, 2, False, True)
    cin = STEM_CHANNELS
    for index, (factor, cout, stride) in enumerate(BLOCKS):
        scope = f"{SCOPE}/expanded_conv" + ("" if index == 0 else f"_{index}")
        block_in = x
        e = x
        if factor != 1:
            e, _ = gb.conv(x, size, f"{scope}/expand", 1, 1, False, True)
        d, size = gb.conv(e, size, f"{scope}/depthwise", 3, stride, True, True)
        p, _ = gb.conv(d, size, f"{scope}/project", 1, 1, False, False)
        if stride == 1 and cin == cout:
            y = gb.name("add")
            gb.nodes.append(helper.make_node("Add", [p, block_in], [y]))
            p = y
        x, cin = p, cout
    gb.nodes.append(helper.make_node("Identity", [x], ["split"]))
    graph = helper.make_graph(
        gb.nodes,
        "ssd_mobilenet_v2_encoder_block12",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("split", TensorProto.FLOAT, [1, cin, size, size])],
        gb.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_times(model_bytes, blob, threads, iters, warmup):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads == 1:
        # No spinning pool threads competing with the one doing the work.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    feed = {"input": blob}
    out = None
    for _ in range(warmup):
        out = sess.run(None, feed)[0]
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        out = sess.run(None, feed)[0]
        times.append(time.perf_counter() - t)
    return times, out


def candle_times(args, threads, path, npy_dir, binary=None):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [
        binary or args.candle_bin,
        "--model",
        args.model,
        "--frame",
        args.frame,
        "--path",
        path,
        "--iters",
        str(args.iters),
        "--warmup",
        str(args.warmup),
        "--npy-dir",
        npy_dir,
    ]
    res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    cache = os.path.join(os.environ.get("OFFLOAD_CACHE", os.path.expanduser("~/.cache/offload")), "detector")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(cache, "converted"))
    ap.add_argument("--frame", default=os.path.join(cache, "frames/vtest/frame_0001.png"))
    ap.add_argument("--candle-bin", required=True, help="the built detector_encoder_time example")
    ap.add_argument("--work", required=True, help="folder for the .onnx and the .npy files")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--old-path", action="store_true", help="also time candle's conv2d path")
    ap.add_argument(
        "--baseline-bin",
        help="also time this build of the example (e.g. made from an earlier commit), as 'baseline'",
    )
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)

    weights = load_file(os.path.join(args.model, "ssd_mobilenet_v2_coco.safetensors"))
    model = encoder_model(weights)
    model_bytes = model.SerializeToString()
    with open(os.path.join(args.work, "encoder_block12.onnx"), "wb") as f:
        f.write(model_bytes)

    # One candle run writes the input blob (the Rust preprocessing of the frame) and its output.
    candle_times(args, 1, "fast", args.work)
    blob = np.load(os.path.join(args.work, "input.npy"))
    want = np.load(os.path.join(args.work, "split_fast.npy"))
    _, got = ort_times(model_bytes, blob, 1, 1, 0)
    diff = np.abs(got - want)
    check = {
        "shape": list(got.shape),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_value": float(np.abs(want).max()),
    }
    print(f"output check candle fast vs onnxruntime: {json.dumps(check)}", flush=True)
    if got.shape != want.shape or check["max_abs_diff"] > 1e-3:
        sys.exit("candle and onnxruntime disagree")

    paths = ["fast"] + (["candle-conv2d"] if args.old_path else [])
    extra = ["baseline"] if args.baseline_bin else []
    results = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        names = paths + extra + ["onnxruntime"]
        per = {p: [] for p in names}  # median of each round
        fastest = {p: float("inf") for p in names}  # fastest single run

        def record(name, seconds):
            per[name].append(statistics.median(seconds))
            fastest[name] = min(fastest[name], min(seconds))

        for _ in range(args.rounds):
            for p in paths:
                record(p, candle_times(args, threads, p, args.work)["seconds"])
            if args.baseline_bin:
                base_dir = os.path.join(args.work, "baseline")
                record("baseline", candle_times(args, threads, "fast", base_dir, args.baseline_bin)["seconds"])
            times, _ = ort_times(model_bytes, blob, threads, args.iters, args.warmup)
            record("onnxruntime", times)
        load = os.getloadavg()
        med = {p: statistics.median(v) * 1e3 for p, v in per.items()}
        best = {p: v * 1e3 for p, v in fastest.items()}
        ratio = med["fast"] / med["onnxruntime"]
        ratio_best = best["fast"] / best["onnxruntime"]
        results[threads] = {
            "median_of_round_medians_ms": med,
            "fastest_run_ms": best,
            "round_medians_ms": {p: [t * 1e3 for t in v] for p, v in per.items()},
            "ratio_fast_over_ort_median": ratio,
            "ratio_fast_over_ort_fastest": ratio_best,
            "loadavg_after": load,
        }
        line = ", ".join(f"{p} {med[p]:.2f} ms (fastest {best[p]:.2f})" for p in names)
        print(
            f"threads={threads}: {line}; candle fast / onnxruntime = {ratio:.2f}x median, "
            f"{ratio_best:.2f}x fastest (load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
            flush=True,
        )
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"check": check, "onnxruntime": ort.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
