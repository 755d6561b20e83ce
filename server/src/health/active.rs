//! One active health check: a TCP connect, or an HTTP GET whose status must be expected. Pure
//! async functions with a hard timeout, so a hanging backend costs one timer, never a stuck
//! actor.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::HealthKind;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub passed: bool,
    /// Why it failed (for logs), or the status it got.
    pub detail: String,
    pub took: Duration,
}

/// Largest health answer head read.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Checks `addr` once within `timeout`.
pub async fn check(addr: SocketAddr, kind: &HealthKind, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, probe(addr, kind)).await;
    let took = started.elapsed();
    match outcome {
        Ok(Ok(detail)) => CheckResult {
            passed: true,
            detail,
            took,
        },
        Ok(Err(detail)) => CheckResult {
            passed: false,
            detail,
            took,
        },
        Err(_) => CheckResult {
            passed: false,
            detail: format!("no answer within {timeout:?}"),
            took,
        },
    }
}

async fn probe(addr: SocketAddr, kind: &HealthKind) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let HealthKind::Http { path, expect } = kind else {
        return Ok("connected".to_string());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("send: {err}"))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let status = resp.code.unwrap_or(0);
                let ok = if expect.is_empty() {
                    (200..400).contains(&status)
                } else {
                    expect.contains(&status)
                };
                return if ok {
                    Ok(format!("status {status}"))
                } else {
                    Err(format!("status {status}"))
                };
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {}
            Ok(httparse::Status::Partial) => return Err("answer head too large".to_string()),
            Err(err) => return Err(format!("malformed answer: {err}")),
        }
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|err| format!("read: {err}"))?;
        if n == 0 {
            return Err("closed before answering".to_string());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The next check's delay: the interval shortened by up to 20% at random, so a fleet of
/// routers does not probe a backend in lock-step, and checks never come later than the
/// interval promises (with the defaults a dead backend is down within 3 × 1 s).
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.8 + fastrand::f64() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_only_ever_shortens_the_interval() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(1));
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_secs(1));
        }
    }
}
