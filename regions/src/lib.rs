//! How Switchyard chooses a region, on plain inputs: the router's directory and overflow
//! (`server/src/regions/`) and the global simulator (`switchyard-load sim`) both call these
//! functions, so the simulator's decisions are the router's.
//!
//! - [`geo`]: great-circle distance and coordinate checks.
//! - [`select`]: the directory's order (nearest usable region first) and the overflow target.
#![forbid(unsafe_code)]

pub mod geo;
pub mod select;

pub use select::{Candidate, TIE_BAND_KM, nearest_other, order, overflow_target};
