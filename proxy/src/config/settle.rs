//! When a changed directory may be applied: once the same contents, with
//! the same modification times, have been read at two polls at least one
//! poll interval apart. Under CPU pressure polls can bunch together (a late
//! tick is followed by an on-time one); two reads a few milliseconds apart
//! could both fall inside one half-written moment, so the spacing is
//! measured, not assumed.

use std::time::{Duration, Instant};

/// What a poll read: the contents' digest and the modification times'.
pub type Reading = ([u8; 32], [u8; 32]);

/// The change waiting to be confirmed.
#[derive(Debug)]
pub struct Settle {
    spacing: Duration,
    pending: Option<(Reading, Instant)>,
}

impl Settle {
    /// Confirms a change only across polls at least `spacing` apart.
    pub fn new(spacing: Duration) -> Self {
        Self {
            spacing,
            pending: None,
        }
    }

    /// Forgets any waiting change (the directory is back to what is served).
    pub fn clear(&mut self) {
        self.pending = None;
    }

    /// Records a reading of a changed directory at `now`; true when it may
    /// be applied.
    pub fn observe(&mut self, reading: Reading, now: Instant) -> bool {
        match self.pending {
            Some((seen, since)) if seen == reading => {
                if now.duration_since(since) >= self.spacing {
                    self.pending = None;
                    return true;
                }
                false
            }
            _ => {
                self.pending = Some((reading, now));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_reading_a_full_interval_apart_is_applied() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let (half, full) = (([1; 32], [1; 32]), ([2; 32], [2; 32]));
        let mut s = Settle::new(ms(200));
        assert!(!s.observe(half, t), "first sight");
        assert!(!s.observe(half, t + ms(5)), "bunched polls prove nothing");
        assert!(!s.observe(full, t + ms(100)), "changed again: start over");
        assert!(!s.observe(full, t + ms(250)), "only 150 ms unchanged");
        assert!(s.observe(full, t + ms(300)), "unchanged for 200 ms");
        assert!(
            !s.observe(full, t + ms(301)),
            "applied: a new change starts over"
        );
    }
}
