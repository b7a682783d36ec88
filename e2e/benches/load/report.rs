//! The bench's results: one row per path and mode, printed as a markdown
//! table and written with the run's context as markdown and JSON under
//! `target/bench/`.

use std::fmt::Write as _;

use serde::Serialize;

/// Figures for one path in one mode.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// whole or stream.
    pub mode: String,
    /// What was measured.
    pub path: String,
    /// Requests per second at concurrency 32 and 128.
    pub rps_32: f64,
    /// Requests per second at concurrency 128.
    pub rps_128: f64,
    /// CPU µs per request of the measured process over both saturation runs
    /// (none for the mock direct: it runs inside the bench).
    pub cpu_us: Option<f64>,
    /// Latency at the fixed rate: p50, p90, p99, p99.9 (ms).
    pub paced_ms: [f64; 4],
    /// Streams at the fixed rate: time to first content, p50 and p99 (ms).
    pub first_content_ms: Option<[f64; 2]>,
    /// Streams of 50 events: µs per event after the first content (p50).
    pub per_event_us: Option<f64>,
    /// Failed requests in all runs of this row.
    pub errors: usize,
}

/// Replicas sharing one Redis, at saturation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScaleRow {
    /// Proxies driven together.
    pub replicas: usize,
    /// Requests per second through all of them.
    pub rps: f64,
    /// Their CPU per request, summed.
    pub proxy_cpu_us: f64,
    /// Redis's CPU per request.
    pub redis_cpu_us: f64,
    /// Failed requests.
    pub errors: usize,
}

/// The whole run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// When, where and how.
    pub context: Vec<(String, String)>,
    /// One per path and mode.
    pub rows: Vec<Row>,
    /// Memory, Redis and other single figures, with their unit in the name.
    pub figures: Vec<(String, String)>,
    /// Replicas sharing one Redis.
    pub scale: Vec<ScaleRow>,
}

fn pct(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.0}%", 100.0 * a / b)
    } else {
        "-".into()
    }
}

impl Report {
    /// The markdown: context, the absolute table, the ratios to the bare
    /// forwarder of the same mode, then the single figures.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        for (k, v) in &self.context {
            let _ = writeln!(md, "- {k}: {v}");
        }
        md.push_str("\n| mode | path | req/s c=32 | req/s c=128 | CPU µs/req | p50 | p90 | p99 | p99.9 ms at the fixed rate | first content p50 / p99 ms | µs/event | errors |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let [p50, p90, p99, p999] = r.paced_ms;
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | {} | {p50:.2} | {p90:.2} | {p99:.2} | {p999:.2} | {} | {} | {} |",
                r.mode,
                r.path,
                r.rps_32,
                r.rps_128,
                r.cpu_us.map_or("-".into(), |c| format!("{c:.0}")),
                r.first_content_ms
                    .map_or("-".into(), |[a, b]| format!("{a:.2} / {b:.2}")),
                r.per_event_us.map_or("-".into(), |e| format!("{e:.1}")),
                r.errors
            );
        }
        md.push_str("\nAgainst the bare forwarder of the same mode, same run:\n\n");
        md.push_str("| mode | path | req/s c=32 | req/s c=128 | CPU per request | added p50 / p99 ms | added first content p50 ms |\n");
        md.push_str("|---|---|---|---|---|---|---|\n");
        for r in self.rows.iter().filter(|r| !r.path.starts_with("bare")) {
            let Some(f) = self
                .rows
                .iter()
                .find(|f| f.mode == r.mode && f.path.starts_with("bare"))
            else {
                continue;
            };
            let cpu = match (r.cpu_us, f.cpu_us) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "-".into(),
            };
            let first = match (r.first_content_ms, f.first_content_ms) {
                (Some([a, _]), Some([b, _])) => format!("{:+.3}", a - b),
                _ => "-".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {cpu} | {:+.3} / {:+.3} | {first} |",
                r.mode,
                r.path,
                pct(r.rps_32, f.rps_32),
                pct(r.rps_128, f.rps_128),
                r.paced_ms[0] - f.paced_ms[0],
                r.paced_ms[2] - f.paced_ms[2],
            );
        }
        md.push('\n');
        for (k, v) in &self.figures {
            let _ = writeln!(md, "- {k}: {v}");
        }
        if !self.scale.is_empty() {
            md.push_str(
                "\nReplicas sharing one Redis (whole answers, 128 clients spread over them):\n\n",
            );
            md.push_str("| replicas | req/s | proxy CPU µs/req (all) | Redis CPU µs/req | Redis cores per 1,000 req/s | errors |\n");
            md.push_str("|---|---|---|---|---|---|\n");
            for s in &self.scale {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.0} | {:.1} | {:.3} | {} |",
                    s.replicas,
                    s.rps,
                    s.proxy_cpu_us,
                    s.redis_cpu_us,
                    s.redis_cpu_us / 1000.0,
                    s.errors
                );
            }
        }
        md
    }

    /// Writes `target/bench/load.md` and `load.json`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("load.md"), self.markdown())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("load.json"), json)
    }
}
