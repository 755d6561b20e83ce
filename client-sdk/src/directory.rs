//! The region directory's answer (`GET /v1/regions`): regions in the order to try them, the
//! ones that are unhealthy or evacuating moved to the end (still a last resort), and when to
//! read the list again (`ttl_s`, bounded); and the client's reads of it: one in flight at a
//! time, in the background while an order is known.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::Instant;

use crate::client::Client;
use crate::exchange::error_chain;
use crate::region::Region;

/// The shortest `ttl_s` obeyed: a directory cannot make every request read it again.
pub const DIRECTORY_TTL_MIN: Duration = Duration::from_secs(1);
/// The longest `ttl_s` obeyed: a region order older than this is read again anyway.
pub const DIRECTORY_TTL_MAX: Duration = Duration::from_secs(3600);

/// One region as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub name: String,
    pub endpoints: Vec<String>,
    /// Neither `healthy: false` nor `evacuating: true`.
    pub usable: bool,
}

/// The directory's answer, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    pub regions: Vec<Listed>,
    /// `ttl_s`, bounded by [`DIRECTORY_TTL_MIN`] and [`DIRECTORY_TTL_MAX`].
    pub ttl: Option<Duration>,
}

/// Reads a directory answer; a body that is not one says why.
pub(crate) fn parse(body: &[u8]) -> Result<Listing, String> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("not JSON: {err}"))?;
    let listed = answer["regions"]
        .as_array()
        .ok_or("no \"regions\" list in the answer")?;
    let mut regions = Vec::new();
    for (i, r) in listed.iter().enumerate() {
        let name = r["name"]
            .as_str()
            .ok_or_else(|| format!("regions[{i}]: no \"name\""))?;
        let mut endpoints: Vec<String> = r["endpoints"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e.as_str())
                    .map(|e| e.trim_end_matches('/').to_string())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(one) = r["endpoint"].as_str() {
            endpoints.insert(0, one.trim_end_matches('/').to_string());
        }
        if endpoints.is_empty() {
            return Err(format!("regions[{i}] ({name}): no \"endpoint\""));
        }
        regions.push(Listed {
            name: name.to_string(),
            endpoints,
            usable: r["healthy"].as_bool().unwrap_or(true)
                && !r["evacuating"].as_bool().unwrap_or(false),
        });
    }
    // Usable regions first, each group in the directory's order.
    regions.sort_by_key(|r| !r.usable);
    let ttl = answer["ttl_s"]
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| Duration::from_secs_f64(t.min(DIRECTORY_TTL_MAX.as_secs_f64())))
        .map(|t| t.clamp(DIRECTORY_TTL_MIN, DIRECTORY_TTL_MAX));
    Ok(Listing { regions, ttl })
}

#[derive(Default)]
pub(crate) struct DirectoryState {
    /// When the last read ended (success or not).
    pub(crate) read_at: Option<Instant>,
    /// When the list is due again.
    pub(crate) next_read: Option<Instant>,
}

impl Client {
    /// Reads the directory when it is due (or, with `now`, unless a read ended since this
    /// call began), waiting at most `attempt_timeout`.
    pub(crate) async fn refresh_directory(&self, now: bool) {
        self.refresh_directory_within(now, self.inner.config.attempt_timeout)
            .await;
    }

    /// [`Client::refresh_directory`] for a caller with `budget` left (a request's remaining
    /// deadline). One read in flight at a time. Once the directory was read (well or not), a
    /// due read runs in the background and the caller goes on with the order it has
    /// (stale-while-revalidate); before the first read ends, the caller waits for the read in
    /// flight (or makes it), at most `budget` — and with static regions to fall back on, at
    /// most `connect_timeout`: they are a last resort, not the order to start with, but a slow
    /// directory must not hold every first request.
    pub(crate) async fn refresh_directory_within(&self, now: bool, budget: Duration) {
        if self.inner.config.directory.is_none() {
            return;
        }
        let asked = Instant::now();
        if !self.directory_due(now, asked) {
            return;
        }
        if self.directory_read_once() {
            if let Ok(reading) = self.inner.directory_reading.clone().try_lock_owned() {
                let client = self.clone();
                tokio::spawn(async move {
                    if client.directory_due(now, asked) {
                        client.read_directory().await;
                    }
                    drop(reading);
                });
            }
            return;
        }
        let budget = match self.region_list().is_empty() {
            true => budget,
            false => budget.min(self.inner.config.connect_timeout),
        };
        let wait = async {
            let _reading = self.inner.directory_reading.lock().await;
            // The read this caller waited for may be the one it needed.
            if self.directory_due(now, asked) {
                self.read_directory().await;
            }
        };
        if tokio::time::timeout(budget, wait).await.is_err() {
            tracing::debug!("no region directory within the request's deadline");
        }
    }

    /// Whether a read of the directory has ended (answered or failed).
    fn directory_read_once(&self) -> bool {
        self.inner
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_at
            .is_some()
    }

    /// Whether the directory should be read for a caller that asked at `asked`: never read,
    /// or (with `now`) not read since, or its time has come.
    fn directory_due(&self, now: bool, asked: Instant) -> bool {
        let state = self
            .inner
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (now, state.read_at, state.next_read) {
            (_, None, _) => true,
            // A read that ended after this call began is as fresh as one made now.
            (true, Some(read), _) => read < asked,
            (false, _, next) => next.is_none_or(|n| Instant::now() >= n),
        }
    }

    /// One read of the directory (the caller holds `directory_reading`): a good answer
    /// replaces the region order and says when to read again; a failed one keeps the order.
    async fn read_directory(&self) {
        let Some(url) = &self.inner.config.directory else {
            return;
        };
        self.inner.directory_fetches.fetch_add(1, Ordering::Relaxed);
        let fetched =
            tokio::time::timeout(self.inner.config.attempt_timeout, self.fetch_directory(url))
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()));
        let finished = Instant::now();
        let next_read = match fetched {
            Ok(listing) => {
                let ttl = listing.ttl.unwrap_or(self.inner.config.directory_refresh);
                self.apply_directory(listing);
                finished + ttl
            }
            Err(why) => {
                tracing::debug!(
                    url,
                    why,
                    "region directory unreadable: keeping the region order"
                );
                finished + self.inner.config.directory_refresh
            }
        };
        let mut state = self
            .inner
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        state.read_at = Some(finished);
        state.next_read = Some(next_read);
    }

    async fn fetch_directory(&self, url: &str) -> Result<Listing, String> {
        let req = http::Request::get(url)
            .header(http::header::USER_AGENT, &self.inner.config.user_agent)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|err| err.to_string())?;
        let resp = self
            .inner
            .http
            .request(req)
            .await
            .map_err(|err| error_chain(&err))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let limit = usize::try_from(self.inner.config.max_response_bytes).unwrap_or(usize::MAX);
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        parse(&body)
    }

    /// Replaces the region order with the directory's; keeps the breakers of regions it knew;
    /// regions configured statically but not listed stay as a last resort.
    fn apply_directory(&self, listing: Listing) {
        let known = self.region_list();
        let mut next: Vec<Arc<Region>> = listing
            .regions
            .iter()
            .map(|listed| {
                known
                    .iter()
                    .find(|r| r.name == listed.name && r.endpoints == listed.endpoints)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Region::new(
                            &listed.name,
                            &listed.endpoints,
                            self.inner.config.breaker,
                        ))
                    })
            })
            .collect();
        for r in known {
            if !next.iter().any(|n| n.name == r.name) {
                next.push(r);
            }
        }
        *self
            .inner
            .regions
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_and_evacuating_regions_go_last_in_their_order() {
        let body = br#"{"ttl_s": 0.2, "regions": [
            {"name": "a", "endpoint": "http://a/", "healthy": false},
            {"name": "b", "endpoint": "http://b", "healthy": true, "evacuating": true},
            {"name": "c", "endpoint": "http://c", "healthy": true},
            {"name": "d", "endpoint": "http://d"}
        ]}"#;
        let listing = parse(body).unwrap();
        let names: Vec<&str> = listing.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "d", "a", "b"]);
        assert_eq!(listing.regions[2].endpoints, ["http://a"]);
        assert_eq!(listing.ttl, Some(DIRECTORY_TTL_MIN), "bounded below");
        let long = parse(br#"{"ttl_s": 1e30, "regions": []}"#).unwrap();
        assert_eq!(long.ttl, Some(DIRECTORY_TTL_MAX), "bounded above");
        assert_eq!(parse(br#"{"regions": []}"#).unwrap().ttl, None);
    }

    #[test]
    fn a_body_that_is_not_a_directory_says_why() {
        assert!(parse(b"<html>").unwrap_err().contains("not JSON"));
        assert!(parse(b"{}").unwrap_err().contains("regions"));
        let err = parse(br#"{"regions": [{"name": "x"}]}"#).unwrap_err();
        assert!(
            err.contains("regions[0]") && err.contains("endpoint"),
            "{err}"
        );
    }
}
