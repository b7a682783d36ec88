//! The shape of a log line: one JSON object per line, with the event's
//! fields flattened beside `timestamp`, `level` and `target`, and
//! `"span": {"request_id": …, "name": "request"}` on every line logged while
//! a request is served.
//!
//! Lines are written straight into the output buffer. tracing-subscriber's
//! own JSON format builds a map of `serde_json::Value`s per line and a fresh
//! string for the timestamp, and a span per request costs a JSON string
//! written when it opens and parsed again for every line inside it; heaptrack
//! counted about thirty allocations per request for the one access line.
//! The request id rides in a task-local instead of a span.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `serve` with `id` as the request id of every line it logs.
pub async fn with_request_id<F: Future>(id: String, serve: F) -> F::Output {
    REQUEST_ID.scope(id, serve).await
}

/// JSON lines, fields flattened, with the request id where there is one.
#[derive(Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // events from the `log` crate name their real target in fields
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        // outside a request there is no id (try_with fails) and no member
        if let Ok(written) = REQUEST_ID.try_with(|id| {
            writer.write_str(",\"span\":{\"request_id\":")?;
            string(&mut writer, id)?;
            writer.write_str(",\"name\":\"request\"}")
        }) {
            written?;
        }
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        // the `log` crate's own fields are already in the line's metadata
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = (|| {
            self.out.write_char(',')?;
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| string(out, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity
        self.member(field, |out| match value.is_finite() {
            true => write!(out, "{value}"),
            false => out.write_str("null"),
        });
    }
}

/// Writes `text` as a JSON string.
fn string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what it is given as the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in text.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..i])?;
            match escape {
                "" => write!(self.0, "\\u{b:04x}")?,
                escape => self.0.write_str(escape)?,
            }
            plain = i + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// A subscriber writing JSON lines into `captured`.
    fn subscriber(captured: &Captured) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .json()
            .event_format(JsonLines)
            .with_writer(captured.clone())
            .finish()
    }

    fn capture(log: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(&captured), log);
        lines(&captured)
    }

    #[tokio::test]
    async fn lines_inside_a_request_carry_its_id_and_others_do_not() {
        let captured = Captured::default();
        let _default = tracing::subscriber::set_default(subscriber(&captured));
        tracing::info!(code = 7, "outside");
        // an id a client chose may hold quotes and backslashes
        with_request_id("id-\"quoted\"\\x".to_owned(), async {
            tracing::warn!(status = 502u16, path = "/v1/x", "inside");
        })
        .await;
        let lines = lines(&captured);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "outside");
        assert_eq!(lines[0]["code"], 7);
        assert!(lines[0].get("span").is_none(), "{}", lines[0]);
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["status"], 502);
        assert_eq!(lines[1]["span"]["request_id"], "id-\"quoted\"\\x");
        assert_eq!(lines[1]["span"]["name"], "request");
        assert_eq!(lines[1]["target"], module_path!());
        let stamp = lines[1]["timestamp"].as_str().unwrap();
        assert!(stamp.len() >= 20 && stamp.ends_with('Z'), "{stamp}");
    }

    #[test]
    fn every_kind_of_field_keeps_its_json_type() {
        let error = std::io::Error::other("disk \"full\"");
        let lines = capture(|| {
            tracing::error!(
                text = "tab\there, bell\u{7}, quote \", é",
                shown = %"display\nvalue",
                debugged = ?vec![1, 2],
                negative = -3i64,
                big = u128::MAX,
                yes = true,
                ratio = 0.5f64,
                nan = f64::NAN,
                error = &error as &(dyn std::error::Error + 'static),
                "a {} message", "formatted"
            );
        });
        let line = &lines[0];
        assert_eq!(line["message"], "a formatted message");
        assert_eq!(line["text"], "tab\there, bell\u{7}, quote \", é");
        assert_eq!(line["shown"], "display\nvalue");
        assert_eq!(line["debugged"], "[1, 2]");
        assert_eq!(line["negative"], -3);
        // a number (serde_json reads one this large as a float)
        assert!(line["big"].as_f64().is_some_and(|b| b > 3.4e38), "{line}");
        assert_eq!(line["yes"], true);
        assert_eq!(line["ratio"], 0.5);
        assert!(line["nan"].is_null());
        assert_eq!(line["error"], "disk \"full\"");
        assert_eq!(line["level"], "ERROR");
    }
}
