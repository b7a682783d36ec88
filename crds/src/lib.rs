//! The llmpool.dev API: the `LlmAccount`, `ModelRoute` and `LlmClient` custom
//! resources,
//! the compiled [`RouteTable`] the proxies consume, and [`compile()`], which
//! the operator and the proxy's local mode share.

pub mod account;
pub mod client;
pub mod compile;
pub mod crd;
pub mod duration;
pub mod glob;
pub mod manifest;
pub mod objects;
pub mod route;
pub mod table;

pub use account::{LlmAccount, LlmAccountSpec, Provider};
pub use client::{LlmClient, LlmClientSpec};
pub use compile::{Compiled, CredentialSet, Diagnostic, Inputs, Severity, compile};
pub use route::{ModelRoute, ModelRouteSpec, Strategy};
pub use table::{ClientTable, CompiledAccount, CompiledClient, CompiledRoute, RouteTable};
