//! Properties of `Trace::transfer_end` and `Trace::bits_between` on random traces.

use offload_sim::trace::Trace;
use proptest::prelude::*;

/// Random traces: 1–12 segments of 0.01–5 s, each idle (0) or 1 kbit/s–100 Mbit/s, with at
/// least one non-zero segment.
fn trace() -> impl Strategy<Value = Trace> {
    let rate = prop_oneof![1 => Just(0.0), 4 => 1e3..1e8_f64];
    prop::collection::vec((0.01..5.0_f64, rate), 1..12)
        .prop_filter("some capacity", |segs| segs.iter().any(|&(_, r)| r > 0.0))
        .prop_map(|segs| Trace::from_segments("prop", &segs).expect("valid segments"))
}

/// Bits from a fraction of a period to several periods of this trace.
fn bits_for(t: &Trace, frac: f64) -> f64 {
    frac * 3.0 * t.total_bits()
}

/// Reference: walk forward in steps of at most `dt`, never across a segment boundary, adding
/// each step's capacity × length, until `bits` are through.
fn brute_force_end(t: &Trace, start: f64, bits: f64, dt: f64) -> f64 {
    let period = t.duration();
    let bounds: Vec<f64> = t.segments().map(|s| s.start + s.duration).collect();
    let mut now = start;
    let mut left = bits;
    loop {
        let k = (now / period).floor();
        let off = now - k * period;
        // Next boundary strictly after `off` within this period.
        let next = bounds
            .iter()
            .copied()
            .find(|&b| b > off + 1e-12)
            .unwrap_or(period);
        let step = dt.min(next - off).max(1e-12);
        let rate = t.capacity_at(now + step / 2.0);
        if rate * step >= left {
            return now + left / rate;
        }
        left -= rate * step;
        now += step;
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn monotone_in_bits(t in trace(), start in -50.0..1e5_f64, a in 0.0..1.0_f64, b in 0.0..1.0_f64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let e_lo = t.transfer_end(start, bits_for(&t, lo)).unwrap();
        let e_hi = t.transfer_end(start, bits_for(&t, hi)).unwrap();
        prop_assert!(e_lo <= e_hi, "{e_lo} > {e_hi}");
        prop_assert!(e_lo >= start);
    }

    #[test]
    fn monotone_in_start(t in trace(), s1 in 0.0..1e4_f64, gap in 0.0..20.0_f64, f in 0.0..1.0_f64) {
        let bits = bits_for(&t, f);
        let e1 = t.transfer_end(s1, bits).unwrap();
        let e2 = t.transfer_end(s1 + gap, bits).unwrap();
        prop_assert!(e1 <= e2 + 1e-9 * e2.abs().max(1.0), "{e1} > {e2}");
    }

    #[test]
    fn inverse_of_bits_between(t in trace(), start in 0.0..1e5_f64, f in 1e-6..1.0_f64) {
        let bits = bits_for(&t, f);
        let end = t.transfer_end(start, bits).unwrap();
        let through = t.bits_between(start, end);
        // Times are absolute: at t ≈ 1e5 s one ulp of time carries max_rate·1.5e-11 bits.
        let max_rate = t.segments().map(|s| s.bps).fold(0.0, f64::max);
        let time_resolution = 4.0 * f64::EPSILON * end.abs().max(1.0) * max_rate;
        prop_assert!(
            (through - bits).abs() <= 1e-9 * bits.max(1.0) + time_resolution,
            "{through} vs {bits}"
        );
        // Earliest: a moment before the end, fewer bits are through.
        let before = end - 1e-6_f64.min((end - start) / 2.0);
        if before > start {
            prop_assert!(t.bits_between(start, before) < bits);
        }
    }

    #[test]
    fn matches_brute_force_integration(t in trace(), start in 0.0..30.0_f64, f in 1e-4..1.0_f64) {
        let bits = bits_for(&t, f);
        let fast = t.transfer_end(start, bits).unwrap();
        let slow = brute_force_end(&t, start, bits, 0.01);
        prop_assert!((fast - slow).abs() <= 1e-6 * slow.max(1.0), "{fast} vs brute force {slow}");
    }

    #[test]
    fn bits_between_is_additive_and_periodic(t in trace(), a in -100.0..1e4_f64, x in 0.0..50.0_f64, y in 0.0..50.0_f64, k in 0u32..1000) {
        let (b, c) = (a + x, a + x + y);
        let whole = t.bits_between(a, c);
        let parts = t.bits_between(a, b) + t.bits_between(b, c);
        prop_assert!(close(whole, parts, 1e-9), "{whole} vs {parts}");
        let periods = t.bits_between(a, a + f64::from(k) * t.duration());
        prop_assert!(close(periods, f64::from(k) * t.total_bits(), 1e-9));
    }

    #[test]
    fn capacity_is_the_derivative(t in trace(), at in 0.0..100.0_f64) {
        // Inside a segment, bits over a short window are capacity × window.
        let h = 1e-7;
        let off = at % t.duration();
        let seg = t.segments().find(|s| off >= s.start && off < s.start + s.duration).unwrap();
        if off + h < seg.start + seg.duration {
            let rate = t.capacity_at(at);
            prop_assert_eq!(rate, seg.bps);
            prop_assert!(close(t.bits_between(at, at + h), rate * h, 1e-6));
        }
    }
}

#[test]
fn zero_capacity_gives_none_only_then() {
    let idle = Trace::from_segments("idle", &[(1.0, 0.0), (2.0, 0.0)]).unwrap();
    assert_eq!(idle.transfer_end(3.0, 1.0), None);
    let busy = Trace::from_segments("busy", &[(1.0, 0.0), (2.0, 1.0)]).unwrap();
    // 2 bits per 3-s period: a million bits end with period 500 000, found in O(log n).
    let end = busy.transfer_end(0.0, 1e6).unwrap();
    assert!((end - 1.5e6).abs() < 1e-6, "{end}");
    // Half a bit more needs the next period's idle second first.
    let end = busy.transfer_end(0.0, 1e6 + 0.5).unwrap();
    assert!((end - (1.5e6 + 1.5)).abs() < 1e-6, "{end}");
}
