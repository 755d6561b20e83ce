//! The simulation: viewers as cohorts (a metro's viewers at one moment), placed by the
//! router's own region decisions (`switchyard-regions`), moved after a region loss by the
//! SDK's own reconnect rules (`switchyard_client::pacing::reconnect_delay`).
//!
//! - Steady state ([`Engine::assign`]): each metro's viewers go to the first region of the
//!   directory's order for that metro ([`switchyard_regions::order`]); a region whose sessions
//!   pass `overflow_load` of its capacity sends the surplus to its overflow target
//!   ([`switchyard_regions::overflow_target`], one hop, as the router's `overflow`).
//! - A region loss ([`Engine::failover`]): every viewer of the lost regions, split into
//!   [`STRATA`] equal slices per metro (stratified draws for the random parts), detects the
//!   dead connection (ping interval + timeout), then reconnects attempt after attempt with the
//!   SDK's delays — each attempt at a dead region costs the connect timeout and moves on, as
//!   the SDK's region failover does; a region takes at most its nodes' accept rate a second
//!   (the rest retry), and past `overflow_load` it redirects new sessions onward (close 4003).
//!   The DNS baseline instead keeps each viewer on the dead region's address until its
//!   cached record expires (uniform over the TTL), then on the nearest live region.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use switchyard_client::pacing::{Cause, PacingConfig, reconnect_delay};
use switchyard_regions::geo::distance_km;
use switchyard_regions::{Candidate, TIE_BAND_KM, order, overflow_target};

use super::model::{NodeCost, REQUESTS_PER_VIEWER_PER_S, Rtt, daily_share};
use super::world::{Metro, Region};

/// Slices per metro in a failover: each carries 1/STRATA of the metro's moved viewers.
pub const STRATA: usize = 200;

/// Everything a run is given.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent viewers at the global peak.
    pub viewers: f64,
    /// A region's load (sessions over capacity) past which new sessions overflow.
    pub overflow_load: f64,
    /// Regions are sized so their normal-day peak uses this share of their capacity.
    pub headroom: f64,
    pub node: NodeCost,
    pub rtt: Rtt,
    pub pacing: PacingConfig,
    /// The SDK's defaults: ping every 10 s, dead after 5 s without a pong, 1 s to connect.
    pub ping_interval: f64,
    pub ping_timeout: f64,
    pub connect_timeout: f64,
    /// The DNS baseline's record TTL.
    pub dns_ttl: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            viewers: 200e6,
            overflow_load: 0.9,
            headroom: 0.6,
            node: NodeCost::default(),
            rtt: Rtt::default(),
            pacing: PacingConfig::default(),
            ping_interval: 10.0,
            ping_timeout: 5.0,
            connect_timeout: 1.0,
            dns_ttl: 60.0,
        }
    }
}

/// How viewers find a new region after theirs is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The router's directory order and the SDK's failover.
    DirectorySdk,
    /// DNS with a TTL: the dead address until the record expires.
    Dns,
}

/// The world with its regions sized.
pub struct Engine {
    pub regions: Vec<Region>,
    pub metros: Vec<Metro>,
    /// Each metro's share of the viewers.
    pub weights: Vec<f64>,
    pub settings: Settings,
    /// Router nodes per region.
    pub nodes: Vec<u32>,
    /// Viewers at the global peak per unit of a metro's weight × its daily share.
    scale: f64,
}

/// Where viewers are at one moment.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// `(metro, region, viewers)`: who is served where.
    pub flows: Vec<(usize, usize, f64)>,
    /// Sessions per region.
    pub sessions: Vec<f64>,
    /// Viewers no usable region could take.
    pub unserved: f64,
    /// Viewers sent on by an overflowing region.
    pub overflowed: f64,
}

impl Assignment {
    pub fn total(&self) -> f64 {
        self.sessions.iter().sum::<f64>() + self.unserved
    }
}

/// A viewer slice on its way to a new region.
#[derive(Debug, Clone)]
struct Slice {
    at: f64,
    metro: usize,
    viewers: f64,
    /// Attempts made so far (the next is `attempt + 1`).
    attempt: u32,
    cause: Cause,
    /// Regions this slice gave up on.
    avoid: Vec<usize>,
    /// A region a 4003 named.
    hint: Option<usize>,
    /// DNS: when its cached record expires.
    expires: f64,
    /// The region it was on.
    home: usize,
    /// 4003s received: past [`MAX_REDIRECTS`] the region takes the slice even if full.
    redirects: u8,
    draw: usize,
}

/// Redirects one slice follows before a full region keeps it anyway (over its threshold). A
/// slice refused by its overflow target's accept rate goes back to its own list — to the full
/// region, which redirects it again — as the SDK does (a refused attempt picks from its region
/// list again); this cap only stops a loop no region would end.
const MAX_REDIRECTS: u8 = 50;

impl PartialEq for Slice {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Slice {}
impl PartialOrd for Slice {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Slice {
    /// Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.total_cmp(&self.at)
    }
}

/// What a region loss did.
#[derive(Debug, Clone)]
pub struct Failover {
    pub moved: f64,
    /// Seconds after the loss until 50 %, 99 % and all of the moved viewers were back.
    pub t50: f64,
    pub t99: f64,
    pub t100: f64,
    /// Reconnects accepted per second, per region (index = second after the loss).
    pub per_second: Vec<Vec<f64>>,
    /// Sessions per region once everyone is back.
    pub after: Vec<f64>,
    /// Viewers that found no region (every one dead or refusing) within the give-up window.
    pub gave_up: f64,
}

/// A uniform draw in [0, 1) for slice `i` of a stratified sample, dimension `dim`.
fn draw(i: usize, dim: u32) -> f64 {
    // The slice's own stratum in the first dimension, a golden-ratio sequence in the others.
    let base = (i as f64 + 0.5) / STRATA as f64;
    (base + f64::from(dim) * 0.618_033_988_749_895).fract()
}

impl Engine {
    pub fn new(regions: Vec<Region>, metros: Vec<Metro>, settings: Settings) -> Engine {
        let total: f64 = metros.iter().map(|m| m.population as f64).sum();
        let weights = metros.iter().map(|m| m.population as f64 / total).collect();
        let mut engine = Engine {
            nodes: vec![0; regions.len()],
            regions,
            metros,
            weights,
            settings,
            scale: 1.0,
        };
        // The total at each quarter hour with scale 1; the peak is scaled to `viewers`.
        let peak = (0..96)
            .map(|q| engine.demand_total(f64::from(q) / 4.0, &|_| 1.0))
            .fold(0.0, f64::max);
        engine.scale = engine.settings.viewers / peak;
        engine.nodes = engine.size();
        engine
    }

    /// A metro's viewers at `utc_h`, times `extra(metro)` (a flash crowd).
    pub fn demand(&self, m: usize, utc_h: f64, extra: &dyn Fn(usize) -> f64) -> f64 {
        self.scale * self.weights[m] * daily_share(self.metros[m].local_hour(utc_h)) * extra(m)
    }

    fn demand_total(&self, utc_h: f64, extra: &dyn Fn(usize) -> f64) -> f64 {
        (0..self.metros.len())
            .map(|m| self.demand(m, utc_h, extra))
            .sum()
    }

    /// Session capacity per region.
    pub fn capacity(&self) -> Vec<f64> {
        self.nodes
            .iter()
            .map(|n| f64::from(*n) * self.settings.node.sessions)
            .collect()
    }

    /// Nodes per region: its normal-day peak (nearest region, nothing lost, no limit) at
    /// `headroom` of capacity; at least 2 per region, so one node can be lost or upgraded.
    fn size(&self) -> Vec<u32> {
        let unlimited = vec![f64::INFINITY; self.regions.len()];
        let alive = vec![true; self.regions.len()];
        let mut peak = vec![0.0f64; self.regions.len()];
        for q in 0..96 {
            let a = self.assign(f64::from(q) / 4.0, &|_| 1.0, &alive, &unlimited);
            for (p, s) in peak.iter_mut().zip(&a.sessions) {
                *p = p.max(*s);
            }
        }
        let per_node = self.settings.node.sessions * self.settings.headroom;
        peak.iter()
            .map(|p| ((p / per_node).ceil() as u32).max(2))
            .collect()
    }

    fn candidates(&self, alive: &[bool], load: &[f64]) -> Vec<Candidate> {
        self.regions
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                location: Some(r.at),
                healthy: alive[i],
                evacuating: false,
                load: load[i],
            })
            .collect()
    }

    /// The steady state at `utc_h`: the directory's first usable region per metro (loads
    /// settle over a few rounds, as the regions' probes report them), then one round of
    /// overflow from every region past `overflow_load`.
    pub fn assign(
        &self,
        utc_h: f64,
        extra: &dyn Fn(usize) -> f64,
        alive: &[bool],
        capacity: &[f64],
    ) -> Assignment {
        let n = self.regions.len();
        let demand: Vec<f64> = (0..self.metros.len())
            .map(|m| self.demand(m, utc_h, extra))
            .collect();
        // The directory's order per metro. Regions in the same distance band as the first
        // are told apart by load, so new sessions go to the less loaded until the loads meet:
        // the tied regions share the metro in proportion to their capacity (equally when
        // capacity is unlimited, as when sizing).
        let candidates = self.candidates(alive, &vec![0.0; n]);
        let mut flows = Vec::new();
        let mut sessions = vec![0.0; n];
        let mut unserved = 0.0;
        for (m, metro) in self.metros.iter().enumerate() {
            let ordered = order(&candidates, metro.at);
            let Some(&first) = ordered.first().filter(|&&r| candidates[r].usable()) else {
                unserved += demand[m];
                continue;
            };
            let band = |r: usize| (distance_km(metro.at, self.regions[r].at) / TIE_BAND_KM) as u64;
            let tied: Vec<usize> = ordered
                .iter()
                .copied()
                .take_while(|&r| candidates[r].usable() && band(r) == band(first))
                .collect();
            let weight = |r: usize| match capacity[r].is_finite() {
                true => capacity[r],
                false => 1.0,
            };
            let total: f64 = tied.iter().map(|&r| weight(r)).sum();
            for &r in &tied {
                let part = demand[m] * weight(r) / total;
                flows.push((m, r, part));
                sessions[r] += part;
            }
        }
        let mut load: Vec<f64> = (0..n).map(|r| sessions[r] / capacity[r]).collect();
        // Overflow: the most loaded first; a region that received overflow does not pass it
        // on (one hop).
        let mut overflowed = 0.0;
        let mut by_load: Vec<usize> = (0..n).collect();
        by_load.sort_by(|a, b| load[*b].total_cmp(&load[*a]));
        let mut received = vec![false; n];
        for r in by_load {
            let limit = self.settings.overflow_load * capacity[r];
            if received[r] || sessions[r] <= limit || !alive[r] {
                continue;
            }
            let candidates = self.candidates(alive, &load);
            let Some(t) = overflow_target(
                &candidates,
                Some(self.regions[r].at),
                r,
                self.settings.overflow_load,
                |_| true,
            ) else {
                continue;
            };
            // Up to the target's own threshold.
            let room = (self.settings.overflow_load * capacity[t] - sessions[t]).max(0.0);
            let surplus = (sessions[r] - limit).min(room);
            if surplus <= 0.0 {
                continue;
            }
            let share = surplus / sessions[r];
            let mut moved = Vec::new();
            for flow in flows.iter_mut().filter(|f| f.1 == r) {
                let part = flow.2 * share;
                flow.2 -= part;
                moved.push((flow.0, t, part));
            }
            flows.extend(moved);
            sessions[r] -= surplus;
            sessions[t] += surplus;
            load[r] = sessions[r] / capacity[r];
            load[t] = sessions[t] / capacity[t];
            received[t] = true;
            overflowed += surplus;
        }
        flows.retain(|f| f.2 > 0.0);
        Assignment {
            flows,
            sessions,
            unserved,
            overflowed,
        }
    }

    /// Viewer-weighted RTTs of an assignment: `(rtt ms, viewers)`.
    pub fn rtts(&self, a: &Assignment) -> Vec<(f64, f64)> {
        a.flows
            .iter()
            .map(|&(m, r, v)| {
                (
                    self.settings
                        .rtt
                        .viewer_ms(self.metros[m].at, self.regions[r].at),
                    v,
                )
            })
            .collect()
    }

    /// API requests per second a region's sessions send.
    pub fn rps(&self, sessions: f64) -> f64 {
        sessions * REQUESTS_PER_VIEWER_PER_S
    }

    /// `lost` regions die at `utc_h` (their viewers' connections go dead); the viewers find
    /// new regions by `policy`. Simulated until everyone is back or gave up.
    pub fn failover(&self, utc_h: f64, lost: &[usize], policy: Policy) -> Failover {
        let n = self.regions.len();
        let capacity = self.capacity();
        let all = vec![true; n];
        let before = self.assign(utc_h, &|_| 1.0, &all, &capacity);
        let alive: Vec<bool> = (0..n).map(|r| !lost.contains(&r)).collect();
        let mut sessions = before.sessions.clone();
        for &r in lost {
            sessions[r] = 0.0;
        }
        // What the viewers' directories said before the loss (the SDK's region list).
        let before_load: Vec<f64> = (0..n).map(|r| before.sessions[r] / capacity[r]).collect();
        let listed = self.candidates(&all, &before_load);
        let now_ok = self.candidates(&alive, &before_load);
        let lists: Vec<Vec<usize>> = self.metros.iter().map(|m| order(&listed, m.at)).collect();
        let dns: Vec<Option<usize>> = self
            .metros
            .iter()
            .map(|m| order(&now_ok, m.at).into_iter().find(|&r| alive[r]))
            .collect();

        let mut queue = BinaryHeap::new();
        let mut moved = 0.0;
        for &(m, r, v) in &before.flows {
            if !lost.contains(&r) {
                continue;
            }
            moved += v;
            for i in 0..STRATA {
                let detect = draw(i, 0) * self.settings.ping_interval + self.settings.ping_timeout;
                queue.push(Slice {
                    at: detect,
                    metro: m,
                    viewers: v / STRATA as f64,
                    attempt: 0,
                    cause: Cause::Dead,
                    avoid: Vec::new(),
                    hint: None,
                    expires: draw(i, 1) * self.settings.dns_ttl,
                    home: r,
                    redirects: 0,
                    draw: i,
                });
            }
        }
        // Each slice first waits its reconnect delay; `at` is when it decides to wait.
        let give_up = 300.0;
        let accepts = |r: usize| f64::from(self.nodes[r]) * self.settings.node.accepts_per_s;
        let mut per_second: Vec<Vec<f64>> = Vec::new();
        let mut back: Vec<(f64, f64)> = Vec::new();
        let mut gave_up = 0.0;
        while let Some(mut s) = queue.pop() {
            if s.at > give_up {
                gave_up += s.viewers;
                continue;
            }
            // The wait before this attempt, by the SDK's rules.
            s.attempt += 1;
            let wait = reconnect_delay(
                &s.cause,
                s.attempt,
                &self.settings.pacing,
                draw(s.draw, 1 + s.attempt),
            );
            let when = s.at + wait.as_secs_f64();
            let target = match policy {
                Policy::DirectorySdk => s.hint.take().or_else(|| {
                    lists[s.metro]
                        .iter()
                        .copied()
                        .find(|r| !s.avoid.contains(r))
                }),
                Policy::Dns => match when >= s.expires {
                    true => s.hint.take().or(dns[s.metro]),
                    false => Some(s.home),
                },
            };
            let Some(target) = target else {
                gave_up += s.viewers;
                continue;
            };
            if !alive[target] {
                // Nothing answers: the connect timeout, then on to the next region.
                s.at = when + self.settings.connect_timeout;
                s.cause = Cause::AttemptFailed { retry_after: None };
                s.avoid.push(target);
                queue.push(s);
                continue;
            }
            // Arrival at a live region at `when`; each second's accepts are counted in that
            // second (slices come out in the order they decide, close enough to arrival order
            // for one-second buckets).
            let sec = when.floor() as usize;
            if per_second.len() <= sec {
                per_second.resize(sec + 1, vec![0.0; n]);
            }
            let room = (accepts(target) - per_second[sec][target]).max(0.0);
            let limit = self.settings.overflow_load * capacity[target];
            if sessions[target] + s.viewers > limit
                && s.redirects < MAX_REDIRECTS
                && let Some(next) = overflow_target(
                    &self.candidates(
                        &alive,
                        &(0..n)
                            .map(|r| sessions[r] / capacity[r])
                            .collect::<Vec<_>>(),
                    ),
                    Some(self.regions[target].at),
                    target,
                    self.settings.overflow_load,
                    |_| true,
                )
            {
                // Full: accepted and told 4003 with the next region (one hop).
                s.at = when;
                s.cause = Cause::Close {
                    code: 4003,
                    retry_after: None,
                };
                s.attempt = 0;
                s.hint = Some(next);
                s.redirects += 1;
                s.expires = 0.0;
                queue.push(s);
                continue;
            }
            let taken = s.viewers.min(room);
            if taken > 0.0 {
                per_second[sec][target] += taken;
                sessions[target] += taken;
                back.push((when, taken));
            }
            let left = s.viewers - taken;
            if left > 1e-9 {
                // Refused for now (the accept rate is spent this second): try again.
                s.viewers = left;
                s.at = when;
                s.cause = Cause::AttemptFailed { retry_after: None };
                queue.push(s);
            }
        }
        back.sort_by(|a, b| a.0.total_cmp(&b.0));
        let at_share = |share: f64| {
            let mut sum = 0.0;
            for (t, v) in &back {
                sum += v;
                if sum >= share * moved - 1e-6 {
                    return *t;
                }
            }
            f64::INFINITY
        };
        Failover {
            moved,
            t50: at_share(0.5),
            t99: at_share(0.99),
            t100: back.last().map_or(0.0, |b| b.0),
            per_second,
            after: sessions,
            gave_up,
        }
    }
}
