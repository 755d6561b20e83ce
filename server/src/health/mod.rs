//! Backend health: active checks ([`active`], with the gRPC health protocol in [`grpc`]) and
//! flap damping ([`flap`]), run by each
//! `BackendActor`; passive outlier ejection ([`outlier`]), decided by each `PoolActor` from the
//! request path's atomics.

pub mod active;
pub mod flap;
pub mod grpc;
pub mod outlier;
