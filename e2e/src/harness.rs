//! Starts the real `llmpool-proxy` and `llmpool-operator` binaries as
//! processes, waits until they listen, and keeps their log lines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where the proxy binary is: next to the running test or bench executable's
/// `deps/` directory, i.e. `target/<profile>/llmpool-proxy`, or
/// `LLMPOOL_PROXY_BIN` when set.
pub fn proxy_binary() -> PathBuf {
    if let Ok(path) = std::env::var("LLMPOOL_PROXY_BIN") {
        return PathBuf::from(path);
    }
    sibling_binary("llmpool-proxy")
}

/// `target/<profile>/<name>`, next to the running test's `deps/`.
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    profile_dir.join(name)
}

/// A directory of YAML the proxy reads.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// An empty directory.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces, atomically by rename) one file.
    pub fn write(&self, name: &str, yaml: &str) -> std::io::Result<()> {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(tmp, self.dir.path().join(name))
    }
}

/// YAML for a Secret holding `keys` (name → value).
pub fn secret(name: &str, keys: &[(&str, &str)]) -> String {
    let data: Vec<String> = keys
        .iter()
        .map(|(k, v)| format!("  {k}: {}", yaml_str(v)))
        .collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n{}\n",
        data.join("\n")
    )
}

/// YAML for an openai-compatible LlmAccount whose key is `key` in Secret
/// `keys`; `extra` is more spec lines, indented by two spaces.
pub fn account(name: &str, base_url: &str, key: &str, extra: &str) -> String {
    format!(
        "apiVersion: llmpool.dev/v1alpha1\nkind: LlmAccount\nmetadata:\n  name: {name}\nspec:\n  provider: openai-compatible\n  baseUrl: {base_url}\n  credentials:\n    secretRef: {{name: keys, key: {key}}}\n{extra}"
    )
}

/// YAML for an LlmAccount of `provider` (openai-compatible, anthropic,
/// gemini) whose key is `key` in Secret `keys`.
pub fn provider_account(
    name: &str,
    provider: &str,
    base_url: &str,
    key: &str,
    extra: &str,
) -> String {
    format!(
        "apiVersion: llmpool.dev/v1alpha1\nkind: LlmAccount\nmetadata:\n  name: {name}\nspec:\n  provider: {provider}\n  baseUrl: {base_url}\n  credentials:\n    secretRef: {{name: keys, key: {key}}}\n{extra}"
    )
}

/// YAML for a ModelRoute; `spec` is the spec body, indented by two spaces.
pub fn route(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: llmpool.dev/v1alpha1\nkind: ModelRoute\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// YAML for an LlmClient whose key is `key` in Secret `secret`; `extra` is
/// more spec lines, indented by two spaces.
pub fn client(name: &str, secret: &str, key: &str, extra: &str) -> String {
    format!(
        "apiVersion: llmpool.dev/v1alpha1\nkind: LlmClient\nmetadata:\n  name: {name}\nspec:\n  keySecretRef: {{name: {secret}, key: {key}}}\n{extra}"
    )
}

/// Joins documents into one multi-document file.
pub fn docs(parts: &[String]) -> String {
    parts.join("\n---\n")
}

fn yaml_str(v: &str) -> String {
    serde_json::Value::from(v).to_string()
}

/// A running proxy or operator process; killed on drop.
pub struct Process {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

/// The proxy did not start.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit status, if it exited.
    pub status: Option<std::process::ExitStatus>,
    /// Everything it wrote to stdout and stderr.
    pub output: String,
}

impl Process {
    /// Starts the proxy on `config` with extra flags and environment.
    pub fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self, StartFailure> {
        let config = config.display().to_string();
        let mut all = vec!["--config", config.as_str(), "--watch-interval", "200ms"];
        all.extend_from_slice(args);
        Self::launch(&all, env)
    }

    /// Starts the proxy with exactly these flags (plus a free listen port).
    pub fn launch(args: &[&str], env: &[(&str, &str)]) -> Result<Self, StartFailure> {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Self::spawn(&proxy_binary(), &all, env)
    }

    /// Starts the operator with these flags (plus a free metrics port; `addr`
    /// is where it serves /metrics).
    pub fn operator(args: &[&str], env: &[(&str, &str)]) -> Result<Self, StartFailure> {
        let mut all = vec!["--metrics", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Self::spawn(&sibling_binary("llmpool-operator"), &all, env)
    }

    /// Starts `bin` and waits for its `listening` log line.
    fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self, StartFailure> {
        assert!(
            bin.exists(),
            "{} not found: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
            bin.display()
        );
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("LLMPOOL_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| StartFailure {
            status: None,
            output: e.to_string(),
        })?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    logs.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let addr = logs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|l| l.contains("\"message\":\"listening\""))
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|v| v.get("addr")?.as_str()?.parse().ok());
            if let Some(addr) = addr {
                return Ok(Self { child, addr, logs });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let output = logs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .join("\n");
                return Err(StartFailure {
                    status: Some(status),
                    output,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let output = logs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .join("\n");
                return Err(StartFailure {
                    status: None,
                    output,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (for CPU accounting in benches).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors (Linux, from /proc).
    pub fn open_fds(&self) -> usize {
        proc_entries(self.pid(), "fd")
    }

    /// Threads of the process (Linux, from /proc).
    pub fn threads(&self) -> usize {
        proc_entries(self.pid(), "task")
    }

    /// Resident memory in KiB (Linux, from /proc).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Log lines so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Log lines once everything logged before the call has been written:
    /// the proxy writes its log in batches at most 20 ms apart, so a check
    /// for a line (or for the absence of a secret) reads after that.
    pub async fn logs_settled(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.logs()
    }

    /// Sends SIGTERM (graceful shutdown) and waits up to `wait` for exit.
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entries of `/proc/<pid>/<dir>` (descriptors, threads).
fn proc_entries(pid: u32, dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{dir}"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of any process, in KiB (Linux, from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
