//! A real Kubernetes API server for the opt-in test tier: either the
//! cluster `KUBECONFIG` points at, or a `kube-apiserver` binary named by
//! `KUBE_APISERVER` that is started here with its own etcd (from PATH, or
//! `ETCD`) on free loopback ports, its own CA and certificates, and RBAC on.
//! Without either, the tier is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A reachable API server and a kubeconfig with full rights to it.
pub struct RealApiServer {
    kubeconfig: PathBuf,
    /// The server URL and CA file, when started here (to mint more users).
    local: Option<Local>,
}

struct Local {
    server: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Drop for RealApiServer {
    fn drop(&mut self) {
        if let Some(local) = &mut self.local {
            for child in local.children.iter_mut().rev() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Signs a v3 certificate (rustls refuses v1) for `subject` with the CA in `dir`.
fn certificate(dir: &Path, name: &str, subject: &str, extensions: &str) -> Result<(), String> {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, extensions).map_err(|e| e.to_string())?;
    run(Command::new("openssl")
        .args([
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(dir.join("ca.crt"))
        .arg("-CAkey")
        .arg(dir.join("ca.key"))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(dir.join(format!("{name}.crt"))))
}

fn kubeconfig_text(server: &str, dir: &Path, user: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: {user}\n  user: {{client-certificate: \"{crt}\", client-key: \"{key}\"}}\ncontexts:\n- name: local\n  context: {{cluster: local, user: {user}, namespace: {namespace}}}\ncurrent-context: local\n",
        ca = dir.join("ca.crt").display(),
        crt = dir.join(format!("{user}.crt")).display(),
        key = dir.join(format!("{user}.key")).display(),
    )
}

impl RealApiServer {
    /// The API server the environment names, or `None` when it names none.
    pub fn from_env() -> Result<Option<Self>, String> {
        if let Ok(bin) = std::env::var("KUBE_APISERVER") {
            return Self::start(Path::new(&bin)).map(Some);
        }
        if let Ok(path) = std::env::var("KUBECONFIG")
            && !path.is_empty()
        {
            return Ok(Some(Self {
                kubeconfig: PathBuf::from(path),
                local: None,
            }));
        }
        Ok(None)
    }

    /// Starts etcd and `bin`, and waits until the API server is ready.
    fn start(bin: &Path) -> Result<Self, String> {
        let etcd = std::env::var("ETCD").unwrap_or_else(|_| "etcd".to_owned());
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=llmpool-e2e-ca", "-keyout"])
            .arg(d.join("ca.key"))
            .arg("-out")
            .arg(d.join("ca.crt")))?;
        certificate(
            d,
            "server",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )?;
        certificate(
            d,
            "admin",
            "/O=system:masters/CN=admin",
            "extendedKeyUsage=clientAuth\n",
        )?;
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(d.join("sa.key"))
            .arg("2048"))?;

        let port = |_| free_port().map_err(|e| e.to_string());
        let (client, peer, secure) = (port(())?, port(())?, port(())?);
        let log = |name: &str| -> Result<Stdio, String> {
            std::fs::File::create(d.join(name))
                .map(Stdio::from)
                .map_err(|e| e.to_string())
        };
        let mut children = Vec::new();
        let etcd_child = Command::new(&etcd)
            .arg("--data-dir")
            .arg(d.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .stdout(log("etcd.log")?)
            .stderr(log("etcd.err")?)
            .spawn()
            .map_err(|e| format!("cannot start {etcd} (apt-get install etcd-server): {e}"))?;
        children.push(etcd_child);
        let server = format!("https://127.0.0.1:{secure}");
        let apiserver = Command::new(bin)
            .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
            .arg(format!("--secure-port={secure}"))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!(
                "--tls-cert-file={}",
                d.join("server.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                d.join("server.key").display()
            ))
            .arg(format!("--client-ca-file={}", d.join("ca.crt").display()))
            .arg(format!(
                "--service-account-key-file={}",
                d.join("sa.key").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .args([
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
            ])
            .arg("--endpoint-reconciler-type=none")
            .stdout(log("apiserver.log")?)
            .stderr(log("apiserver.err")?)
            .spawn();
        let apiserver = match apiserver {
            Ok(c) => c,
            Err(e) => {
                for mut c in children {
                    let _ = c.kill();
                }
                return Err(format!("cannot start {}: {e}", bin.display()));
            }
        };
        children.push(apiserver);
        let kubeconfig = d.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(&server, d, "admin", "default"))
            .map_err(|e| e.to_string())?;
        let me = Self {
            kubeconfig,
            local: Some(Local {
                server,
                dir,
                children,
            }),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ready = me.kubectl(&["get", "--raw", "/readyz"], None)?;
            if ready.status.success() {
                return Ok(me);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "kube-apiserver not ready in 90 s: {}",
                    String::from_utf8_lossy(&ready.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig for user `user` (no groups) in `namespace`, when the
    /// server was started here; on an external cluster, the admin one.
    pub fn user(&self, user: &str, namespace: &str) -> Result<PathBuf, String> {
        let Some(local) = &self.local else {
            return Ok(self.kubeconfig.clone());
        };
        let d = local.dir.path();
        certificate(
            d,
            user,
            &format!("/CN={user}"),
            "extendedKeyUsage=clientAuth\n",
        )?;
        let path = d.join(format!("{user}.kubeconfig"));
        std::fs::write(&path, kubeconfig_text(&local.server, d, user, namespace))
            .map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// Runs kubectl as admin, with `stdin` piped in when given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, String> {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("kubectl: {e}"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .map_err(|e| format!("kubectl stdin: {e}"))?;
        }
        child
            .wait_with_output()
            .map_err(|e| format!("kubectl: {e}"))
    }
}
