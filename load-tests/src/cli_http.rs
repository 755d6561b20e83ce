//! `switchyard-load http`: parse the command line into an [`HttpLoad`], run it with a progress
//! line, print the report.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::load::http::{self, HttpLoad, Progress};
use crate::load::report::Report;
use crate::load::schedule::Pace;

/// Splits `http://host:port/path` into the address to connect to, the `Host` value and the
/// path (default `/`).
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|err| format!("{url:?}: cannot resolve {authority:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{url:?}: {authority:?} resolved to no address"))?;
    Ok((addr, authority.to_string(), path.to_string()))
}

/// Parses `PATH` or `WEIGHT:PATH` (e.g. `3:/api/x`): a path always starts with `/`, so the
/// weight can never be mistaken for part of a query string.
pub fn parse_path(text: &str) -> Result<(String, u32), String> {
    let (weight, path) = if text.starts_with('/') {
        (1, text)
    } else {
        match text.split_once(':') {
            Some((w, p)) => match w.parse::<u32>() {
                Ok(w) if w > 0 => (w, p),
                _ => {
                    return Err(format!(
                        "--path {text:?}: weight must be a whole number ≥ 1"
                    ));
                }
            },
            None => return Err(format!("--path {text:?}: expected PATH or WEIGHT:PATH")),
        }
    };
    if !path.starts_with('/') {
        return Err(format!("--path {text:?}: a path starts with '/'"));
    }
    Ok((path.to_string(), weight))
}

/// Runs a load, printing a progress line on a terminal unless `quiet`, stopping early on
/// Ctrl-C (what was measured so far is still reported).
pub async fn run_with_progress(load: HttpLoad, quiet: bool) -> Result<Report, String> {
    http::probe(load.target, load.timeout).await?;
    let progress = Arc::new(Progress::default());
    let show = !quiet && std::io::stderr().is_terminal();
    let ticker = {
        let progress = progress.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if show {
                            eprint!(
                                "\r  {:>4.0} s  {:>10} answered  {:>8} failed ",
                                started.elapsed().as_secs_f64(),
                                progress.done.load(Ordering::Relaxed),
                                progress.failed.load(Ordering::Relaxed)
                            );
                        }
                    }
                    _ = tokio::signal::ctrl_c() => {
                        progress.stop();
                        return;
                    }
                }
            }
        })
    };
    let report = http::run(load, progress).await;
    ticker.abort();
    if show {
        eprintln!();
    }
    Ok(report)
}

/// Builds the load from parsed flags.
#[allow(clippy::too_many_arguments)]
pub fn build(
    url: &str,
    paths: &[String],
    connections: usize,
    rate: Option<f64>,
    duration: Duration,
    requests: Option<u64>,
    timeout: Duration,
) -> Result<HttpLoad, String> {
    let (target, host, url_path) = parse_url(url)?;
    let mut weighted = paths
        .iter()
        .map(|p| parse_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    if weighted.is_empty() {
        weighted.push((url_path, 1));
    }
    if connections == 0 {
        return Err("--connections must be at least 1".to_string());
    }
    let pace = match rate {
        None => Pace::Closed,
        Some(r) if r > 0.0 && r.is_finite() => Pace::Open { rate: r },
        Some(r) => return Err(format!("--rate {r}: must be more than 0")),
    };
    if duration.is_zero() {
        return Err("--duration must be more than 0".to_string());
    }
    Ok(HttpLoad {
        target,
        host,
        paths: weighted,
        connections,
        pace,
        duration,
        max_requests: requests,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_host_and_path() {
        let (addr, host, path) = parse_url("http://127.0.0.1:8080/api/x?y=1").unwrap();
        assert_eq!(addr.port(), 8080);
        assert_eq!(host, "127.0.0.1:8080");
        assert_eq!(path, "/api/x?y=1");
        assert_eq!(parse_url("http://localhost").unwrap().0.port(), 80);
        assert!(parse_url("https://x").unwrap_err().contains("only http://"));
    }

    #[test]
    fn paths_take_optional_weights() {
        let p = |t| parse_path(t).unwrap();
        assert_eq!(p("/api"), ("/api".to_string(), 1));
        assert_eq!(p("3:/api"), ("/api".to_string(), 3));
        assert_eq!(p("/s?bytes=1000"), ("/s?bytes=1000".to_string(), 1));
        assert_eq!(p("2:/s?bytes=1000"), ("/s?bytes=1000".to_string(), 2));
        assert!(parse_path("api").is_err());
        assert!(parse_path("0:/api").is_err());
        assert!(parse_path("x:/api").is_err());
    }
}
