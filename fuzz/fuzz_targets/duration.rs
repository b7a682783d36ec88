//! Durations as written in resources and flags (`500ms`, `1m30s`, `1.5h`).
//!
//! Besides "no panic": a duration that parses is the sum of its pieces, so
//! writing it back as whole milliseconds parses to the same milliseconds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpool_crds::duration::parse_duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = parse_duration(text) else {
        return;
    };
    let ms = d.as_millis();
    if ms < u128::from(u32::MAX) {
        let again = parse_duration(&format!("{ms}ms")).expect("whole milliseconds parse");
        assert_eq!(again.as_millis(), ms);
    }
});
