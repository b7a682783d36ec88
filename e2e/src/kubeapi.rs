//! A fake Kubernetes API server with enough of the API for the proxy's
//! cluster mode and the operator: namespaced objects of any kind (core and
//! API groups) with list and watch (honouring `fieldSelector=metadata.name=`
//! and resuming from a resourceVersion), get, create, replace (with
//! optimistic concurrency), merge and apply patches, the status
//! subresource, and delete. Custom resources get a `metadata.generation`
//! that moves with their spec. Tests read and write objects directly and
//! read back every request it served.
//!
//! It is not a validating server: schema, CEL and admission are the real
//! API server tier's job.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// (plural, namespace, name).
type Key = (String, String, String);

/// A watch: plural, namespace (none: all), the name it selects (if any),
/// and its stream.
type Watcher = (
    String,
    Option<String>,
    Option<String>,
    mpsc::UnboundedSender<Result<Bytes, Infallible>>,
);

#[derive(Default)]
struct Inner {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change, for watches that resume from a resourceVersion.
    history: Vec<(u64, Key, &'static str, Value)>,
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

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": reason, "code": code, "message": message});
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in fields {
                if v.is_null() {
                    if let Some(map) = target.as_object_mut() {
                        map.remove(k);
                    }
                } else {
                    merge(&mut target[k.as_str()], v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl Inner {
    /// Stores `object` under `key` as a new version and tells the watches.
    fn store(&mut self, key: Key, mut object: Value, custom: bool) -> Value {
        self.resource_version += 1;
        let rv = self.resource_version;
        let old = self.objects.get(&key).cloned();
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        object["metadata"]["namespace"] = key.1.clone().into();
        object["metadata"]["name"] = key.2.clone().into();
        let uid = old
            .as_ref()
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("uid-{rv}"));
        object["metadata"]["uid"] = uid.into();
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        if custom {
            let generation = match &old {
                None => 1,
                Some(o) => {
                    let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                    if o["spec"] == object["spec"] {
                        g
                    } else {
                        g + 1
                    }
                }
            };
            object["metadata"]["generation"] = generation.into();
        }
        let event = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.objects.insert(key.clone(), object.clone());
        self.notify(rv, key, event, &object);
        object
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.resource_version += 1;
        let rv = self.resource_version;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        self.notify(rv, key.clone(), "DELETED", &object);
        Some(object)
    }

    fn notify(&mut self, rv: u64, key: Key, event: &'static str, object: &Value) {
        let line = format!("{}\n", json!({"type": event, "object": object}));
        self.watchers.retain(|(kind, ns, name, tx)| {
            let wanted = *kind == key.0
                && ns.as_ref().is_none_or(|n| *n == key.1)
                && name.as_ref().is_none_or(|n| *n == key.2);
            !wanted || tx.send(Ok(Bytes::from(line.clone()))).is_ok()
        });
        self.history.push((rv, key, event, object.clone()));
    }
}

impl FakeApiServer {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/api/v1/{kind}", any(core_everywhere))
            .route("/apis/{group}/{version}/{kind}", any(everywhere))
            .route("/api/v1/namespaces/{ns}/{kind}", any(core_collection))
            .route("/api/v1/namespaces/{ns}/{kind}/{name}", any(core_object))
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{kind}",
                any(collection),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{kind}/{name}",
                any(object),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{kind}/{name}/status",
                any(object_status),
            )
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

    /// Creates or replaces an object (`kind` is the plural: configmaps,
    /// secrets, llmaccounts, ...), as `kubectl apply` would.
    pub fn apply(&self, kind: &str, object: Value) {
        let mut inner = lock(&self.inner);
        let key = (
            kind.to_owned(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let custom = object["apiVersion"]
            .as_str()
            .is_some_and(|v| v.contains('/'));
        // like kubectl apply: the spec is the user's, the status stays
        let mut object = object;
        if let Some(old) = inner.objects.get(&key)
            && object.get("status").is_none()
            && let Some(s) = old.get("status")
        {
            object["status"] = s.clone();
        }
        inner.store(key, object, custom);
    }

    /// Deletes an object.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let mut inner = lock(&self.inner);
        inner.remove(&(kind.to_owned(), namespace.to_owned(), name.to_owned()));
    }

    /// An object as stored now.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner)
            .objects
            .get(&(kind.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every object of a kind in a namespace.
    pub fn list(&self, kind: &str, namespace: &str) -> Vec<Value> {
        lock(&self.inner)
            .objects
            .iter()
            .filter(|((k, n, _), _)| k == kind && n == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every request served so far, as "METHOD path?query".
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner).requests.clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Mutex<Inner>>>;
type Params = Query<HashMap<String, String>>;

fn record(inner: &mut Inner, method: &Method, path: &str, query: &HashMap<String, String>) {
    let mut q: Vec<_> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    q.sort();
    inner
        .requests
        .push(format!("{method} {path}?{}", q.join("&")));
}

async fn core_collection(
    state: Shared,
    method: Method,
    UrlPath((ns, kind)): UrlPath<(String, String)>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/{kind}");
    on_collection(state, method, path, Some(ns), kind, false, query, body)
}

async fn collection(
    state: Shared,
    method: Method,
    UrlPath((group, version, ns, kind)): UrlPath<(String, String, String, String)>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/apis/{group}/{version}/namespaces/{ns}/{kind}");
    let custom = group.contains("llmpool");
    on_collection(state, method, path, Some(ns), kind, custom, query, body)
}

async fn core_everywhere(
    state: Shared,
    method: Method,
    UrlPath(kind): UrlPath<String>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/api/v1/{kind}");
    on_collection(state, method, path, None, kind, false, query, body)
}

async fn everywhere(
    state: Shared,
    method: Method,
    UrlPath((group, version, kind)): UrlPath<(String, String, String)>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/apis/{group}/{version}/{kind}");
    let custom = group.contains("llmpool");
    on_collection(state, method, path, None, kind, custom, query, body)
}

#[allow(clippy::too_many_arguments)]
fn on_collection(
    State(inner): Shared,
    method: Method,
    path: String,
    ns: Option<String>,
    kind: String,
    custom: bool,
    Query(query): Params,
    body: Bytes,
) -> Response {
    let mut state = lock(&inner);
    record(&mut state, &method, &path, &query);
    if method == Method::POST {
        let Some(ns) = ns else {
            return status(405, "MethodNotAllowed", "create in a namespace");
        };
        let Ok(object) = serde_json::from_slice::<Value>(&body) else {
            return status(400, "BadRequest", "body is not JSON");
        };
        let name = object["metadata"]["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("generated-{}", state.resource_version + 1));
        let key = (kind, ns, name);
        if state.objects.contains_key(&key) {
            return status(409, "AlreadyExists", "already exists");
        }
        let stored = state.store(key, object, custom);
        return (StatusCode::CREATED, axum::Json(stored)).into_response();
    }
    if method != Method::GET {
        return status(405, "MethodNotAllowed", "method not allowed");
    }
    let name = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned);
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let since: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(state.resource_version);
        for (rv, key, event, object) in &state.history {
            let wanted = key.0 == kind
                && ns.as_ref().is_none_or(|n| *n == key.1)
                && name.as_ref().is_none_or(|n| *n == key.2);
            if *rv > since && wanted {
                let line = format!("{}\n", json!({"type": event, "object": object}));
                let _ = tx.send(Ok(Bytes::from(line)));
            }
        }
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
            *k == kind
                && ns.as_ref().is_none_or(|want| want == n)
                && name.as_ref().is_none_or(|w| w == obj_name)
        })
        .map(|(_, v)| v.clone())
        .collect();
    axum::Json(json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": state.resource_version.to_string()},
        "items": items,
    }))
    .into_response()
}

async fn core_object(
    state: Shared,
    method: Method,
    headers: HeaderMap,
    UrlPath((ns, kind, name)): UrlPath<(String, String, String)>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/{kind}/{name}");
    let key = (kind, ns, name);
    on_object(
        state, method, &headers, path, key, false, false, query, body,
    )
}

async fn object(
    state: Shared,
    method: Method,
    headers: HeaderMap,
    UrlPath((group, version, ns, kind, name)): UrlPath<(String, String, String, String, String)>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/apis/{group}/{version}/namespaces/{ns}/{kind}/{name}");
    let custom = group.contains("llmpool");
    let key = (kind, ns, name);
    on_object(
        state, method, &headers, path, key, custom, false, query, body,
    )
}

async fn object_status(
    state: Shared,
    method: Method,
    headers: HeaderMap,
    UrlPath((group, version, ns, kind, name)): UrlPath<(String, String, String, String, String)>,
    query: Params,
    body: Bytes,
) -> Response {
    let path = format!("/apis/{group}/{version}/namespaces/{ns}/{kind}/{name}/status");
    let key = (kind, ns, name);
    on_object(state, method, &headers, path, key, true, true, query, body)
}

#[allow(clippy::too_many_arguments)]
fn on_object(
    State(inner): Shared,
    method: Method,
    headers: &HeaderMap,
    path: String,
    key: Key,
    custom: bool,
    status_only: bool,
    Query(query): Params,
    body: Bytes,
) -> Response {
    let mut state = lock(&inner);
    record(&mut state, &method, &path, &query);
    let current = state.objects.get(&key).cloned();
    let sent = || serde_json::from_slice::<Value>(&body).ok();
    match method {
        Method::GET => match current {
            Some(o) => axum::Json(o).into_response(),
            None => status(404, "NotFound", &format!("{} {} not found", key.0, key.2)),
        },
        Method::DELETE => match state.remove(&key) {
            Some(o) => axum::Json(o).into_response(),
            None => status(404, "NotFound", &format!("{} {} not found", key.0, key.2)),
        },
        Method::PUT => {
            let Some(object) = sent() else {
                return status(400, "BadRequest", "body is not JSON");
            };
            let Some(current) = current else {
                return status(404, "NotFound", "not found");
            };
            if object["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return status(409, "Conflict", "the object has been modified");
            }
            axum::Json(state.store(key, object, custom)).into_response()
        }
        Method::PATCH => {
            let Some(patch) = sent() else {
                return status(400, "BadRequest", "body is not JSON");
            };
            let apply = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/apply-patch"));
            let object = match (current, apply, status_only) {
                (None, true, false) => patch,
                (None, _, _) => return status(404, "NotFound", "not found"),
                (Some(mut o), _, true) => {
                    merge(&mut o["status"], &patch["status"]);
                    o
                }
                (Some(o), true, false) => {
                    // one field manager owns these objects: its apply is the object
                    let mut applied = patch;
                    applied["metadata"]["uid"] = o["metadata"]["uid"].clone();
                    applied
                }
                (Some(mut o), false, false) => {
                    merge(&mut o, &patch);
                    o
                }
            };
            axum::Json(state.store(key, object, custom)).into_response()
        }
        _ => status(405, "MethodNotAllowed", "method not allowed"),
    }
}
