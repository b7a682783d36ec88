//! Each replica's cache of cooldowns it has been told about over pub/sub.
//! An account whose cooldown is known here is skipped without a Redis read;
//! the cache only ever skips until the `until` it was told, so a missed
//! message costs a Redis read, never a wrong answer.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::keys::Keys;
use crate::{Candidate, Cause};

/// Most entries kept; expired ones are dropped first when full.
const MAX_ENTRIES: usize = 50_000;

/// Cooldown key -> (until_ms, fingerprint it applies to; empty = any).
#[derive(Default)]
pub(super) struct ColdCache {
    entries: Mutex<HashMap<String, (u64, String)>>,
}

impl ColdCache {
    /// Applies one `<key>|<until_ms>|<fingerprint>` message.
    pub(super) fn apply(&self, message: &str, now: u64) {
        let mut parts = message.splitn(3, '|');
        let (Some(key), Some(until), fp) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let Ok(until) = until.parse::<u64>() else {
            return;
        };
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if until <= now {
            map.remove(key);
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (u, _)| *u > now);
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        map.insert(key.to_owned(), (until, fp.unwrap_or_default().to_owned()));
    }

    /// How long `c` is known to stay cold, and why, if it is.
    pub(super) fn wait(&self, keys: &Keys, c: &Candidate, now: u64) -> Option<(u64, Cause)> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return None;
        }
        keys.cooldowns(c)
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((i, map.get(k)?)))
            .filter(|(_, (until, fp))| *until > now && (fp.is_empty() || **fp == *c.fingerprint))
            .map(|(i, (until, _))| (until - now, Cause::of_scope(i)))
            .max_by_key(|(left, _)| *left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(fp: &str) -> Candidate {
        Candidate {
            account: "a".into(),
            tier: 0,
            model: "m".into(),
            project: Some("p".into()),
            limits: Default::default(),
            fingerprint: fp.into(),
        }
    }

    #[test]
    fn messages_mark_and_clear_cold_scopes() {
        let cache = ColdCache::default();
        let keys = Keys::new("x");
        let [_, model, _, project] = keys.cooldowns(&cand("f"));
        cache.apply(&format!("{model}|5000|"), 1000);
        cache.apply(&format!("{project}|9000|"), 1000);
        assert_eq!(
            cache.wait(&keys, &cand("f"), 1000),
            Some((8000, Cause::RateLimited))
        );
        cache.apply(&format!("{project}|0|"), 1000);
        assert_eq!(
            cache.wait(&keys, &cand("f"), 1000),
            Some((4000, Cause::RateLimited))
        );
        assert_eq!(
            cache.wait(&keys, &cand("f"), 5000),
            None,
            "expired on its own"
        );
        // an account-wide block applies only to the credential it was seen with
        let [wide, ..] = keys.cooldowns(&cand("old"));
        cache.apply(&format!("{wide}|9000|old"), 6000);
        assert_eq!(
            cache.wait(&keys, &cand("old"), 6000),
            Some((3000, Cause::Blocked))
        );
        assert_eq!(cache.wait(&keys, &cand("new"), 6000), None);
        cache.apply("garbage", 1000);
    }
}
