//! llmpool-operator's library. Today: the status every LlmAccount and
//! ModelRoute should carry after a namespace is compiled. The reconciler
//! that writes it (and the proxies' objects) builds on this.

pub mod status;
