//! When a changed directory may be applied: once the same contents, with
//! the same modification times, have been read at two polls at least one
//! poll interval apart. Under CPU pressure polls can bunch together (a late
//! tick is followed by an on-time one); two reads a few milliseconds apart
//! could both fall inside one half-written moment, so the spacing is
//! measured, not assumed. It is measured between the reads themselves (the
//! end of the first and the start of the second), not when the watcher got
//! round to looking at them: a watcher that waits for the CPU after a read
//! must not count that wait as time the directory stood still.

use std::time::{Duration, Instant};

/// What a poll read: the contents' digest and the modification times'.
pub type Reading = ([u8; 32], [u8; 32]);

/// The change waiting to be confirmed.
#[derive(Debug)]
pub struct Settle {
    spacing: Duration,
    /// The waiting reading and when the read that saw it ended.
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

    /// Records a reading of a changed directory by a read that ran from
    /// `started` to `ended`; true when it may be applied.
    pub fn observe(&mut self, reading: Reading, started: Instant, ended: Instant) -> bool {
        match self.pending {
            Some((seen, since)) if seen == reading => {
                if started.saturating_duration_since(since) >= self.spacing {
                    self.pending = None;
                    return true;
                }
                false
            }
            _ => {
                self.pending = Some((reading, ended));
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
        // a read taking 1 ms at each of these offsets
        let at = |offset: u64| (t + ms(offset), t + ms(offset + 1));
        let mut s = Settle::new(ms(200));
        let (a, b) = at(0);
        assert!(!s.observe(half, a, b), "first sight");
        let (a, b) = at(5);
        assert!(!s.observe(half, a, b), "bunched polls prove nothing");
        let (a, b) = at(100);
        assert!(!s.observe(full, a, b), "changed again: start over");
        let (a, b) = at(250);
        assert!(!s.observe(full, a, b), "only 149 ms unchanged");
        let (a, b) = at(301);
        assert!(s.observe(full, a, b), "unchanged for 200 ms");
        let (a, b) = at(302);
        assert!(!s.observe(full, a, b), "applied: a new change starts over");
    }

    #[test]
    fn time_spent_waiting_after_a_read_does_not_count_as_stillness() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let half = ([1; 32], [1; 32]);
        let mut s = Settle::new(ms(200));
        // the first read ends at 50 ms; the watcher only looks at it much
        // later, but what counts is when the reads ran
        assert!(!s.observe(half, t, t + ms(50)));
        assert!(
            !s.observe(half, t + ms(240), t + ms(400)),
            "190 ms between the reads: too short, however late the second ended"
        );
        assert!(s.observe(half, t + ms(460), t + ms(461)));
    }
}
