//! Benchmarks of the workspace's libraries; see the `[[bench]]` targets
//! (`cargo bench --bench <area>`).
