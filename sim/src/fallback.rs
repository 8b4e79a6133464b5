//! The local fallback: the device still holds an offloaded frame's features, and runs the local
//! path for it (if that can still finish by the deadline) when it learns that the offload is
//! failing: when nothing at all has come back from the server a round trip and a slack after
//! sending ([`offload_controller::silence_check_at`]: the uplink is silent), or when the
//! server's empty report arrives (none of the layers arrived by the cutoff; a round trip after
//! it).
//!
//! When the report arrives the CPU may be busy with newer frames, so the frame waits in a
//! [`FallbackQueue`] until the simulator next picks up work ([`crate::SimState::begin`]), and
//! goes before any newer frame: it is the oldest work and the nearest deadline. The queue lives
//! in the cloneable simulator state, so it is a small inline array, not a heap allocation.

/// How many frames may wait at once. A frame waits from its decision to its silence check or
/// empty report (at most the deadline less the local path's time), so a few frames at camera
/// rates; one that finds the queue full is not rescued (the CPU could not have run them all in
/// time anyway: each fallback takes the whole local path).
const CAPACITY: usize = 4;

/// An offloaded frame that is failing, until the device learns so.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Waiting {
    /// The frame.
    pub frame: u64,
    /// When the device learns the offload is failing (trace time).
    pub known_at: f64,
    /// When the offload's own result arrives, if it does by the deadline (a silent start can
    /// still end in time when the link comes back): the frame keeps it if the local path
    /// cannot run in time.
    pub result_at: Option<f64>,
    /// The offload's accuracy, if it arrives in time.
    pub accuracy: f64,
    /// Energy already spent on the frame: encoder, coding and radio (J).
    pub energy_j: f64,
    /// Battery level when the frame was decided (its utility's energy weight).
    pub battery_level: f64,
    /// The frame's utility as first accounted (the offload's outcome).
    pub utility: f64,
}

/// Frames waiting for the device to learn their offload is failing, in that order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct FallbackQueue {
    items: [Waiting; CAPACITY],
    len: u8,
}

impl FallbackQueue {
    /// Whether no frame is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frames waiting.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether `frame` is waiting.
    pub fn contains(&self, frame: u64) -> bool {
        self.items[..self.len()].iter().any(|w| w.frame == frame)
    }

    /// Adds a frame, keeping the queue ordered by `known_at` (stable among equal times).
    /// Returns `false`, leaving the queue unchanged, when it is full.
    pub fn push(&mut self, waiting: Waiting) -> bool {
        let n = self.len();
        if n == CAPACITY {
            return false;
        }
        let at = self.items[..n]
            .iter()
            .rposition(|w| w.known_at <= waiting.known_at)
            .map_or(0, |p| p + 1);
        self.items.copy_within(at..n, at + 1);
        self.items[at] = waiting;
        self.len += 1;
        true
    }

    /// The frame whose report arrives first.
    #[inline]
    pub fn front(&self) -> Option<&Waiting> {
        self.items[..self.len()].first()
    }

    /// Removes and returns the frame whose report arrives first.
    pub fn pop_front(&mut self) -> Option<Waiting> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let first = self.items[0];
        self.items.copy_within(1..n, 0);
        self.len -= 1;
        Some(first)
    }
}

/// How a frame that waited for its local fallback ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FallbackOutcome {
    /// The frame.
    pub frame: u64,
    /// Whether the local path ran; if not (it could not have finished by the deadline), the
    /// frame keeps the offload's outcome.
    pub ran: bool,
    /// When the frame's result was ready, if by the deadline.
    pub result_at: Option<f64>,
    /// Accuracy delivered (0 when missed).
    pub accuracy: f64,
    /// The frame's energy, the fallback included (J).
    pub energy_j: f64,
    /// The frame's utility now.
    pub utility: f64,
    /// `utility` less the utility first accounted for the frame.
    pub gain: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(frame: u64, known_at: f64) -> Waiting {
        Waiting {
            frame,
            known_at,
            ..Waiting::default()
        }
    }

    #[test]
    fn pops_in_report_order_and_refuses_when_full() {
        let mut q = FallbackQueue::default();
        assert!(q.push(waiting(1, 0.3)));
        assert!(q.push(waiting(2, 0.1)));
        assert!(q.push(waiting(3, 0.3)));
        assert!(q.push(waiting(4, 0.2)));
        assert!(!q.push(waiting(5, 0.0)), "a fifth frame does not fit");
        assert!(q.contains(3) && !q.contains(5));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_front().map(|w| w.frame)).collect();
        assert_eq!(
            order,
            vec![2, 4, 1, 3],
            "by report time, equal times in push order"
        );
        assert!(q.is_empty() && q.front().is_none());
    }
}
