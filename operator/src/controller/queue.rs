//! Namespaces waiting for a reconcile, and the backoff of failed ones.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// First and longest retry delay after a failed reconcile.
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures`.
pub fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// Namespaces waiting for a reconcile, each with its due time.
#[derive(Debug, Default)]
pub struct Queue {
    due: BTreeMap<String, Instant>,
}

impl Queue {
    /// Asks for `ns` at `at`, or earlier if it is already due earlier.
    pub fn schedule(&mut self, ns: &str, at: Instant) {
        let slot = self.due.entry(ns.to_owned()).or_insert(at);
        *slot = (*slot).min(at);
    }

    /// When the next namespace is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Takes a namespace due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<String> {
        let ns = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .min_by_key(|(_, at)| **at)
            .map(|(ns, _)| ns.clone())?;
        self.due.remove(&ns);
        Some(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second_to_five_minutes() {
        let secs: Vec<u64> = (1..=11).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn the_queue_keeps_the_earliest_time_and_hands_out_due_namespaces_in_order() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.schedule("b", t0 + Duration::from_secs(5));
        q.schedule("a", t0 + Duration::from_secs(9));
        q.schedule("a", t0 + Duration::from_secs(2));
        q.schedule("b", t0 + Duration::from_secs(60));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(6)).as_deref(), Some("a"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(6)).as_deref(), Some("b"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(6)), None);
    }
}
