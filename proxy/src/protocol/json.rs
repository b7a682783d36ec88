//! A single pass over a JSON body that enforces a nesting limit and a limit
//! on the elements of any array (messages, tools, content parts), and records
//! where each top-level member's value lies, so the pass-through path can
//! replace the `model` value without re-serialising the rest of the body.
//! Full syntax checking is left to serde_json, which parses the same bytes.

use std::ops::Range;

/// The top-level members of a JSON object, as byte ranges of their values.
#[derive(Debug, Default)]
pub struct TopLevel {
    members: Vec<(Range<usize>, Range<usize>)>,
}

impl TopLevel {
    /// The byte range of the value of top-level key `key` (last one wins, as
    /// in serde_json).
    pub fn value_span(&self, body: &[u8], key: &str) -> Option<Range<usize>> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| &body[k.clone()] == key.as_bytes())
            .map(|(_, v)| v.clone())
    }
}

/// Why a body was refused by the scan.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// Deeper than the limit.
    #[error("JSON nesting is deeper than {0} levels")]
    TooDeep(usize),
    /// Not a JSON object at the top.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// An array with more elements than the limit.
    #[error("a JSON array holds more than {0} elements (messages, tools, content parts or inputs)")]
    TooManyElements(usize),
    /// Unbalanced brackets or an unterminated string.
    #[error("the request body is not valid JSON (unbalanced brackets or unterminated string)")]
    Malformed,
}

/// Scans `body`, refusing nesting deeper than `max_depth`.
pub fn scan(body: &[u8], max_depth: usize) -> Result<TopLevel, ScanError> {
    scan_limited(body, max_depth, usize::MAX)
}

/// Scans `body`, refusing nesting deeper than `max_depth` and any array of
/// more than `max_elements` elements.
pub fn scan_limited(
    body: &[u8],
    max_depth: usize,
    max_elements: usize,
) -> Result<TopLevel, ScanError> {
    let mut top = TopLevel::default();
    let mut depth = 0usize;
    // per open bracket: the separators seen so far when it is an array
    let mut arrays: Vec<Option<usize>> = Vec::new();
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return Err(ScanError::NotAnObject);
    }
    // State for recording top-level members.
    let mut pending_key: Option<Range<usize>> = None;
    let mut value_start: Option<usize> = None;
    while i < body.len() {
        let b = body[i];
        match b {
            b'"' => {
                let end = string_end(body, i).ok_or(ScanError::Malformed)?;
                if depth == 1 {
                    if pending_key.is_none() && value_start.is_none() {
                        pending_key = Some(i + 1..end);
                    } else if value_start.is_none() {
                        value_start = Some(i);
                    }
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                if depth == 1 && value_start.is_none() && pending_key.is_some() {
                    value_start = Some(i);
                }
                depth += 1;
                if depth > max_depth {
                    return Err(ScanError::TooDeep(max_depth));
                }
                arrays.push((b == b'[').then_some(0));
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Err(ScanError::Malformed);
                }
                depth -= 1;
                arrays.pop();
                if depth == 0 {
                    finish_member(
                        &mut top,
                        &mut pending_key,
                        &mut value_start,
                        trim_end(body, i),
                    );
                    return if body[i + 1..].iter().all(u8::is_ascii_whitespace) {
                        Ok(top)
                    } else {
                        Err(ScanError::Malformed)
                    };
                }
            }
            b',' if depth == 1 => {
                finish_member(
                    &mut top,
                    &mut pending_key,
                    &mut value_start,
                    trim_end(body, i),
                );
            }
            b',' => {
                if let Some(Some(separators)) = arrays.last_mut() {
                    *separators += 1;
                    // n separators hold n + 1 elements
                    if *separators >= max_elements {
                        return Err(ScanError::TooManyElements(max_elements));
                    }
                }
            }
            b':' => {}
            _ if b.is_ascii_whitespace() => {}
            _ => {
                if depth == 1 && value_start.is_none() && pending_key.is_some() {
                    value_start = Some(i);
                }
            }
        }
        i += 1;
    }
    Err(ScanError::Malformed)
}

fn finish_member(
    top: &mut TopLevel,
    key: &mut Option<Range<usize>>,
    value_start: &mut Option<usize>,
    value_end: usize,
) {
    if let (Some(k), Some(v)) = (key.take(), value_start.take()) {
        top.members.push((k, v..value_end));
    }
}

fn trim_end(body: &[u8], mut end: usize) -> usize {
    while end > 0 && body[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index of the closing quote of the string opening at `start`.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', body.get(i..)?)?;
        if body[at] == b'"' {
            return Some(at);
        }
        i = at + 2;
    }
}

/// Replaces the bytes in `span` with the JSON string `value`.
pub fn replace_string(body: &[u8], span: Range<usize>, value: &str) -> Vec<u8> {
    let quoted = serde_json::Value::from(value).to_string();
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_over_the_element_limit_is_refused_wherever_it_is() {
        let messages = |n: usize| {
            let one = r#"{"role":"user","content":[{"type":"text","text":"a,b"}]}"#;
            format!(r#"{{"model":"m","messages":[{}]}}"#, vec![one; n].join(","))
        };
        assert!(scan_limited(messages(3).as_bytes(), 64, 3).is_ok());
        assert_eq!(
            scan_limited(messages(4).as_bytes(), 64, 3).unwrap_err(),
            ScanError::TooManyElements(3)
        );
        let parts = r#"{"messages":[{"content":[1,2,3,4]}],"tools":[]}"#;
        assert_eq!(
            scan_limited(parts.as_bytes(), 64, 3).unwrap_err(),
            ScanError::TooManyElements(3)
        );
        // commas in strings and objects are not elements
        let object = r#"{"a":{"b":1,"c":2,"d":3,"e":4},"s":"1,2,3,4,5"}"#;
        assert!(scan_limited(object.as_bytes(), 64, 3).is_ok());
    }

    #[test]
    fn finds_top_level_values_only() {
        let body = br#" {"messages":[{"model":"inner"}], "model" : "gpt-4o" ,"n":2} "#;
        let top = scan(body, 8).unwrap();
        let span = top.value_span(body, "model").unwrap();
        assert_eq!(&body[span.clone()], br#""gpt-4o""#);
        assert_eq!(&body[top.value_span(body, "n").unwrap()], b"2");
        let out = replace_string(body, span, "up\"stream");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#" {"messages":[{"model":"inner"}], "model" : "up\"stream" ,"n":2} "#
        );
    }

    #[test]
    fn escaped_quotes_and_brackets_in_strings_do_not_confuse_it() {
        let body = br#"{"a":"x\"}]{[","model":"m"}"#;
        let top = scan(body, 2).unwrap();
        assert_eq!(&body[top.value_span(body, "model").unwrap()], br#""m""#);
    }

    #[test]
    fn depth_limit_and_shape_errors() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10), "]".repeat(10));
        assert_eq!(scan(deep.as_bytes(), 5).unwrap_err(), ScanError::TooDeep(5));
        assert!(scan(deep.as_bytes(), 11).is_ok());
        assert_eq!(scan(b"[1]", 5).unwrap_err(), ScanError::NotAnObject);
        assert_eq!(
            scan(br#"{"a":"open}"#, 5).unwrap_err(),
            ScanError::Malformed
        );
        assert_eq!(scan(br#"{"a":1}}"#, 5).unwrap_err(), ScanError::Malformed);
        assert_eq!(scan(br#"{"a":[1}"#, 5).unwrap_err(), ScanError::Malformed);
    }
}
