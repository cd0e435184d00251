//! What the fault scenarios share: hotel-server processes, a hotel to book in, and the audit.

pub mod hotel;
pub mod process;
