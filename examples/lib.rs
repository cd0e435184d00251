//! Runnable examples of the workspace's libraries; see the `[[example]]` targets
//! (`cargo run --example <name>`).

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]
