//! A fake Kubernetes API server with just enough of the API for the
//! proxy's cluster mode: list and watch of ConfigMaps and Secrets in a
//! namespace, honouring `fieldSelector=metadata.name=...`. Tests apply and
//! delete objects and read back every request it served.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Key = (String, String, String);

/// A watch: kind, namespace, the name it selects (if any), and its stream.
type Watcher = (
    String,
    String,
    Option<String>,
    mpsc::UnboundedSender<Result<Bytes, Infallible>>,
);

#[derive(Default)]
struct Inner {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    watchers: Vec<Watcher>,
    requests: Vec<String>,
}

/// A running fake API server.
pub struct FakeApiServer {
    /// Where it listens (plain http).
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeApiServer {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/api/v1/namespaces/{ns}/{kind}", get(list_or_watch))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, inner, task })
    }

    /// Writes a kubeconfig pointing at this server (namespace `namespace`).
    pub fn kubeconfig(&self, dir: &Path, namespace: &str) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: tester\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: tester, namespace: {namespace}}}\ncurrent-context: fake\n",
            self.addr
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Creates or replaces an object (`kind` is the plural: configmaps, secrets).
    pub fn apply(&self, kind: &str, mut object: Value) {
        let mut inner = lock(&self.inner);
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        object["metadata"]["resourceVersion"] = rv.into();
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = (kind.to_owned(), ns, name);
        let event = if inner.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        inner.objects.insert(key.clone(), object.clone());
        notify(&mut inner, &key, event, &object);
    }

    /// Deletes an object.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let mut inner = lock(&self.inner);
        let key = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        if let Some(object) = inner.objects.remove(&key) {
            inner.resource_version += 1;
            notify(&mut inner, &key, "DELETED", &object);
        }
    }

    /// Every request served so far, as "GET path?query".
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner).requests.clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn notify(inner: &mut Inner, key: &Key, event: &str, object: &Value) {
    let line = format!("{}\n", json!({"type": event, "object": object}));
    inner.watchers.retain(|(kind, ns, name, tx)| {
        let wanted = *kind == key.0 && *ns == key.1 && name.as_ref().is_none_or(|n| *n == key.2);
        !wanted || tx.send(Ok(Bytes::from(line.clone()))).is_ok()
    });
}

async fn list_or_watch(
    State(inner): State<Arc<Mutex<Inner>>>,
    UrlPath((ns, kind)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let name = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned);
    let mut state = lock(&inner);
    let mut q: Vec<_> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    q.sort();
    state.requests.push(format!(
        "GET /api/v1/namespaces/{ns}/{kind}?{}",
        q.join("&")
    ));
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let (tx, mut rx) = mpsc::unbounded_channel();
        state.watchers.push((kind, ns, name, tx));
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_default();
    }
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((k, n, obj_name), _)| {
            *k == kind && *n == ns && name.as_ref().is_none_or(|w| w == obj_name)
        })
        .map(|(_, v)| v.clone())
        .collect();
    let list_kind = match kind.as_str() {
        "configmaps" => "ConfigMapList",
        "secrets" => "SecretList",
        _ => "List",
    };
    axum::Json(json!({
        "apiVersion": "v1",
        "kind": list_kind,
        "metadata": {"resourceVersion": state.resource_version.to_string()},
        "items": items,
    }))
    .into_response()
}
