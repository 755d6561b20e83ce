//! Load generation: pacing ([`schedule`]), the HTTP engine ([`http`]), the WebSocket soak
//! ([`ws`]) and reports ([`report`]).

pub mod http;
pub mod report;
pub mod schedule;
pub mod wire;
pub mod ws;
