//! Time for the state stores, in milliseconds since the Unix epoch.
//!
//! Replicas must agree on time because they share cooldown and window
//! timestamps, so the stores pass `now` into the shared store instead of
//! each reading its own. The system clock is read once at start and then
//! advanced monotonically, so a wall-clock step never jumps a window. Tests
//! use a manual clock, which drives both stores the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of "now" in milliseconds.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Wall time at start plus monotonic time since.
    System {
        /// Epoch milliseconds at `at`.
        base_ms: u64,
        /// When `base_ms` was read.
        at: Instant,
    },
    /// Set by hand (tests).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The production clock.
    pub fn system() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Clock::System {
            base_ms,
            at: Instant::now(),
        }
    }

    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: u64) -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System { base_ms, at } => {
                base_ms + u64::try_from(at.elapsed().as_millis()).unwrap_or(0)
            }
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance_ms(&self, ms: u64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// Milliseconds per UTC day.
pub const DAY_MS: u64 = 86_400_000;
