//! Configuration sources that produce snapshots. Local mode reads a
//! directory of the same YAML a user would `kubectl apply`.

pub mod dir;
pub mod kube;
pub mod settle;
