//! Regions as the request path sees them: the directory of every configured region (health,
//! load, evacuation as atomics the region actors keep), where a client is, and which remote
//! region takes a request the local region cannot.
//!
//! - [`geo`]: the client's location (an explicit `lat,lon` query, a geo header from a trusted
//!   proxy, the CIDR table, else this node's own region).
//!
//! The decisions themselves — the directory's order, the overflow target — are the
//! `switchyard-regions` crate's, on plain inputs, so `switchyard-load sim` runs the same code.
//! - [`probe`]: one `GET /v1/status` of a remote region's router.

pub mod geo;
pub mod probe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde_json::{Value, json};
use switchyard_regions::{self as select, Candidate};

use crate::config::{Algorithm, Config, DirectoryConfig};
use crate::routing::{BackendEntry, BackendState, BackendStats, PoolHandle, RouteTable};

pub use crate::headers::HOP_HEADER;

/// One region of the directory.
#[derive(Debug)]
pub struct RegionEntry {
    pub name: String,
    pub location: Option<(f64, f64)>,
    pub endpoint: Option<String>,
    pub local: bool,
    pub capacity: Option<u64>,
    /// Remote: from its probes (rise/fall). Local: unused (computed from the pools).
    healthy: AtomicBool,
    /// Remote: its last reported load, in thousandths.
    load_milli: AtomicU32,
    /// Evacuated by an operator on this node.
    evacuating: AtomicBool,
    /// Remote: the region says it is evacuating (from its probes).
    reported_evacuating: AtomicBool,
    /// Remote: a one-backend pool whose backend is the region's router, for forwarding.
    pub forward: Option<Arc<PoolHandle>>,
}

impl RegionEntry {
    pub fn set_probe(&self, healthy: bool, load: Option<f64>) {
        self.healthy.store(healthy, Ordering::Relaxed);
        if let Some(load) = load {
            self.load_milli
                .store((load.clamp(0.0, 1000.0) * 1000.0) as u32, Ordering::Relaxed);
        }
    }

    /// An operator evacuates (or stops evacuating) this region on this node.
    pub fn set_evacuating(&self, on: bool) {
        self.evacuating.store(on, Ordering::Relaxed);
    }

    /// What a remote region's probe says of its evacuation.
    pub fn set_reported_evacuating(&self, on: bool) {
        self.reported_evacuating.store(on, Ordering::Relaxed);
    }

    pub fn evacuating(&self) -> bool {
        self.evacuating.load(Ordering::Relaxed) || self.reported_evacuating.load(Ordering::Relaxed)
    }
}

/// Every configured region, this node's first.
#[derive(Debug)]
pub struct Directory {
    pub local: Arc<RegionEntry>,
    pub regions: Vec<Arc<RegionEntry>>,
    /// The addresses of the other regions' routers (their configured endpoints): the only
    /// peers, with `node.trusted_proxies`, whose `X-Switchyard-Hop` is believed.
    pub routers: Vec<std::net::IpAddr>,
    pub config: DirectoryConfig,
}

/// A region as a client sees it in the directory.
#[derive(Debug, Clone)]
pub struct RegionView {
    pub name: String,
    pub endpoint: Option<String>,
    pub distance_km: Option<f64>,
    pub healthy: bool,
    pub evacuating: bool,
    pub load: f64,
    pub local: bool,
}

impl Directory {
    pub fn new(config: &Config) -> Directory {
        let mut regions: Vec<Arc<RegionEntry>> = config
            .regions
            .iter()
            .map(|r| {
                let local = r.name == config.node.region;
                let forward = match (local, r.endpoint_addr) {
                    (false, Some(addr)) => Some(forward_pool(&r.name, addr)),
                    _ => None,
                };
                Arc::new(RegionEntry {
                    name: r.name.clone(),
                    location: r.location,
                    endpoint: r.endpoint.clone(),
                    local,
                    capacity: r.capacity,
                    healthy: AtomicBool::new(true),
                    load_milli: AtomicU32::new(0),
                    evacuating: AtomicBool::new(false),
                    reported_evacuating: AtomicBool::new(false),
                    forward,
                })
            })
            .collect();
        // A node without [[regions]] is a region of its own, named by `node.region`.
        if !regions.iter().any(|r| r.local) {
            regions.push(Arc::new(RegionEntry {
                name: config.node.region.clone(),
                location: None,
                endpoint: None,
                local: true,
                capacity: None,
                healthy: AtomicBool::new(true),
                load_milli: AtomicU32::new(0),
                evacuating: AtomicBool::new(false),
                reported_evacuating: AtomicBool::new(false),
                forward: None,
            }));
        }
        regions.sort_by_key(|r| !r.local);
        Directory {
            routers: config
                .regions
                .iter()
                .filter(|r| r.name != config.node.region)
                .filter_map(|r| r.endpoint_addr.map(|a| a.ip()))
                .collect(),
            local: regions[0].clone(),
            regions,
            config: config.directory.clone(),
        }
    }

    pub fn region(&self, name: &str) -> Option<&Arc<RegionEntry>> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// This region's load: sessions plus in-flight requests over its capacity, or without a
    /// capacity the share of its backends that take no work.
    pub fn local_load(&self, table: &RouteTable) -> f64 {
        let (mut used, mut backends, mut idle) = (0u64, 0usize, 0usize);
        for pool in &table.pools {
            let snapshot = pool.load();
            for b in &snapshot.backends {
                used += b.stats.load();
                backends += 1;
            }
            idle += snapshot.backends.len() - snapshot.eligible.len();
        }
        match self.local.capacity {
            Some(capacity) => used as f64 / capacity as f64,
            None if backends == 0 => 0.0,
            None => idle as f64 / backends as f64,
        }
    }

    /// Whether this region takes traffic: ready, not evacuating, and some pool has a backend
    /// that takes work.
    pub fn local_healthy(&self, table: &RouteTable, ready: bool) -> bool {
        ready
            && !self.local.evacuating()
            && table.pools.iter().any(|p| !p.load().eligible.is_empty())
    }

    fn view(
        &self,
        r: &RegionEntry,
        table: &RouteTable,
        ready: bool,
        from: (f64, f64),
    ) -> RegionView {
        let (healthy, load) = match r.local {
            true => (self.local_healthy(table, ready), self.local_load(table)),
            false => (
                r.healthy.load(Ordering::Relaxed),
                f64::from(r.load_milli.load(Ordering::Relaxed)) / 1000.0,
            ),
        };
        RegionView {
            name: r.name.clone(),
            endpoint: r.endpoint.clone(),
            distance_km: r.location.map(|at| geo::distance_km(from, at)),
            healthy,
            evacuating: r.evacuating(),
            load,
            local: r.local,
        }
    }

    /// Every region, nearest usable first: healthy and not evacuating ones by distance from
    /// `from` (within 50 km counts as a tie, broken by load), then the others, marked
    /// ([`select::order`]).
    pub fn ordered(&self, table: &RouteTable, ready: bool, from: (f64, f64)) -> Vec<RegionView> {
        let mut views: Vec<Option<RegionView>> = self
            .regions
            .iter()
            .map(|r| Some(self.view(r, table, ready, from)))
            .collect();
        let candidates: Vec<Candidate> = self
            .regions
            .iter()
            .zip(&views)
            .map(|(r, v)| {
                let v = v.as_ref().expect("every view is there until taken");
                Candidate {
                    location: r.location,
                    healthy: v.healthy,
                    evacuating: v.evacuating,
                    load: v.load,
                }
            })
            .collect();
        select::order(&candidates, from)
            .into_iter()
            .filter_map(|i| views[i].take())
            .collect()
    }

    /// The remote regions as the overflow decision sees them (this one's own entry is never
    /// chosen: it is excluded by index).
    fn remote_candidates(&self) -> Vec<Candidate> {
        self.regions
            .iter()
            .map(|r| Candidate {
                location: r.location,
                healthy: r.healthy.load(Ordering::Relaxed),
                evacuating: r.evacuating(),
                load: f64::from(r.load_milli.load(Ordering::Relaxed)) / 1000.0,
            })
            .collect()
    }

    /// The nearest healthy, not evacuating remote region with an endpoint, from this region,
    /// whose reported load is under `max_load` (a region as full as this one is no better;
    /// [`select::overflow_target`]).
    pub fn nearest_remote_under(&self, max_load: f64) -> Option<Arc<RegionEntry>> {
        let this = self.regions.iter().position(|r| r.local)?;
        select::overflow_target(
            &self.remote_candidates(),
            self.local.location,
            this,
            max_load,
            |i| self.regions[i].forward.is_some(),
        )
        .map(|i| Arc::clone(&self.regions[i]))
    }

    /// The nearest healthy, not evacuating remote region with an endpoint, from this region.
    pub fn nearest_remote(&self) -> Option<Arc<RegionEntry>> {
        let this = self.regions.iter().position(|r| r.local)?;
        select::nearest_other(&self.remote_candidates(), self.local.location, this, |i| {
            self.regions[i].forward.is_some()
        })
        .map(|i| Arc::clone(&self.regions[i]))
    }

    /// `GET /v1/regions`.
    pub fn answer(&self, table: &RouteTable, ready: bool, client: &geo::ClientLocation) -> Value {
        let regions: Vec<Value> = self
            .ordered(table, ready, client.at)
            .into_iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "endpoint": v.endpoint,
                    "distance_km": v.distance_km.map(|d| d.round()),
                    "healthy": v.healthy,
                    "evacuating": v.evacuating,
                    "load": (v.load * 1000.0).round() / 1000.0,
                    "local": v.local,
                })
            })
            .collect();
        json!({
            "client": { "lat": client.at.0, "lon": client.at.1, "source": client.source },
            "ttl_s": self.config.ttl.as_secs(),
            "regions": regions,
        })
    }

    /// `GET /v1/status`: what remote regions probe.
    pub fn status(&self, table: &RouteTable, ready: bool) -> Value {
        json!({
            "region": self.local.name,
            "ready": self.local_healthy(table, ready),
            "load": (self.local_load(table) * 1000.0).round() / 1000.0,
            "evacuating": self.local.evacuating(),
        })
    }
}

/// A pool of one backend: the remote region's router.
fn forward_pool(region: &str, addr: SocketAddr) -> Arc<PoolHandle> {
    let id = format!("region:{region}");
    let stats = Arc::new(BackendStats::new(&id, region, &[]));
    let entry = Arc::new(BackendEntry::new(
        region.into(),
        addr,
        1,
        BackendState::Up,
        stats,
    ));
    Arc::new(PoolHandle::new(
        id.as_str().into(),
        Algorithm::RoundRobin,
        0,
        vec![entry],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directory's answer is `switchyard_regions::order` on the same inputs — the function
    /// `switchyard-load sim` places its viewers with — for viewers all over the map, with
    /// regions healthy, down and evacuating.
    #[test]
    fn the_directory_orders_as_the_shared_selection_code() {
        let places = [
            ("eu-west", 53.35, -6.26),
            ("eu-central", 50.11, 8.68),
            ("us-east", 39.04, -77.49),
            ("ap-southeast", 1.35, 103.82),
            ("sa-east", -23.55, -46.63),
        ];
        let mut toml = String::from(
            "[node]\nregion = \"eu-west\"\n[[routes]]\nid = \"r\"\npath_prefix = \"/\"\npool = \"p\"\n\
             [[pools]]\nid = \"p\"\nbackends = [{ id = \"b\", address = \"127.0.0.1:9\" }]\n",
        );
        for (i, (name, lat, lon)) in places.iter().enumerate() {
            toml.push_str(&format!(
                "[[regions]]\nname = \"{name}\"\nlocation = {{ lat = {lat}, lon = {lon} }}\nendpoint = \"http://127.0.0.1:{}\"\n",
                9100 + i
            ));
        }
        let config = Config::from_toml_str(&toml).unwrap();
        let table = RouteTable::build(&config);
        let directory = Directory::new(&config);
        directory.regions[2].set_probe(false, None);
        directory.regions[3].set_evacuating(true);
        directory.regions[4].set_probe(true, Some(0.7));
        for lat in (-60..=60).step_by(30) {
            for lon in (-150..=150).step_by(50) {
                let from = (f64::from(lat), f64::from(lon));
                let views = directory.ordered(&table, true, from);
                let candidates: Vec<Candidate> = directory
                    .regions
                    .iter()
                    .map(|r| {
                        let v = views.iter().find(|v| v.name == r.name).unwrap();
                        Candidate {
                            location: r.location,
                            healthy: v.healthy,
                            evacuating: v.evacuating,
                            load: v.load,
                        }
                    })
                    .collect();
                let shared: Vec<&str> = select::order(&candidates, from)
                    .into_iter()
                    .map(|i| directory.regions[i].name.as_str())
                    .collect();
                let answered: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
                assert_eq!(answered, shared, "from {from:?}");
            }
        }
    }
}
