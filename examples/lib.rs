//! Runnable examples of the workspace's libraries; see the `[[example]]` targets
//! (`cargo run --example <name>`).
