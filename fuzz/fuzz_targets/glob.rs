//! Model-name globs from route specs, matched against model names from
//! requests. The input is a pattern and a name separated by the first NUL.
//!
//! Besides "no panic": the greedy matcher agrees with a plain backtracking
//! one, and an exact pattern matches only itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpool_crds::glob::Glob;

fuzz_target!(|data: &[u8]| {
    // the reference is quadratic; model names and patterns are short
    if data.len() > 4096 {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, name) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(glob) = Glob::new(pattern) else {
        return;
    };
    let matched = glob.matches(name);
    assert_eq!(
        matched,
        reference(pattern.as_bytes(), name.as_bytes()),
        "pattern {pattern:?} name {name:?}"
    );
    if glob.is_exact() {
        assert_eq!(matched, pattern == name);
    }
    assert!(glob.matches(&pattern.replace('*', "")));
    let _ = glob.specificity_cmp(&glob);
});

/// `*` matches any run of bytes; everything else matches itself. Dynamic
/// programming over (pattern prefix, name prefix).
fn reference(pattern: &[u8], name: &[u8]) -> bool {
    // row[j]: the pattern so far matches name[..j]
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        for j in 0..=name.len() {
            next[j] = if p == b'*' {
                row[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && row[j - 1] && name[j - 1] == p
            };
        }
        row = next;
    }
    row[name.len()]
}
