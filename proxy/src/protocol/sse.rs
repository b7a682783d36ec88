//! An incremental Server-Sent Events parser: LF, CRLF and CR line endings,
//! `data:` with or without a space, events split anywhere across reads.
//! It only reads; the pass-through path forwards the original bytes.

/// One event: its `event:` name (if any) and its joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Feeds bytes in, gets whole events out.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    after_cr: bool,
    current: Event,
    has_data: bool,
    max_line: usize,
    overflow: bool,
}

impl Parser {
    /// A parser that refuses a line, or an event (its data lines so far and
    /// the line being read), longer than `max` bytes, so what it buffers for
    /// one stream stays under `max` whatever the upstream sends.
    pub fn new(max: usize) -> Self {
        Self {
            max_line: max,
            ..Self::default()
        }
    }

    /// Whether a line or an event ran past the limit (the stream should be
    /// failed).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// True between events: nothing of a line or an event is pending, so the
    /// bytes fed so far end on an event boundary.
    pub fn at_boundary(&self) -> bool {
        self.line.is_empty() && !self.has_data && self.current.event.is_none()
    }

    /// Parses `chunk`, appending finished events to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) {
        while !chunk.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', chunk) {
                Some(at) => {
                    self.push_line_bytes(&chunk[..at]);
                    self.after_cr = chunk[at] == b'\r';
                    self.end_line(out);
                    chunk = &chunk[at + 1..];
                }
                None => {
                    self.push_line_bytes(chunk);
                    return;
                }
            }
        }
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        let pending = self.line.len() + self.current.data.len();
        let room = self.max_line.saturating_sub(pending);
        if bytes.len() > room {
            self.overflow = true;
        }
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self, out: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data || self.current.event.is_some() {
                out.push(std::mem::take(&mut self.current));
            }
            self.has_data = false;
            return;
        }
        if line.first() == Some(&b':') {
            return; // comment
        }
        let (field, value) = match memchr::memchr(b':', &line) {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.current.event = Some(value.into_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn every_line_ending_and_optional_space() {
        for text in [
            "event: a\ndata: 1\n\ndata:2\n\n",
            "event: a\r\ndata: 1\r\n\r\ndata:2\r\n\r\n",
            "event: a\rdata: 1\r\rdata:2\r\r",
        ] {
            let events = parse_all(&[text.as_bytes()]);
            assert_eq!(
                events,
                [
                    Event {
                        event: Some("a".into()),
                        data: "1".into()
                    },
                    Event {
                        event: None,
                        data: "2".into()
                    }
                ],
                "{text:?}"
            );
        }
    }

    #[test]
    fn events_split_at_every_byte_including_inside_crlf() {
        let text = b"data: {\"x\":1}\r\n\r\n: comment\r\ndata: a\r\ndata: b\r\n\r\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        let events = parse_all(&chunks);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "{\"x\":1}");
        assert_eq!(events[1].data, "a\nb");
    }

    #[test]
    fn an_openai_chat_stream_parses_to_its_chunks() {
        let text = concat!(
            "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let events = parse_all(&[text.as_bytes()]);
        assert_eq!(events.len(), 4);
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
        for e in &events[..events.len() - 1] {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
        }
    }

    #[test]
    fn overlong_lines_are_flagged() {
        let mut p = Parser::new(4);
        let mut out = Vec::new();
        p.feed(b"data: 123456\n\n", &mut out);
        assert!(p.overflowed());
    }

    #[test]
    fn an_event_of_many_short_lines_is_bounded_too() {
        let mut p = Parser::new(64);
        let mut out = Vec::new();
        for _ in 0..15 {
            p.feed(b"data: abc\n", &mut out);
        }
        assert!(!p.overflowed(), "15 lines of 3 bytes fit in 64");
        for _ in 0..10 {
            p.feed(b"data: abc\n", &mut out);
        }
        assert!(
            p.overflowed(),
            "an event that never ends must not grow without bound"
        );
        assert!(out.is_empty());
    }
}
