//! What every worker of a public listener shares: the route table, sessions, the region
//! directory and the listener's own settings. Read by every phase of the pipeline.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header as ax;
use arc_swap::ArcSwap;

use crate::config::{Cidr, Limits};
use crate::headers;
use crate::lifecycle::Readiness;
use crate::regions::Directory;
use crate::routing::RouteTable;
use crate::session::Sessions;

/// What every worker of a listener shares.
#[derive(Clone)]
pub struct ProxyState {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub access_log: bool,
    /// `X-Forwarded-Proto` of this listener.
    pub proto: &'static str,
    pub sessions: Arc<Sessions>,
    pub directory: Arc<Directory>,
    pub ready: Arc<Readiness>,
    /// A plain listener set to redirect: every request gets a 308 to HTTPS on this port.
    pub redirect_https: Option<u16>,
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<Vec<Cidr>>,
}

impl ProxyState {
    /// The viewer's address: the peer, or — when the peer is a trusted proxy — the rightmost
    /// `X-Forwarded-For` address that is not a trusted proxy itself.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &ax::HeaderMap) -> Option<IpAddr> {
        let trusted = |ip| self.trusted_proxies.iter().any(|c: &Cidr| c.contains(ip));
        headers::client_ip(peer, headers, trusted)
    }
}
