//! In-process tests of the pipeline: the real router driven with
//! `tower::ServiceExt::oneshot`, the in-process mock provider as upstream,
//! the in-memory store, and tokio's paused clock where time matters. They
//! pin the commit point, the relay and the release of every lease without
//! starting processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pipeline;
