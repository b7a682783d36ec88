//! Completions waiting to reach Redis. A request's completion is not a call
//! of its own: it waits here, per namespace, and rides in front of the
//! replica's next admission (admit.lua applies it first), so at load a
//! request costs one round trip. What no admission carries within
//! the linger ([`DEFAULT_LINGER`] unless set) goes in one call of its own
//! with everything else waiting;
//! an outcome other replicas must learn at once (a cooldown, a failure)
//! goes at once.
//!
//! Completions are sealed into groups, each with a marker key the script
//! sets when it applies the group. A call whose answer is lost (a timeout,
//! Redis gone) gives its groups back to be sent again, and a group that did
//! arrive the first time is skipped by its marker: nothing is applied twice,
//! and nothing is dropped while Redis is away, up to [`MAX_WAITING`]
//! completions per namespace (beyond that the oldest are dropped: their
//! leases expire by themselves, as a crashed replica's do).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::keys::Keys;

/// How long a completion waits for an admission to carry it, by default.
pub(super) const DEFAULT_LINGER: Duration = Duration::from_millis(10);
/// Completions kept per namespace while Redis cannot take them.
pub(super) const MAX_WAITING: usize = 100_000;
/// Completions an admission carries at most: after an outage, admissions
/// stay small while the backlog drains.
pub(super) const CARRY: usize = 64;
/// Completions a call of their own sends at most, so a backlog never goes
/// in one call that would hold Redis up.
pub(super) const PER_CALL: usize = 512;
/// How long a group's marker lasts, and so how long it may be resent.
pub(super) const MARKER_TTL_MS: u64 = 3_600_000;

/// One completion: its keys and its JSON arguments (complete_one.lua).
pub(super) struct Item {
    pub(super) keys: Vec<String>,
    pub(super) args: String,
}

/// Completions applied together, once.
pub(super) struct Group {
    pub(super) marker: String,
    pub(super) items: Vec<Item>,
    sealed: Instant,
}

#[derive(Default)]
struct Queue {
    open: Vec<Item>,
    open_since: Option<Instant>,
    sealed: VecDeque<Group>,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty()
    }

    fn waiting(&self) -> usize {
        self.open.len() + self.sealed.iter().map(|g| g.items.len()).sum::<usize>()
    }
}

/// Every namespace's waiting completions.
pub(super) struct Outbox {
    /// This replica's name in markers.
    replica: String,
    groups: AtomicU64,
    queues: Mutex<HashMap<String, Queue>>,
    wake: Notify,
    overflowing: AtomicBool,
    linger_us: AtomicU64,
}

impl Outbox {
    pub(super) fn new() -> Self {
        // unique per process: markers of two replicas never collide
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Self {
            replica: format!("{:016x}", h.finish()),
            groups: AtomicU64::new(0),
            queues: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            overflowing: AtomicBool::new(false),
            linger_us: AtomicU64::new(micros(DEFAULT_LINGER)),
        }
    }

    /// How long a completion waits for an admission to carry it.
    pub(super) fn linger(&self) -> Duration {
        Duration::from_micros(self.linger_us.load(Ordering::Relaxed))
    }

    pub(super) fn set_linger(&self, linger: Duration) {
        self.linger_us.store(micros(linger), Ordering::Relaxed);
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        // a panic while holding the lock cannot leave a queue half-changed
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a completion of `namespace`.
    pub(super) fn push(&self, namespace: &str, item: Item) {
        {
            let mut queues = self.queues();
            let q = match queues.get_mut(namespace) {
                Some(q) => q,
                None => queues.entry(namespace.to_owned()).or_default(),
            };
            q.open.push(item);
            q.open_since.get_or_insert_with(Instant::now);
        }
        self.wake.notify_one();
    }

    /// What waits in `namespace`, oldest first, up to about `limit`
    /// completions (a group is never split; open completions are sealed
    /// into a new group); empty when nothing waits.
    pub(super) fn take(&self, keys: &Keys, namespace: &str, limit: usize) -> Vec<Group> {
        let mut queues = self.queues();
        let Some(q) = queues.get_mut(namespace) else {
            return Vec::new();
        };
        let mut groups = Vec::new();
        let mut taken = 0;
        while let Some(next) = q.sealed.front() {
            if taken > 0 && taken + next.items.len() > limit {
                break;
            }
            taken += next.items.len();
            groups.extend(q.sealed.pop_front());
        }
        if !q.open.is_empty() && taken < limit {
            let n = (limit - taken).min(q.open.len());
            let id = self.groups.fetch_add(1, Ordering::Relaxed);
            groups.push(Group {
                marker: keys.done(&self.replica, id),
                items: q.open.drain(..n).collect(),
                sealed: Instant::now(),
            });
            if q.open.is_empty() {
                q.open_since = None;
            }
        }
        groups
    }

    /// Returns groups whose call got no answer, to be sent again; drops
    /// the oldest beyond [`MAX_WAITING`] and any too old to resend safely.
    pub(super) fn give_back(&self, namespace: &str, groups: Vec<Group>) {
        let mut dropped = 0;
        {
            let mut queues = self.queues();
            let q = queues.entry(namespace.to_owned()).or_default();
            for g in groups.into_iter().rev() {
                q.sealed.push_front(g);
            }
            let max_age = Duration::from_millis(MARKER_TTL_MS / 2);
            while let Some(oldest) = q.sealed.front() {
                if q.waiting() <= MAX_WAITING && oldest.sealed.elapsed() < max_age {
                    break;
                }
                dropped += q.sealed.pop_front().map_or(0, |g| g.items.len());
            }
        }
        if dropped > 0 && !self.overflowing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                namespace,
                dropped,
                "shared state away too long: dropping the oldest waiting completions; their leases expire by themselves"
            );
        }
    }

    /// Records that a call delivered (the next overflow is logged again).
    pub(super) fn delivered(&self) {
        self.overflowing.store(false, Ordering::Relaxed);
    }

    /// Namespaces with something to send now: a completion that waited
    /// the linger for an admission, or groups to resend. Also whether
    /// anything waits at all.
    pub(super) fn due(&self) -> (Vec<String>, bool) {
        let linger = self.linger();
        let queues = self.queues();
        let due = queues
            .iter()
            .filter(|(_, q)| {
                !q.sealed.is_empty() || q.open_since.is_some_and(|t| t.elapsed() >= linger)
            })
            .map(|(ns, _)| ns.clone())
            .collect();
        let any = queues.values().any(|q| !q.is_empty());
        (due, any)
    }

    /// Every namespace with something waiting.
    pub(super) fn namespaces(&self) -> Vec<String> {
        self.queues()
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// Waits until something is queued.
    pub(super) async fn queued(&self) {
        self.wake.notified().await;
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The groups as complete_groups takes them (their items are JSON already).
pub(super) fn groups_json(groups: &[Group]) -> String {
    let mut out = String::from("[");
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"ttl\":");
        out.push_str(&MARKER_TTL_MS.to_string());
        out.push_str(",\"items\":[");
        for (j, item) in g.items.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&item.args);
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u64) -> Item {
        Item {
            keys: vec![format!("k{n}")],
            args: format!("{{\"lease\":{n}}}"),
        }
    }

    #[test]
    fn a_group_given_back_is_sent_again_under_its_own_marker_before_newer_ones() {
        let (outbox, keys) = (Outbox::new(), Keys::new("ns"));
        outbox.push("ns", item(1));
        let first = outbox.take(&keys, "ns", PER_CALL);
        assert_eq!(first.len(), 1);
        let marker = first[0].marker.clone();
        outbox.give_back("ns", first);
        outbox.push("ns", item(2));
        let again = outbox.take(&keys, "ns", PER_CALL);
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].marker, marker, "resent as the same group");
        assert_ne!(again[1].marker, marker, "new completions: a new group");
        assert_eq!(
            groups_json(&again),
            format!(
                "[{{\"ttl\":{t},\"items\":[{{\"lease\":1}}]}},{{\"ttl\":{t},\"items\":[{{\"lease\":2}}]}}]",
                t = MARKER_TTL_MS
            )
        );
        assert!(outbox.take(&keys, "ns", PER_CALL).is_empty(), "taken once");
    }

    #[test]
    fn beyond_the_bound_the_oldest_are_dropped() {
        let (outbox, keys) = (Outbox::new(), Keys::new("ns"));
        for n in 0..3 {
            outbox.push("ns", item(n));
            let g = outbox.take(&keys, "ns", PER_CALL);
            outbox.give_back("ns", g);
        }
        let mut q = outbox.take(&keys, "ns", PER_CALL);
        assert_eq!(q.len(), 3);
        // fill the newest group up to the bound: the two older go
        q[2].items
            .extend((0..MAX_WAITING - 1).map(|n| item(n as u64)));
        let newest = q[2].marker.clone();
        outbox.give_back("ns", q);
        let left = outbox.take(&keys, "ns", PER_CALL);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].marker, newest);
    }

    #[test]
    fn a_backlog_leaves_in_calls_of_bounded_size_oldest_first() {
        let (outbox, keys) = (Outbox::new(), Keys::new("ns"));
        for n in 0..1000 {
            outbox.push("ns", item(n));
        }
        let first = outbox.take(&keys, "ns", CARRY);
        assert_eq!(first.iter().map(|g| g.items.len()).sum::<usize>(), CARRY);
        assert_eq!(first[0].items[0].args, "{\"lease\":0}");
        // still due: the rest waits for the next call
        assert!(outbox.due().1);
        let mut sent = CARRY;
        loop {
            let next = outbox.take(&keys, "ns", PER_CALL);
            if next.is_empty() {
                break;
            }
            let n: usize = next.iter().map(|g| g.items.len()).sum();
            assert!(n <= PER_CALL);
            assert_eq!(next[0].items[0].args, format!("{{\"lease\":{sent}}}"));
            sent += n;
        }
        assert_eq!(sent, 1000);
        assert!(!outbox.due().1, "nothing left");
    }

    #[test]
    fn only_completions_that_waited_the_linger_are_due() {
        let outbox = Outbox::new();
        outbox.push("ns", item(1));
        let (due, any) = outbox.due();
        assert!(due.is_empty() && any, "fresh: an admission may carry it");
        std::thread::sleep(DEFAULT_LINGER);
        assert_eq!(outbox.due().0, vec!["ns".to_owned()]);
    }
}
