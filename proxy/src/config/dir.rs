//! A directory of YAML (LlmAccount, ModelRoute, Secret), compiled with the
//! same compile() the operator uses, and watched: a change is compiled and
//! swapped in atomically; a change with errors is logged and the last good
//! configuration keeps serving.
//!
//! Watching polls the directory's contents (not inotify): it behaves the
//! same for editors that rename files, for ConfigMap volumes that swap a
//! symlink, and on network filesystems, and costs a few small reads a second.
//! A change is applied only once polls a full interval apart read the same
//! contents with no write in between (same modification times; see
//! [`super::settle`]), so a file caught half-written (an editor or script
//! writing in place) is never served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmpool_crds::Compiled;
use llmpool_crds::manifest::Resources;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::snapshot::Snapshot;

/// The directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Listing or reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The files of one directory read at one moment.
pub struct DirContents {
    files: Vec<(String, String)>,
    /// Hash of names and contents, to notice changes.
    pub digest: [u8; 32],
    /// Hash of the files' modification times: equal across two polls means
    /// nothing was written in between.
    pub stamp: [u8; 32],
    /// When the read began and when it ended.
    pub read_during: (Instant, Instant),
}

/// Reads every `.yaml`, `.yml` and `.json` file (hidden ones skipped, so a
/// ConfigMap volume's `..data` is not read twice), in name order.
pub fn read(dir: &Path) -> Result<DirContents, DirError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DirError::Io { path, source }
    };
    let started = Instant::now();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if wanted && !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    let mut hasher = Sha256::new();
    let mut stamps = Sha256::new();
    let mut files = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        stamps.update(name.as_bytes());
        stamps.update(modified.to_le_bytes());
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        files.push((name, text));
    }
    Ok(DirContents {
        files,
        digest: hasher.finalize().into(),
        stamp: stamps.finalize().into(),
        read_during: (started, Instant::now()),
    })
}

/// Compiles what was read.
pub fn compile(contents: &DirContents) -> Compiled {
    let mut resources = Resources::default();
    for (name, text) in &contents.files {
        resources.add_yaml(text, name);
    }
    resources.compile()
}

/// ModelRoutes per file, to notice a change that empties a file.
fn routes_in(contents: &DirContents) -> std::collections::BTreeMap<String, usize> {
    contents
        .files
        .iter()
        .map(|(name, text)| {
            let routes = text.matches("kind: ModelRoute").count();
            (name.clone(), routes)
        })
        .collect()
}

fn routes_per_file(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    read(dir).map(|c| routes_in(&c)).unwrap_or_default()
}

/// Polls `dir` every `interval` and swaps in every good change. Runs until
/// the process ends.
pub async fn watch(
    app: Arc<App>,
    dir: PathBuf,
    namespace: String,
    mut digest: [u8; 32],
    interval: Duration,
) {
    let mut generation = app.snapshots.load().generation;
    // a change seen once, waiting for a later poll to read it again
    let mut settle = super::settle::Settle::new(interval);
    let mut routes_by_file = routes_per_file(&dir);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let read_dir = dir.clone();
        let contents = match tokio::task::spawn_blocking(move || read(&read_dir)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "config directory unreadable; keeping the last good configuration");
                continue;
            }
            Err(_) => continue,
        };
        if contents.digest == digest {
            settle.clear();
            continue;
        }
        let seen = (contents.digest, contents.stamp);
        let (started, ended) = contents.read_during;
        if !settle.observe(seen, started, ended) {
            // not yet stable: a writer may still be in the middle of a file
            continue;
        }
        digest = contents.digest;
        let now = routes_in(&contents);
        for (file, before) in &routes_by_file {
            if *before > 0 && now.get(file).copied().unwrap_or(0) == 0 {
                tracing::warn!(file = %file, routes_before = before, "config change removes every route of this file");
            }
        }
        routes_by_file = now;
        let compiled = compile(&contents);
        if compiled.has_errors() {
            for d in compiled.errors() {
                tracing::warn!(problem = %d, "config change rejected");
            }
            tracing::warn!(
                generation,
                "config change rejected; still serving the last good configuration"
            );
            app.metrics.reloads.with_label_values(&["rejected"]).inc();
            continue;
        }
        for d in &compiled.diagnostics {
            tracing::warn!(problem = %d, "config warning");
        }
        generation += 1;
        app.snapshots.swap(Snapshot::build(
            &compiled,
            &namespace,
            generation,
            &app.shared,
        ));
        app.metrics.reloads.with_label_values(&["applied"]).inc();
        app.note_auth_mode();
        app.metrics
            .config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        tracing::info!(
            generation,
            routes = compiled.table.routes.len(),
            accounts = compiled.table.accounts.len(),
            "config reloaded"
        );
    }
}
