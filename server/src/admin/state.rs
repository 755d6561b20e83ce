//! What every admin handler works with: the live route table, the actor tree's root, this
//! node's facts, and the few locks the API itself needs.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use arc_swap::ArcSwap;

use super::cluster::Cluster;
use crate::control::RouterSupervisor;
use crate::lifecycle::Readiness;
use crate::regions::Directory;
use crate::routing::RouteTable;

/// What the admin API works with.
pub struct AdminState {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub supervisor: Addr<RouterSupervisor>,
    pub ready: Arc<Readiness>,
    pub token: Option<String>,
    pub region: String,
    pub started: Instant,
    pub store: &'static str,
    pub cluster: Option<Arc<Cluster>>,
    /// The config file a reload reads again (`None`: started from text, nothing to reload).
    pub config_path: Option<std::path::PathBuf>,
    pub directory: Arc<Directory>,
    /// TLS listeners' certificates, reloaded with the config.
    pub tls: Vec<Arc<crate::tls::SniResolver>>,
    /// Held by one `POST /backends` at a time: ids are unique across pools, and two adds of
    /// one id to different pools must not both pass the check.
    pub adding: tokio::sync::Mutex<()>,
}
