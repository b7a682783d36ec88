//! llmpool-operator's library: the per-namespace reconcile and the status every LlmAccount and
//! ModelRoute should carry after a namespace is compiled. The reconciler
//! that writes it (and the proxies' objects) builds on this.

pub mod oauth;
pub mod reconcile;
pub mod status;
