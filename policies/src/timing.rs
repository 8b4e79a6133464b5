//! Predicted timing of a frame's options, shared by the planning policies.

use offload_controller::{Context, FrameOptions, OffloadOption};

/// When the result of sending `o` would arrive: device time, an RRC promotion if the radio will
/// be idle, the backlog ahead plus this frame at `rate_bps`, the round trip and the server time.
pub fn offload_result_at(
    ctx: &Context<'_>,
    o: &OffloadOption,
    backlog_bits: f64,
    rate_bps: f64,
) -> f64 {
    let mut ready = ctx.now + o.device_time * ctx.device.compute_slowdown();
    if ctx.radio.needs_promotion(ctx.radio_state, ready) {
        ready += ctx.radio.promotion_s;
    }
    let bits = backlog_bits + o.bytes as f64 * 8.0;
    ready + bits / rate_bps.max(1.0) + ctx.estimates.rtt_or(ctx.default_rtt) + o.server_time
}

/// When the local path would finish.
pub fn local_result_at(ctx: &Context<'_>, frame: &FrameOptions) -> f64 {
    ctx.now + frame.local.device_time * ctx.device.compute_slowdown()
}

/// How many of the next frames the local path's CPU time makes the device drop: frame `j`
/// after this one is dropped when the CPU is still busy at the capture of frame `j + 1`.
pub fn frames_dropped_by_local(ctx: &Context<'_>, frame: &FrameOptions) -> u32 {
    let busy_until = local_result_at(ctx, frame);
    let interval = ctx.frame_interval.max(1e-6);
    let n = ((busy_until - frame.captured_at) / interval).floor() - 1.0;
    n.clamp(0.0, 1e6) as u32
}

/// The local path's accuracy per frame of the CPU time it takes: its accuracy if in time (else
/// minus the miss penalty), less the miss penalty of each frame it makes the device drop, spread
/// over itself and those frames. Comparable with an offload option's accuracy, which costs no
/// later frame.
pub fn local_value_per_frame(ctx: &Context<'_>, frame: &FrameOptions) -> f64 {
    let dropped = f64::from(frames_dropped_by_local(ctx, frame));
    let penalty = ctx.utility.miss_penalty;
    let value = if local_result_at(ctx, frame) <= frame.deadline {
        frame.local.accuracy
    } else {
        -penalty
    };
    (value - dropped * penalty) / (1.0 + dropped)
}
