//! Backend health: active checks ([`active`], run by each `BackendActor`), passive outlier
//! ejection ([`outlier`], decided by each `PoolActor` from the request path's atomics).

pub mod active;
pub mod outlier;
