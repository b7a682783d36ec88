//! The shape of a log line: tracing-subscriber's JSON, one object per line,
//! with `"span": {"request_id": …, "name": "request"}` on every line logged
//! while a request is served.
//!
//! The request id travels in a task-local rather than a tracing span. A
//! span's fields are written to a fresh JSON string when it opens and parsed
//! back into a map for every line inside it: about twenty allocations per
//! request for one field the gateway already holds as text.

use std::cell::RefCell;
use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `serve` with `id` as the request id of every line it logs.
pub async fn with_request_id<F: Future>(id: String, serve: F) -> F::Output {
    REQUEST_ID.scope(id, serve).await
}

/// JSON lines, events flattened, with the request id where there is one.
pub struct JsonLines {
    inner: Format<Json, SystemTime>,
}

impl Default for JsonLines {
    fn default() -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        }
    }
}

thread_local! {
    /// A line being formatted, reused so a line costs no allocation.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let with_id = REQUEST_ID.try_with(|id| {
            LINE.with(|line| match line.try_borrow_mut() {
                Ok(mut line) => {
                    line.clear();
                    self.append(ctx, &mut line, &mut writer, event, id)
                }
                // a line logged while formatting one (never expected)
                Err(_) => self.append(ctx, &mut String::new(), &mut writer, event, id),
            })
        });
        match with_id {
            Ok(done) => done,
            Err(_) => self.inner.format_event(ctx, writer, event),
        }
    }
}

impl JsonLines {
    /// Formats the line into `line`, then writes it with the id added as
    /// the object's last member.
    fn append<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        line: &mut String,
        writer: &mut Writer<'_>,
        event: &Event<'_>,
        id: &str,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'w> FormatFields<'w> + 'static,
    {
        self.inner.format_event(ctx, Writer::new(line), event)?;
        let object = line.trim_end();
        let Some(open) = object.strip_suffix('}') else {
            return writer.write_str(line);
        };
        writer.write_str(open)?;
        writer.write_str(",\"span\":{\"request_id\":\"")?;
        write_escaped(writer, id)?;
        writer.write_str("\",\"name\":\"request\"}}\n")
    }
}

/// Writes `text` as the inside of a JSON string.
fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
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

    #[tokio::test]
    async fn lines_inside_a_request_carry_its_id_and_others_do_not() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .event_format(JsonLines::default())
            .with_writer(captured.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
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
        assert!(lines[1]["timestamp"].is_string());
    }
}
