//! The region directory's answer (`GET /v1/regions`): regions in the order to try them, the
//! ones that are unhealthy or evacuating moved to the end (still a last resort), and when to
//! read the list again (`ttl_s`, bounded).

use std::time::Duration;

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
