//! End-to-end tests: the real `llmpool-proxy` binary as a process, mock
//! providers on loopback, everything observed over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod chart;
mod clients;
mod cluster_mode;
mod common;
mod egress;
mod hardening;
mod lifecycle;
mod observability;
mod operator;
mod pooling;
mod real_cluster;
mod reload;
mod replicas;
mod resilience;
mod responses;
mod sdk;
mod secrets;
mod shared_state;
mod translation;
