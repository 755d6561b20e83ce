//! Where a client is, and how far apart two places are.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

use crate::config::DirectoryConfig;

/// Great-circle distance (haversine): the selection crate's, shared with the simulator.
pub use switchyard_regions::geo::distance_km;

/// `"lat,lon"` in degrees, within range.
pub fn parse_lat_lon(text: &str) -> Option<(f64, f64)> {
    let (lat, lon) = text.split_once(',')?;
    let (lat, lon): (f64, f64) = (lat.trim().parse().ok()?, lon.trim().parse().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// Where a client is and how that was learnt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLocation {
    pub at: (f64, f64),
    /// `query`, `header`, `cidr` or `default` (this node's region).
    pub source: &'static str,
}

/// Locates a client: an explicit `lat`/`lon` query first, then the geo header — only when the
/// connection's `peer` is a trusted proxy — then the CIDR table for the `client` address
/// (the viewer, from trusted `X-Forwarded-For`, or the peer), else `fallback` (this node's
/// region).
pub fn locate(
    config: &DirectoryConfig,
    query: Option<&str>,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    client: Option<IpAddr>,
    fallback: (f64, f64),
) -> ClientLocation {
    if let Some(at) = query.and_then(query_lat_lon) {
        return ClientLocation {
            at,
            source: "query",
        };
    }
    let trusted = peer.is_some_and(|ip| config.trusted_proxies.iter().any(|c| c.contains(ip)));
    if trusted
        && let Some(at) = headers
            .get(config.geo_header.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(parse_lat_lon)
    {
        return ClientLocation {
            at,
            source: "header",
        };
    }
    if let Some(ip) = client.or(peer)
        && let Some((_, at)) = config
            .locations
            .iter()
            .filter(|(cidr, _)| cidr.contains(ip))
            .max_by_key(|(cidr, _)| cidr.prefix)
    {
        return ClientLocation {
            at: *at,
            source: "cidr",
        };
    }
    ClientLocation {
        at: fallback,
        source: "default",
    }
}

/// What is wrong with a query that names `lat` or `lon`: both are needed, as numbers within
/// range (latitude −90 to 90, longitude −180 to 180). `None`: the query names neither (the
/// location comes from elsewhere) or both are right.
pub fn query_problem(query: &str) -> Option<String> {
    let (lat, lon) = query_parts(query);
    let check = |name: &str, value: Option<&str>, limit: f64| match value {
        None => Some(format!(
            "`{name}` is missing: give both lat and lon, in degrees"
        )),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && (-limit..=limit).contains(&x) => None,
            Ok(x) => Some(format!(
                "`{name}` = {x} is out of range (-{limit} to {limit} degrees)"
            )),
            Err(_) => Some(format!("`{name}` = {v:?} is not a number of degrees")),
        },
    };
    if lat.is_none() && lon.is_none() {
        return None;
    }
    check("lat", lat, 90.0).or_else(|| check("lon", lon, 180.0))
}

/// The `lat` and `lon` values of a query string, as written.
fn query_parts(query: &str) -> (Option<&str>, Option<&str>) {
    let (mut lat, mut lon) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("lat", v)) => lat = Some(v),
            Some(("lon", v)) => lon = Some(v),
            _ => {}
        }
    }
    (lat, lon)
}

/// `lat=..&lon=..` from a query string.
fn query_lat_lon(query: &str) -> Option<(f64, f64)> {
    let (lat, lon) = query_parts(query);
    parse_lat_lon(&format!("{},{}", lat?, lon?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_query_that_is_wrong_says_what() {
        assert_eq!(query_problem("lat=48.86&lon=2.35"), None);
        assert_eq!(query_problem("x=1"), None);
        assert!(
            query_problem("lat=999&lon=2")
                .unwrap()
                .contains("`lat` = 999 is out of range")
        );
        assert!(
            query_problem("lat=abc&lon=2")
                .unwrap()
                .contains("not a number")
        );
        assert!(query_problem("lat=1").unwrap().contains("`lon` is missing"));
        assert!(
            query_problem("lat=1&lon=181")
                .unwrap()
                .contains("`lon` = 181")
        );
    }
    use crate::config::Cidr;

    const PARIS: (f64, f64) = (48.8566, 2.3522);
    const DUBLIN: (f64, f64) = (53.3498, -6.2603);
    const ASHBURN: (f64, f64) = (39.0438, -77.4874);

    #[test]
    fn distances_are_great_circle_kilometres() {
        let paris_dublin = distance_km(PARIS, DUBLIN);
        assert!((770.0..790.0).contains(&paris_dublin), "{paris_dublin}");
        let paris_ashburn = distance_km(PARIS, ASHBURN);
        assert!(
            (6_150.0..6_300.0).contains(&paris_ashburn),
            "{paris_ashburn}"
        );
        assert_eq!(distance_km(PARIS, PARIS), 0.0);
    }

    fn config() -> DirectoryConfig {
        DirectoryConfig {
            ttl: std::time::Duration::from_secs(30),
            probe_interval: std::time::Duration::from_secs(1),
            probe_timeout: std::time::Duration::from_millis(500),
            rise: 2,
            fall: 3,
            geo_header: "x-client-geo".to_string(),
            trusted_proxies: vec![Cidr::parse("10.0.0.1/32").unwrap()],
            locations: vec![
                (Cidr::parse("192.168.0.0/16").unwrap(), DUBLIN),
                (Cidr::parse("192.168.7.0/24").unwrap(), ASHBURN),
            ],
        }
    }

    #[test]
    fn the_query_wins_then_a_trusted_header_then_the_cidr_table_then_the_default() {
        let c = config();
        let mut headers = HeaderMap::new();
        headers.insert(
            actix_web::http::header::HeaderName::from_static("x-client-geo"),
            "48.8566,2.3522".parse().unwrap(),
        );
        let trusted: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.168.7.9".parse().unwrap();
        let q = locate(
            &c,
            Some("lat=1.35&lon=103.82"),
            &headers,
            Some(trusted),
            None,
            (0.0, 0.0),
        );
        assert_eq!((q.at, q.source), ((1.35, 103.82), "query"));
        let h = locate(&c, None, &headers, Some(trusted), None, (0.0, 0.0));
        assert_eq!((h.at, h.source), (PARIS, "header"));
        // An untrusted peer's header is ignored; the most specific CIDR answers.
        let u = locate(&c, None, &headers, Some(stranger), None, (0.0, 0.0));
        assert_eq!((u.at, u.source), (ASHBURN, "cidr"));
        let d = locate(
            &c,
            Some("lat=500&lon=1"),
            &HeaderMap::new(),
            None,
            None,
            DUBLIN,
        );
        assert_eq!((d.at, d.source), (DUBLIN, "default"));
    }

    #[test]
    fn cidrs_match_their_ranges_only() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.255.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "v4-mapped v6"
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten/8").is_err());
    }
}
