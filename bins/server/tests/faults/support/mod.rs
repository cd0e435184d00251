//! What the fault scenarios share: hotel-server processes, the booking storm and the audit.

pub mod audit;
pub mod process;
pub mod storm;
