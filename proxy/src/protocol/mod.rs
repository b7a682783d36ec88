//! Wire formats: pure parsing and building, no I/O.

pub mod json;
pub mod openai;
pub mod sse;

/// The API a client speaks (and an upstream provider speaks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI Chat Completions and friends.
    OpenAi,
}
