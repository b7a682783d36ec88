//! A mocked API server for unit tests: it asserts each expected call in
//! order and answers like the real one.

use http::{Request, Response};
use kube::client::Body;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected call: method, path (without query), answer.
#[derive(Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub status: u16,
    pub answer: Value,
}

pub fn call(method: &'static str, path: &str, status: u16, answer: Value) -> Call {
    Call {
        method,
        path: path.to_owned(),
        status,
        answer,
    }
}

pub fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

/// Answers `calls` in order; returns the request bodies (JSON) it received.
pub async fn serve(mut handle: Handle, calls: Vec<Call>) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    for expected in calls {
        let (request, respond) = handle
            .next_request()
            .await
            .expect("the reconciler stopped calling the API");
        let path = request.uri().path().to_owned();
        assert_eq!(
            (request.method().as_str(), path.as_str()),
            (expected.method, expected.path.as_str())
        );
        let query = request.uri().query().unwrap_or_default().to_owned();
        let body = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.push((format!("{} {path}?{query}", expected.method), body));
        let answer = serde_json::to_vec(&expected.answer).unwrap();
        respond.send_response(
            Response::builder()
                .status(expected.status)
                .body(Body::from(answer))
                .unwrap(),
        );
    }
    seen
}

/// What the mock endpoint answers next, and the form bodies it received.
#[derive(Default)]
pub struct Endpoint {
    /// Status and JSON body of the next answers.
    pub answer: Mutex<(u16, Value)>,
    /// Form bodies received.
    pub seen: Mutex<Vec<String>>,
}

async fn token(State(e): State<Arc<Endpoint>>, body: String) -> (StatusCode, Json<Value>) {
    e.seen.lock().unwrap().push(body);
    let (status, answer) = e.answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), Json(answer))
}

/// Starts a mock OAuth token endpoint at `<base>/token`; returns it and `<base>`.
pub async fn endpoint(status: u16, answer: Value) -> (Arc<Endpoint>, String) {
    let e = Arc::new(Endpoint::default());
    *e.answer.lock().unwrap() = (status, answer);
    let app = Router::new()
        .route("/token", post(token))
        .with_state(e.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (e, format!("http://{addr}"))
}
