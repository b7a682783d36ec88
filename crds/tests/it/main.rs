//! Integration tests of the llmpool.dev API crate.

mod compile;
mod crd_yaml;
