//! A real `redis-server` on a free loopback port, for tests and benches.
//! `scripts/test.sh` installs it (Debian's redis-server) when missing.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a fresh, empty server without persistence.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments (ACL users, TLS, cluster mode).
    /// With `--tls-port` among them, the plain port is switched off and
    /// `port` is the TLS port.
    pub fn start_with(extra: &[String]) -> std::io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = Self {
            child: None,
            port,
            extra: extra.to_vec(),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let tls = self.extra.iter().any(|a| a == "--tls-port");
        let port = self.port.to_string();
        let ports: Vec<&str> = if tls {
            vec!["--port", "0", "--tls-port", &port]
        } else {
            vec!["--port", &port]
        };
        let extra: Vec<&str> = self
            .extra
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "--tls-port")
            .collect();
        let child = Command::new("redis-server")
            .args(&ports)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("redis-server: {e} (scripts/test.sh installs it)"),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(
            "redis-server did not start listening",
        ))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// EVAL + EVALSHA calls served so far (from `INFO commandstats`).
    pub fn script_calls(&self) -> u64 {
        self.command_calls(|name| name == "evalsha" || name == "eval")
    }

    /// Commands served so far, every kind but `INFO` (which these
    /// readings send themselves).
    pub fn commands(&self) -> u64 {
        self.command_calls(|name| name != "info")
    }

    fn command_calls(&self, wanted: impl Fn(&str) -> bool) -> u64 {
        self.info("commandstats")
            .lines()
            .filter_map(|l| {
                let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split("calls=").nth(1)?.split(',').next()?;
                wanted(name).then(|| calls.parse::<u64>().ok())?
            })
            .sum()
    }

    /// CPU time the server has used (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        self.info("cpu")
            .lines()
            .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
            .sum()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn info(&self, section: &str) -> String {
        self.cli(&["info", section])
    }

    /// What `redis-cli` prints for one command (empty when it cannot run).
    pub fn cli(&self, command: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(command)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// Kills the server (SIGKILL): its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts an empty server again on the same port.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
