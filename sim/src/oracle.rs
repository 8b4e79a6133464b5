//! The offline oracle: a hindsight planner that sees the whole trace.
//!
//! **Algorithm.** A beam search over frames whose states are exact simulator states
//! ([`SimState`], cloned): for every frame, every state in the beam is expanded with every
//! decision (local, or `k = 1..N` layers; a frame the CPU is too busy for is skipped, as in the
//! simulator), and the successors are merged by a discretised key — link backlog and CPU backlog
//! at the next capture (in `bucket_s` steps) and whether the radio is still in its tail — keeping
//! the best accumulated utility per key, then the `width` best keys. Because the states are
//! the simulator's own, every interaction is modelled exactly: the FIFO link (a large frame
//! delays the next ones), the CPU (local execution makes the device drop frames), the radio
//! (promotion, tail), the battery (energy weight).
//!
//! **Never worse than an online policy.** The beam is *seeded* with the decision sequences of
//! online policies (their runs in the simulator): each seed is followed alongside the beam as a
//! protected state that is never merged away, and its successors also compete for the beam.
//! The plan returned is the best final state among beam and seeds, so its utility is at least
//! that of every seed — by construction, not by luck (asserted by a proptest).
//!
//! **Exactly achievable.** The plan is a list of decisions, one per frame; [`Replay`] feeds it
//! to the controller and [`crate::simulate`] replays it. The simulator runs the same step code on
//! the same frame sizes, so the replayed utility equals the planned one bit for bit.
//!
//! **How tight.** The beam is a heuristic: merging states by a coarse key may drop a state that
//! would have paid off later, so the plan is a lower bound on the true optimum. The
//! [`crate::bound`] module computes an upper bound (a Lagrangian relaxation of link and CPU
//! capacity); the true optimum lies between the two, and reports give both.

use offload_controller::{Context, Decision, FrameOptions, Policy, Profile};
use serde::{Deserialize, Serialize};

use crate::frames::{FrameSizes, FrameSource};
use crate::simulator::{RunSetup, SimConfig, SimState};
use crate::trace::Trace;

/// Beam-search settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OracleConfig {
    /// States kept per frame (besides the seeds).
    pub width: usize,
    /// Size of the link- and CPU-backlog buckets of the merge key (s).
    pub bucket_s: f64,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            // 8 until 2026-11-26: on UCC and mahimahi (measured profile) 16 finds +1.5 % and
            // +1.0 % more utility and 32 another +0.1-0.6 %, and at 8 one UCC session's plan
            // fell 12 % below 16's after a 0.5 ms change of the cutoff; twice the oracle's time.
            width: 16,
            bucket_s: 0.005,
        }
    }
}

/// A decision per frame, as a compact action: 0 = local (or skipped), `k` = send `k` layers,
/// [`PROBE`]` | k` = local with a `k`-layer probe beside it (online policies' runs replayed as
/// seeds; the beam itself never probes, a probe buys it nothing it does not know).
pub type Schedule = Vec<u8>;

/// The flag of an action that runs locally with a probe beside it.
pub const PROBE: u8 = 0x80;

/// Largest layer count an action holds (`PROBE | 127` would be the seed marker `u8::MAX`).
const MAX_ACTION_LAYERS: u8 = 126;

/// The decision an action stands for.
pub fn action_decision(action: u8) -> Decision {
    match (action & PROBE != 0, action & !PROBE) {
        (false, 0) => Decision::Local,
        (false, k) => Decision::Offload {
            layers: u32::from(k),
        },
        (true, k) => Decision::LocalWithProbe {
            layers: u32::from(k.max(1)),
        },
    }
}

/// The action a decision stands for.
pub fn decision_action(decision: Decision) -> u8 {
    let k = |layers: u32| layers.min(u32::from(MAX_ACTION_LAYERS)) as u8;
    match decision {
        Decision::Local => 0,
        Decision::Offload { layers } => k(layers),
        Decision::LocalWithProbe { layers } => PROBE | k(layers),
    }
}

/// `action` with its layer count limited to the profile's `max_layers`.
fn clamp_action(action: u8, max_layers: u8) -> u8 {
    (action & PROBE) | (action & !PROBE).min(max_layers)
}

/// The oracle's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One action per frame.
    pub schedule: Schedule,
    /// Sum of the frames' utilities along the plan.
    pub total_utility: f64,
    /// Whether the best final state came from a seed rather than the beam.
    pub from_seed: bool,
}

#[derive(Clone)]
struct Node<'t> {
    state: SimState<'t>,
    utility: f64,
    /// Index of this node in the history of its frame.
    hist: u32,
}

struct Candidate<'t> {
    node: Node<'t>,
    key: u64,
    parent: u32,
    action: u8,
}

/// Plans `trace` with `profile` under `config` with a beam of `oracle.width` states, seeded with
/// `seeds` (one action per frame each; shorter seeds are followed as local). Deterministic.
pub fn plan(
    trace: &Trace,
    profile: &Profile,
    config: &SimConfig,
    oracle: &OracleConfig,
    seeds: &[&[u8]],
) -> Plan {
    let sizes = FrameSizes::new(profile, config.seed);
    plan_with(trace, profile, sizes, config, oracle, seeds)
}

/// [`plan`] with the frames' sizes from `sizes`, which must yield the sequence
/// `FrameSizes::new(profile, config.seed)` yields (e.g. a shared [`crate::frames::FrameTable`]).
pub fn plan_with<'t>(
    trace: &'t Trace,
    profile: &Profile,
    mut sizes: impl FrameSource,
    config: &SimConfig,
    oracle: &OracleConfig,
    seeds: &[&[u8]],
) -> Plan {
    let setup = RunSetup::new(trace, profile, config);
    let mut options = FrameOptions::default();
    let n_actions = profile.layers.len().min(usize::from(MAX_ACTION_LAYERS)) + 1;
    let width = oracle.width.max(1);
    let bucket = oracle.bucket_s.max(1e-6);
    let start = Node {
        state: SimState::new(trace, config),
        utility: 0.0,
        hist: 0,
    };
    // History: for every frame, the (parent, action) of each node alive after it.
    let mut parents: Vec<u32> = Vec::new();
    let mut actions: Vec<u8> = Vec::new();
    let mut offsets: Vec<usize> = Vec::with_capacity(setup.n_frames as usize + 1);
    let mut beam: Vec<Node> = vec![start.clone()];
    let mut seeded: Vec<Node> = seeds.iter().map(|_| start.clone()).collect();
    let mut cands: Vec<Candidate> = Vec::with_capacity((width + seeds.len()) * n_actions);
    let mut order: Vec<usize> = Vec::new();
    let mut keys: Vec<u64> = Vec::with_capacity(width);
    let mut ranked: Vec<u128> = Vec::new();
    let mut next_seeded: Vec<Node> = Vec::with_capacity(seeds.len());

    for i in 0..setup.n_frames {
        let frame_sizes = sizes.next_frame();
        setup.refill_options(profile, i, frame_sizes, &mut options);
        let next_capture = setup.captured(i + 1);
        let key_of = |s: &SimState| -> u64 {
            let link = ((s.link_free_at() - next_capture).max(0.0) / bucket).min(65535.0) as u64;
            let cpu = ((s.cpu_free_at() - next_capture).max(0.0) / bucket).min(65535.0) as u64;
            let warm = s
                .radio_state()
                .last_active_end
                .is_some_and(|e| next_capture - e <= setup.radio.tail_s);
            // Frames waiting for a fallback hold CPU time and utility not yet settled.
            let waiting = s.fallbacks_waiting() as u64;
            (waiting << 33) | (link << 17) | (cpu << 1) | u64::from(warm)
        };
        cands.clear();
        next_seeded.clear();
        // A successor becomes a beam candidate, and also the next seeded node when it follows
        // its seed's schedule.
        let mut push = |succ: Node<'t>, parent: usize, action: u8, follows_seed: bool| {
            if follows_seed {
                next_seeded.push(Node {
                    hist: parent as u32,
                    ..succ.clone()
                });
            }
            cands.push(Candidate {
                key: key_of(&succ.state),
                node: succ,
                parent: parent as u32,
                action,
            });
        };
        // Nodes are numbered beam first, then seeds, in this frame's history.
        let all = beam.iter().chain(seeded.iter());
        for (index, node) in all.enumerate() {
            let seed_action = index
                .checked_sub(beam.len())
                .map(|s| seeds[s].get(i as usize).copied().unwrap_or(0));
            let mut base = node.state.clone();
            // Fallbacks that end now settle utility accounted earlier as misses.
            let mut settled = node.utility;
            let picked_up = base.begin(&setup, i, &mut (), |f| settled += f.gain);
            if SimState::is_skipped(&setup, i, picked_up) {
                let u = base.skipped_utility(&setup);
                let succ = Node {
                    state: base,
                    utility: settled + u,
                    hist: 0,
                };
                push(succ, index, 0, seed_action.is_some());
                continue;
            }
            let decided_at = picked_up + setup.encoder_time;
            // Seeds are only followed, not expanded: the beam does the exploring.
            let seed_action = seed_action.map(|s| clamp_action(s, n_actions as u8 - 1));
            let expanded = match seed_action {
                Some(s) => s..=s,
                None => 0..=n_actions as u8 - 1,
            };
            for action in expanded {
                let mut state = base.clone();
                let out = state.commit(
                    &setup,
                    &options,
                    decided_at,
                    action_decision(action),
                    &mut (),
                );
                let succ = Node {
                    state,
                    utility: settled + out.utility,
                    hist: 0,
                };
                push(succ, index, action, seed_action == Some(action));
            }
        }
        // Best per key, then the best `width` keys; ties broken by candidate order. In the
        // order of (utility descending, candidate order) the first candidate of each key is its
        // best, and these firsts come best key first: one sort and a scan that stops at `width`
        // keys (a linear search among the kept keys: the beam is a handful of states).
        // Sorted as plain integers: the utility's `total_cmp` rank, inverted, above the
        // candidate number.
        ranked.clear();
        ranked.extend(
            cands.iter().enumerate().map(|(c, cand)| {
                (u128::from(!total_order_bits(cand.node.utility)) << 64) | c as u128
            }),
        );
        ranked.sort_unstable();
        keys.clear();
        order.clear();
        for &r in &ranked {
            if order.len() == width {
                break;
            }
            let c = r as u64 as usize;
            let key = cands[c].key;
            if !keys.contains(&key) {
                keys.push(key);
                order.push(c);
            }
        }
        offsets.push(parents.len());
        beam.clear();
        for &c in &order {
            let cand = &cands[c];
            beam.push(Node {
                hist: 0,
                ..cand.node.clone()
            });
            parents.push(cand.parent);
            actions.push(cand.action);
        }
        seeded.clear();
        for node in next_seeded.drain(..) {
            let parent = node.hist;
            seeded.push(node);
            parents.push(parent);
            // The action is recovered from the seed itself when backtracking.
            actions.push(u8::MAX);
        }
    }
    offsets.push(parents.len());

    // Frames still waiting for a fallback settle when the run ends.
    for node in beam.iter_mut().chain(seeded.iter_mut()) {
        let mut settled = node.utility;
        node.state.finish(&setup, &mut (), |f| settled += f.gain);
        node.utility = settled;
    }
    // The best final node; ties go to the beam.
    let finals = beam.iter().chain(seeded.iter());
    let (best, best_node) = finals
        .enumerate()
        .fold(None::<(usize, &Node)>, |acc, (i, n)| match acc {
            Some((_, b)) if b.utility >= n.utility => acc,
            _ => Some((i, n)),
        })
        .map_or((0, None), |(i, n)| (i, Some(n)));
    let total_utility = best_node.map_or(0.0, |n| n.utility);
    let from_seed = best >= beam.len();
    let mut schedule = vec![0u8; setup.n_frames as usize];
    let mut index = best;
    for f in (0..setup.n_frames as usize).rev() {
        let at = offsets[f] + index;
        let action = actions[at];
        let parent = parents[at] as usize;
        schedule[f] = if action == u8::MAX {
            // A seed node: its action is the seed's own.
            let s = index - (offsets[f + 1] - offsets[f] - seeds.len());
            seeds[s]
                .get(f)
                .copied()
                .map_or(0, |a| clamp_action(a, n_actions as u8 - 1))
        } else {
            action
        };
        index = parent;
    }
    Plan {
        schedule,
        total_utility,
        from_seed,
    }
}

/// `x`'s bits mapped to an unsigned integer in the order of `f64::total_cmp`.
#[inline]
fn total_order_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    // Negative values: all bits flipped (larger magnitude = smaller); others: the sign set.
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Replays a schedule through the controller: the oracle as a [`Policy`] of the simulator.
#[derive(Debug, Clone)]
pub struct Replay {
    schedule: Schedule,
}

impl Replay {
    /// Replays `schedule` (frames beyond it run locally).
    pub fn new(schedule: Schedule) -> Self {
        Replay { schedule }
    }
}

impl Policy for Replay {
    fn name(&self) -> &str {
        "oracle"
    }

    fn observes_frame_done(&self) -> bool {
        false
    }

    fn reads_throughput_estimate(&self) -> bool {
        false
    }

    fn decide(&mut self, frame: &FrameOptions, _ctx: &Context<'_>) -> Decision {
        action_decision(
            self.schedule
                .get(frame.frame as usize)
                .copied()
                .unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_order_bits_sort_like_total_cmp() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            0.25,
            1.0,
            1e300,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in xs {
            for b in xs {
                assert_eq!(
                    total_order_bits(a).cmp(&total_order_bits(b)),
                    a.total_cmp(&b),
                    "{a} {b}"
                );
            }
        }
    }
}
