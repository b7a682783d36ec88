//! Test parts for llmpool: a mock LLM provider with scripted faults, and a
//! harness that starts the real `llmpool-proxy` binary as a process.

pub mod discovery;
pub mod harness;
pub mod kubeapi;
pub mod mock;
pub mod realapi;
pub mod redis;
