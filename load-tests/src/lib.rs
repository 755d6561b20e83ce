//! `switchyard-load`: the test backend that stands in for a real service, and (with the
//! load-tests issue) the load generator and fault scenarios that measure the router.
#![forbid(unsafe_code)]

pub mod backend;
pub mod canary;
pub mod cli_http;
pub mod compare;
pub mod drain;
pub mod drain_haproxy;
pub mod grpc;
pub mod load;
pub mod procs;
pub mod region_loss;
pub mod scenario;
pub mod shutdown;
pub mod sim;
pub mod soak;
pub mod viewers;

pub use backend::{Knobs, TestBackend};
