//! Taking, keeping and giving up the Lease against a mocked API server.

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::testing::{Call, call, not_found, serve};

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/llmpool-system/leases/llmpool-operator";
const LIST: &str = "/apis/coordination.k8s.io/v1/namespaces/llmpool-system/leases";

fn election(identity: &str) -> Election {
    Election {
        lease: "llmpool-operator".to_owned(),
        identity: identity.to_owned(),
        duration: Duration::from_secs(15),
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + second).unwrap()
}

fn lease(holder: &str, renewed: i64) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "llmpool-operator", "namespace": "llmpool-system", "resourceVersion": "41"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": at(0).to_string(), "renewTime": at(renewed).to_string(), "leaseTransitions": 2}})
}

async fn run(calls: Vec<Call>, identity: &str, now: Timestamp) -> (bool, Vec<(String, Value)>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let api = Api::<Lease>::namespaced(Client::new(service, "llmpool-system"), "llmpool-system");
    let server = tokio::spawn(serve(handle, calls));
    let leads = election(identity).try_lead(&api, now).await.unwrap();
    (leads, server.await.unwrap())
}

#[tokio::test]
async fn the_first_replica_creates_the_lease_and_leads() {
    let calls = vec![
        call("GET", PATH, 404, not_found()),
        call("POST", LIST, 201, lease("op-a", 0)),
    ];
    let (leads, seen) = run(calls, "op-a", at(0)).await;
    assert!(leads);
    assert_eq!(seen[1].1["spec"]["holderIdentity"], "op-a");
}

#[tokio::test]
async fn a_lease_held_and_renewed_by_another_is_left_alone() {
    let calls = vec![call("GET", PATH, 200, lease("op-a", 10))];
    let (leads, seen) = run(calls, "op-b", at(20)).await;
    assert!(!leads);
    assert_eq!(seen.len(), 1, "no write");
}

#[tokio::test]
async fn a_lease_not_renewed_for_its_duration_is_taken_over() {
    let calls = vec![
        call("GET", PATH, 200, lease("op-a", 10)),
        call("PUT", PATH, 200, lease("op-b", 26)),
    ];
    let (leads, seen) = run(calls, "op-b", at(26)).await;
    assert!(leads);
    let spec = &seen[1].1["spec"];
    assert_eq!(spec["holderIdentity"], "op-b");
    assert_eq!(spec["leaseTransitions"], 3);
    assert_eq!(
        seen[1].1["metadata"]["resourceVersion"], "41",
        "optimistic concurrency"
    );
}

#[tokio::test]
async fn the_holder_renews_and_a_lost_race_is_not_leadership() {
    let calls = vec![
        call("GET", PATH, 200, lease("op-a", 10)),
        call("PUT", PATH, 200, lease("op-a", 14)),
    ];
    let (leads, seen) = run(calls, "op-a", at(14)).await;
    assert!(leads);
    assert_eq!(seen[1].1["spec"]["leaseTransitions"], 2);
    let acquired: Timestamp = seen[1].1["spec"]["acquireTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(acquired, at(0), "renewing keeps the acquire time");

    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"});
    let calls = vec![
        call("GET", PATH, 200, lease("op-a", 0)),
        call("PUT", PATH, 409, conflict),
    ];
    let (leads, _) = run(calls, "op-b", at(30)).await;
    assert!(!leads);
}
