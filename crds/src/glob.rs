//! Model-name globs: `*` matches any run of characters (including none), any
//! number of times (`a*b*c`). No other character is special.
//!
//! Specificity, used when several route patterns match one model name:
//! 1. an exact name (no `*`) beats every glob;
//! 2. among globs, more literal (non-`*`) characters wins;
//! 3. then fewer `*`;
//! 4. then the route whose name sorts first, so the choice never depends on
//!    file or API order.

use std::cmp::Ordering;

/// A parsed glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    parts: Vec<String>,
    stars: usize,
}

impl Glob {
    /// Parses a pattern; an empty pattern or `**` is rejected.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.contains("**") {
            return Err(GlobError::DoubleStar);
        }
        if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(GlobError::Whitespace);
        }
        let parts = pattern.split('*').map(str::to_owned).collect::<Vec<_>>();
        Ok(Self {
            pattern: pattern.to_owned(),
            stars: parts.len() - 1,
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when the pattern has no `*`.
    pub fn is_exact(&self) -> bool {
        self.stars == 0
    }

    /// Number of literal characters; the main specificity measure.
    pub fn literal_len(&self) -> usize {
        self.parts.iter().map(|p| p.chars().count()).sum()
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return false,
        };
        if rest.is_empty() {
            return name == first;
        }
        let Some(mut tail) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = match rest.split_last() {
            Some(split) => split,
            None => return false,
        };
        // Greedy left-to-right placement of the middle parts is optimal: taking
        // the earliest occurrence leaves the most room for the rest.
        for part in middle {
            match tail.find(part.as_str()) {
                Some(at) => tail = &tail[at + part.len()..],
                None => return false,
            }
        }
        tail.len() >= last.len() && tail.ends_with(last.as_str())
    }

    /// Orders two patterns by specificity: `Less` means `self` is more specific.
    pub fn specificity_cmp(&self, other: &Glob) -> Ordering {
        other
            .is_exact()
            .cmp(&self.is_exact())
            .then_with(|| other.literal_len().cmp(&self.literal_len()))
            .then_with(|| self.stars.cmp(&other.stars))
    }
}

/// Why a pattern is not a usable glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The empty string.
    #[error("pattern is empty")]
    Empty,
    /// `**` says nothing `*` does not, and is almost always a typo.
    #[error("pattern contains `**`; use a single `*`")]
    DoubleStar,
    /// Model names never contain white space.
    #[error("pattern contains white space or control characters")]
    Whitespace,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob::new(p).unwrap()
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(g("gpt-4o").matches("gpt-4o"));
        assert!(!g("gpt-4o").matches("gpt-4o-mini"));
        assert!(!g("gpt-4o").matches("gpt-4"));
    }

    #[test]
    fn stars_match_any_run_including_empty() {
        assert!(g("claude-*").matches("claude-"));
        assert!(g("claude-*").matches("claude-sonnet-4-5"));
        assert!(!g("claude-*").matches("claud"));
        assert!(g("*").matches(""));
        assert!(g("*-mini").matches("gpt-4o-mini"));
        assert!(!g("*-mini").matches("gpt-4o-mini-2"));
    }

    #[test]
    fn several_stars_backtrack_correctly() {
        assert!(g("a*b*c").matches("abc"));
        assert!(g("a*b*c").matches("axxbyyc"));
        assert!(g("a*b*c").matches("abbbcbc"));
        assert!(!g("a*b*c").matches("acb"));
        assert!(!g("a*b*c").matches("ab"));
        // the last literal must not overlap the first
        assert!(!g("ab*ba").matches("aba"));
        assert!(g("ab*ba").matches("abba"));
        assert!(g("*o*o*").matches("foo"));
        assert!(!g("*o*o*").matches("fo"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("gpt-**"), Err(GlobError::DoubleStar));
        assert_eq!(Glob::new("gpt 4"), Err(GlobError::Whitespace));
    }

    #[test]
    fn exact_beats_glob_then_more_literals_then_fewer_stars() {
        let mut v = [
            g("*"),
            g("gpt-*"),
            g("gpt-4o*"),
            g("gpt-4o"),
            g("g*p*t-4o*"),
        ];
        v.sort_by(|a, b| a.specificity_cmp(b));
        let order: Vec<_> = v.iter().map(Glob::as_str).collect();
        assert_eq!(order, ["gpt-4o", "gpt-4o*", "g*p*t-4o*", "gpt-*", "*"]);
        // equal literal count: fewer stars is more specific
        assert_eq!(g("ab*").specificity_cmp(&g("a*b*")), Ordering::Less);
    }
}
