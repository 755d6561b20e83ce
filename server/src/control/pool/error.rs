//! Why a pool refused an operator's change: the admin API answers each variant with its own
//! status (`404 unknown_backend`, `409 backend_exists`, `409 conflict`).

/// Why a pool refused an operator's change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool has no backend with that id.
    #[error("no backend {backend:?} in pool {pool:?}")]
    NoBackend { pool: String, backend: String },
    /// The pool has a backend with that id already.
    #[error("pool {pool:?} already has a backend {backend:?}")]
    Exists { pool: String, backend: String },
    /// The backend is leaving the pool: it is drained on its way out and cannot be undrained.
    #[error(
        "backend {backend:?} is being removed from pool {pool:?}; it cannot be undrained (add it back instead)"
    )]
    Removing { pool: String, backend: String },
}
