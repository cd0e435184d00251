//! What the fault scenarios share: hotel-server processes and the audit.

pub mod process;
