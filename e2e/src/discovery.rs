//! A read-only API server that answers only discovery (`/api`, `/apis` and
//! their resource lists) for the kinds llmpool's manifests use, so
//! `kubectl apply --dry-run=client` can map every object without a cluster.
//! Client-side dry runs send nothing else.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::{Value, json};

/// (group, version, [(plural, kind, namespaced)]).
type Group = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, bool)],
);

const GROUPS: &[Group] = &[
    (
        "apps",
        "v1",
        &[
            ("deployments", "Deployment", true),
            ("statefulsets", "StatefulSet", true),
        ],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        &[
            ("roles", "Role", true),
            ("rolebindings", "RoleBinding", true),
            ("clusterroles", "ClusterRole", false),
            ("clusterrolebindings", "ClusterRoleBinding", false),
        ],
    ),
    (
        "policy",
        "v1",
        &[("poddisruptionbudgets", "PodDisruptionBudget", true)],
    ),
    (
        "autoscaling",
        "v2",
        &[("horizontalpodautoscalers", "HorizontalPodAutoscaler", true)],
    ),
    (
        "networking.k8s.io",
        "v1",
        &[("networkpolicies", "NetworkPolicy", true)],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        &[(
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )],
    ),
    ("coordination.k8s.io", "v1", &[("leases", "Lease", true)]),
    (
        "monitoring.coreos.com",
        "v1",
        &[
            ("servicemonitors", "ServiceMonitor", true),
            ("prometheusrules", "PrometheusRule", true),
        ],
    ),
    (
        "llmpool.dev",
        "v1alpha1",
        &[
            ("llmaccounts", "LlmAccount", true),
            ("modelroutes", "ModelRoute", true),
            ("llmclients", "LlmClient", true),
        ],
    ),
];

const CORE: &[(&str, &str, bool)] = &[
    ("configmaps", "ConfigMap", true),
    ("secrets", "Secret", true),
    ("services", "Service", true),
    ("serviceaccounts", "ServiceAccount", true),
    ("pods", "Pod", true),
    ("namespaces", "Namespace", false),
];

fn resources(group_version: &str, list: &[(&str, &str, bool)]) -> Value {
    let resources: Vec<Value> = list
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({"name": plural, "singularName": kind.to_ascii_lowercase(), "namespaced": namespaced,
                "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// Starts the discovery server on a free loopback port; returns its address
/// and the task serving it.
pub async fn start() -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = Router::new()
        .route(
            "/version",
            get(|| async { Json(json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})) }),
        )
        .route(
            "/api",
            get(|| async { Json(json!({"kind": "APIVersions", "versions": ["v1"]})) }),
        )
        .route("/api/v1", get(|| async { Json(resources("v1", CORE)) }))
        .route(
            "/apis",
            get(|| async {
                let groups: Vec<Value> = GROUPS
                    .iter()
                    .map(|(g, v, _)| {
                        let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                        json!({"name": g, "versions": [gv], "preferredVersion": gv})
                    })
                    .collect();
                Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
            }),
        )
        .route(
            "/apis/{group}/{version}",
            get(
                |Path((group, version)): Path<(String, String)>| async move {
                    let list = GROUPS
                        .iter()
                        .find(|(g, v, _)| *g == group && *v == version)
                        .map(|(_, _, l)| *l)
                        .unwrap_or(&[]);
                    Json(resources(&format!("{group}/{version}"), list))
                },
            ),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}
