//! What the fault scenarios share: hotel-server processes, a hotel to book in, the booking
//! storm and the audit.

pub mod audit;
pub mod hotel;
pub mod process;
pub mod storm;
