//! `[[regions]]` and `[directory]`: the regions clients can be sent to, how they are probed,
//! and where clients are. Endpoint names are resolved by the load step.

use std::collections::HashSet;

use super::address::{internal_url, public_url};
use super::{Issues, cidrs, header_name};
use crate::config::raw::{RawDirectory, RawRegion};
use crate::config::{DirectoryConfig, RegionConfig};

pub(super) fn regions(
    raw: &[RawRegion],
    node_region: &str,
    issues: &mut Issues,
) -> Vec<RegionConfig> {
    let mut names = HashSet::new();
    let mut regions = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("regions[{i}].{k}");
        if r.name.trim().is_empty() {
            issues.push(key("name"), "must not be empty");
        } else if !names.insert(r.name.as_str()) {
            issues.push(key("name"), format!("region {:?} is listed twice", r.name));
        }
        if let Some(loc) = r.location {
            check_location(issues, &key("location."), loc.lat, loc.lon);
        }
        let endpoint = r.endpoint.as_ref().and_then(|text| match public_url(text) {
            Ok(url) => Some(url),
            Err(reason) => {
                issues.push(key("endpoint"), reason);
                None
            }
        });
        if r.name != node_region && r.endpoint.is_none() {
            issues.push(
                key("endpoint"),
                "required for every region but this node's own (clients and other regions reach it there)",
            );
        }
        // Where routers reach it: `internal`, else an http:// endpoint.
        let internal_text = r
            .internal
            .clone()
            .or_else(|| endpoint.clone().filter(|u| u.starts_with("http://")));
        let internal = internal_text.and_then(|text| match internal_url(&text) {
            Ok((url, _)) => Some(url),
            Err(reason) => {
                let written = if r.internal.is_some() {
                    "internal"
                } else {
                    "endpoint"
                };
                issues.push(key(written), reason);
                None
            }
        });
        if r.capacity == Some(0) {
            issues.push(key("capacity"), "must be at least 1");
        }
        regions.push(RegionConfig {
            name: r.name.clone(),
            location: r.location.map(|l| (l.lat, l.lon)),
            endpoint,
            internal,
            // Resolved from `internal` by the load step.
            endpoint_addr: None,
            capacity: r.capacity,
        });
    }
    if !regions.is_empty() && !names.contains(node_region) {
        issues.push(
            "node.region",
            format!("no region named {node_region:?} in [[regions]]"),
        );
    }
    regions
}

pub(super) fn directory(raw: &RawDirectory, issues: &mut Issues) -> DirectoryConfig {
    let trusted_proxies = cidrs(issues, "directory.trusted_proxies", &raw.trusted_proxies);
    let mut locations = Vec::new();
    for (i, l) in raw.locations.iter().enumerate() {
        let key = format!("directory.locations[{i}].");
        let cidr = crate::config::Cidr::parse(&l.cidr);
        if let Err(reason) = &cidr {
            issues.push(format!("{key}cidr"), reason.clone());
        }
        check_location(issues, &key, l.lat, l.lon);
        if let Ok(cidr) = cidr {
            locations.push((cidr, (l.lat, l.lon)));
        }
    }
    if raw.rise == 0 {
        issues.push("directory.rise", "must be at least 1");
    }
    if raw.fall == 0 {
        issues.push("directory.fall", "must be at least 1");
    }
    if raw.probe_interval.0.is_zero() || raw.probe_timeout.0.is_zero() {
        issues.push(
            "directory.probe_interval",
            "probe interval and timeout must be more than 0",
        );
    }
    let geo_header = header_name(&raw.geo_header).unwrap_or_else(|reason| {
        issues.push("directory.geo_header", reason);
        String::new()
    });
    DirectoryConfig {
        ttl: raw.ttl.0,
        probe_interval: raw.probe_interval.0,
        probe_timeout: raw.probe_timeout.0,
        rise: raw.rise.max(1),
        fall: raw.fall.max(1),
        geo_header,
        trusted_proxies,
        locations,
    }
}

/// `lat` and `lon` under `prefix` (`regions[0].location.`) are degrees on the globe.
fn check_location(issues: &mut Issues, prefix: &str, lat: f64, lon: f64) {
    if !(-90.0..=90.0).contains(&lat) {
        issues.push(format!("{prefix}lat"), "must be within -90..=90");
    }
    if !(-180.0..=180.0).contains(&lon) {
        issues.push(format!("{prefix}lon"), "must be within -180..=180");
    }
}
