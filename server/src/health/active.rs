//! One active health check: a TCP connect, or an HTTP GET whose status must be expected
//! ([`get`], the router's one probe client, which remote regions' probes use too), and the
//! [`RiseFall`] count that turns results into a verdict. Pure
//! async functions with a hard timeout, so a hanging backend costs one timer, never a stuck
//! actor. A TLS pool's backends are checked over TLS (both kinds make the handshake), so a
//! backend whose certificate no longer verifies is marked down before requests find out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::grpc;
use crate::upstream::h2;

use crate::config::HealthKind;
use crate::upstream::UpstreamProtocol;
use crate::upstream::h1::{BackendStream, exchange};
use crate::upstream::tls::BackendTls;

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub passed: bool,
    /// Why it failed (for logs), or the status it got.
    pub detail: String,
    pub took: Duration,
    /// The backend's load report, when the pool reads them and the answer had one.
    pub load: Option<Load>,
}

/// What a backend's load report means for routing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Share of its weight to use, in percent (10..=100), in steps of 5.
    pub weight_percent: u32,
    /// At or over capacity: no new work, though it is not failing.
    pub overloaded: bool,
}

/// The load report a health answer may carry (HAProxy's agent-check and Envoy's ORCA reports
/// are the precedents): `{"cpu": 0.0–1.0, "sessions": N, "capacity": N, "overloaded": bool}`,
/// every field optional. Utilisation is the larger of `cpu` and `sessions / capacity`.
#[derive(Debug, Default, serde::Deserialize)]
struct LoadReport {
    cpu: Option<f64>,
    sessions: Option<f64>,
    capacity: Option<f64>,
    #[serde(default)]
    overloaded: bool,
}

impl Load {
    /// No load reported: full weight.
    pub const IDLE: Load = Load {
        weight_percent: 100,
        overloaded: false,
    };

    /// Full weight up to 50% utilisation, then down linearly to 10% at 95%; at 100% (or when
    /// the backend says so) overloaded.
    pub fn from_report(body: &[u8]) -> Option<Load> {
        let report: LoadReport = serde_json::from_slice(body).ok()?;
        let by_sessions = match (report.sessions, report.capacity) {
            (Some(s), Some(c)) if c > 0.0 => s / c,
            _ => 0.0,
        };
        let utilisation = report.cpu.unwrap_or(0.0).max(by_sessions);
        if !utilisation.is_finite() {
            return None;
        }
        let share = if utilisation <= 0.5 {
            1.0
        } else {
            (1.0 - (utilisation - 0.5) / 0.45 * 0.9).max(0.1)
        };
        let percent = ((share * 100.0 / 5.0).round() * 5.0).clamp(10.0, 100.0) as u32;
        Some(Load {
            weight_percent: percent,
            overloaded: report.overloaded || utilisation >= 1.0,
        })
    }
}

/// Largest health answer read (head, and body with load reports).
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Consecutive results that flip a verdict: `fall` failures in a row make a healthy target
/// unhealthy, `rise` passes in a row make an unhealthy one healthy again. Backends' checks
/// and remote regions' probes count alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    passes: u32,
    failures: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            rise,
            fall,
            passes: 0,
            failures: 0,
        }
    }

    /// Counts one result: a pass ends a failure streak and the other way round.
    pub fn record(&mut self, passed: bool) {
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
        }
    }

    /// Enough failures in a row to call a healthy target unhealthy.
    pub fn fallen(&self) -> bool {
        self.failures >= self.fall
    }

    /// Enough passes in a row to call an unhealthy target healthy again.
    pub fn risen(&self) -> bool {
        self.passes >= self.rise
    }

    /// The pass that made [`RiseFall::risen`] true (not the ones after): to log once.
    pub fn just_risen(&self) -> bool {
        self.passes == self.rise
    }
}

/// Checks `addr` (over TLS when `tls` is set; HTTP and gRPC checks over HTTP/2 for `h2`
/// pools) once within `timeout`.
pub async fn check(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    protocol: UpstreamProtocol,
    kind: &HealthKind,
    timeout: Duration,
) -> CheckResult {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, probe(addr, tls, protocol, kind, timeout)).await;
    let took = started.elapsed();
    if let (
        Ok(Ok(_)),
        HealthKind::Http {
            max_response_time: Some(max),
            ..
        },
    ) = (&outcome, kind)
        && took > *max
    {
        return CheckResult {
            passed: false,
            detail: format!("answered in {took:?}, over max_response_time {max:?}"),
            took,
            load: None,
        };
    }
    match outcome {
        Ok(Ok((detail, load))) => CheckResult {
            passed: true,
            detail,
            took,
            load,
        },
        Ok(Err(detail)) => CheckResult {
            passed: false,
            detail,
            took,
            load: None,
        },
        Err(_) => CheckResult {
            passed: false,
            detail: format!("no answer within {timeout:?}"),
            took,
            load: None,
        },
    }
}

async fn probe(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    protocol: UpstreamProtocol,
    kind: &HealthKind,
    timeout: Duration,
) -> Result<(String, Option<Load>), String> {
    // The whole check is bounded by `timeout` already; this one only has to be no shorter.
    let mut stream = exchange::connect_stream(addr, tls, timeout)
        .await
        .map_err(|err| err.to_string())?;
    if let HealthKind::Grpc { service } = kind {
        return grpc_check(stream, addr, tls, service).await;
    }
    let HealthKind::Http {
        path,
        expect,
        load_report,
        ..
    } = kind
    else {
        let how = match stream {
            BackendStream::Plain(_) => "connected",
            BackendStream::Tls(_) => "connected, TLS handshake done",
        };
        return Ok((how.to_string(), None));
    };
    if protocol == UpstreamProtocol::H2 {
        return h2_check(stream, addr, tls, path, expect, *load_report).await;
    }
    let answer = get(&mut stream, addr, path, "switchyard-health", MAX_HEAD_BYTES)
        .await
        .map_err(|err| err.to_string())?;
    let status = answer.status;
    expected(status, expect)?;
    // With reports on, an answer without one means "no load to speak of".
    let load = if *load_report {
        let body = answer.body(MAX_HEAD_BYTES).await.unwrap_or_default();
        Some(Load::from_report(&body).unwrap_or(Load::IDLE))
    } else {
        None
    };
    Ok((format!("status {status}"), load))
}

/// Whether an HTTP check's status passes: one of `expect`, or any 2xx or 3xx without a list.
fn expected(status: u16, expect: &[u16]) -> Result<(), String> {
    let ok = if expect.is_empty() {
        (200..400).contains(&status)
    } else {
        expect.contains(&status)
    };
    if ok {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// `grpc.health.v1.Health/Check` over HTTP/2: passes on `grpc-status: 0` and `SERVING`.
async fn grpc_check(
    stream: BackendStream,
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    service: &str,
) -> Result<(String, Option<Load>), String> {
    let mut request = http::Request::new(http_body_util::Full::new(grpc::request_body(service)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = h2_uri(addr, tls, grpc::CHECK_PATH)?;
    let headers = request.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("te", http::HeaderValue::from_static("trailers"));
    headers.insert(
        "user-agent",
        http::HeaderValue::from_static("switchyard-health"),
    );
    let answer = h2::probe::send(stream, request, MAX_HEAD_BYTES).await?;
    if answer.status != 200 {
        return Err(format!("HTTP status {}", answer.status));
    }
    let grpc_status = answer
        .trailer("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("missing");
    if grpc_status != "0" {
        let message = answer
            .trailer("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Err(format!("grpc-status {grpc_status} {message}")
            .trim_end()
            .to_string());
    }
    match grpc::serving_status(&answer.body)? {
        grpc::Serving::Serving => Ok(("SERVING".to_string(), None)),
        other => Err(other.name()),
    }
}

/// An HTTP check of an `h2` pool: `GET {path}` over HTTP/2, the status judged as over
/// HTTP/1.1 (load reports included).
async fn h2_check(
    stream: BackendStream,
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    path: &str,
    expect: &[u16],
    load_report: bool,
) -> Result<(String, Option<Load>), String> {
    let mut request = http::Request::new(http_body_util::Full::new(bytes::Bytes::new()));
    *request.uri_mut() = h2_uri(addr, tls, path)?;
    request.headers_mut().insert(
        "user-agent",
        http::HeaderValue::from_static("switchyard-health"),
    );
    let answer = h2::probe::send(stream, request, MAX_HEAD_BYTES).await?;
    let status = answer.status;
    expected(status, expect)?;
    let load = load_report.then(|| Load::from_report(&answer.body).unwrap_or(Load::IDLE));
    Ok((format!("status {status}"), load))
}

/// The URI of an HTTP/2 check: the backend's address as authority (what HTTP/1.1 checks send
/// as `Host`).
fn h2_uri(addr: SocketAddr, tls: Option<&BackendTls>, path: &str) -> Result<http::Uri, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    http::Uri::builder()
        .scheme(scheme)
        .authority(addr.to_string())
        .path_and_query(path)
        .build()
        .map_err(|err| format!("check URI: {err}"))
}

/// Why a probe got no usable answer (for the check's or probe's log line).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("send: {0}")]
    Send(#[source] std::io::Error),
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("closed before answering")]
    Closed,
    #[error("malformed answer: {0}")]
    Malformed(#[source] httparse::Error),
    #[error("answer head too large")]
    HeadTooLarge,
    #[error("answer too large")]
    TooLarge,
}

/// An answer's head, read by [`get`]; the body is read only when asked for.
pub struct Answer<'s> {
    pub status: u16,
    stream: &'s mut BackendStream,
    /// What was read so far: the head, then perhaps the start of the body.
    read: Vec<u8>,
    head_len: usize,
    chunked: bool,
}

/// The router's one probe client (backends' health checks, remote regions' status probes):
/// `GET {path}` with `Connection: close` on `stream`, read up to the answer's head, which
/// must fit in `max_bytes`. The caller bounds the whole exchange with its own timeout.
pub async fn get<'s>(
    stream: &'s mut BackendStream,
    host: SocketAddr,
    path: &str,
    agent: &str,
    max_bytes: usize,
) -> Result<Answer<'s>, ProbeError> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(ProbeError::Send)?;
    stream.flush().await.map_err(ProbeError::Send)?;
    let mut read = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        match head.parse(&read) {
            Ok(httparse::Status::Complete(head_len)) => {
                let chunked = head.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && String::from_utf8_lossy(h.value)
                            .to_ascii_lowercase()
                            .contains("chunked")
                });
                return Ok(Answer {
                    status: head.code.unwrap_or(0),
                    stream,
                    read,
                    head_len,
                    chunked,
                });
            }
            Ok(httparse::Status::Partial) if read.len() < max_bytes => {}
            Ok(httparse::Status::Partial) => return Err(ProbeError::HeadTooLarge),
            Err(err) => return Err(ProbeError::Malformed(err)),
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.map_err(ProbeError::Read)?;
        if n == 0 {
            return Err(ProbeError::Closed);
        }
        read.extend_from_slice(&chunk[..n]);
    }
}

impl Answer<'_> {
    /// The rest of the answer, until the peer closes: its body (a chunked one decoded). `Err`
    /// when head and body pass `max_bytes` or the connection fails.
    pub async fn body(self, max_bytes: usize) -> Result<Vec<u8>, ProbeError> {
        let Answer {
            stream,
            mut read,
            head_len,
            chunked,
            ..
        } = self;
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await.map_err(ProbeError::Read)?;
            if n == 0 {
                break;
            }
            read.extend_from_slice(&chunk[..n]);
            if read.len() > max_bytes {
                return Err(ProbeError::TooLarge);
            }
        }
        let body = &read[head_len.min(read.len())..];
        Ok(match chunked {
            true => dechunk(body),
            false => body.to_vec(),
        })
    }
}

/// A chunked body's data (as far as it is well formed: a probe's answer is small, and a
/// malformed one fails to parse as JSON afterwards).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else {
            break;
        };
        let start = eol + 2;
        let Some(chunk) = body.get(start..start + size) else {
            data.extend_from_slice(&body[start.min(body.len())..]);
            break;
        };
        data.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    data
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
    fn load_reports_lower_the_weight_near_capacity() {
        let load = |json: &str| Load::from_report(json.as_bytes());
        let pct = |json: &str| load(json).unwrap().weight_percent;
        assert_eq!(pct(r#"{"cpu": 0.3}"#), 100);
        assert_eq!(pct(r#"{"cpu": 0.5}"#), 100);
        assert_eq!(pct(r#"{"cpu": 0.725}"#), 55);
        assert_eq!(pct(r#"{"cpu": 0.95}"#), 10);
        assert_eq!(pct(r#"{"sessions": 90, "capacity": 100, "cpu": 0.1}"#), 20);
        assert!(!load(r#"{"cpu": 0.9}"#).unwrap().overloaded);
        assert!(load(r#"{"cpu": 1.0}"#).unwrap().overloaded);
        assert!(
            load(r#"{"sessions": 100, "capacity": 100}"#)
                .unwrap()
                .overloaded
        );
        assert!(load(r#"{"overloaded": true}"#).unwrap().overloaded);
        assert_eq!(load("ok"), None, "a plain answer is no report");
        assert_eq!(pct("{}"), 100);
    }

    #[test]
    fn chunked_probe_answers_are_decoded() {
        assert_eq!(dechunk(b"7\r\n{\"a\":1}\r\n0\r\n\r\n"), b"{\"a\":1}");
        assert_eq!(
            dechunk(b"3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n"),
            b"{\"a\":1}"
        );
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }

    #[test]
    fn rise_and_fall_count_results_in_a_row() {
        let mut verdict = RiseFall::new(2, 3);
        verdict.record(false);
        verdict.record(false);
        assert!(!verdict.fallen());
        verdict.record(false);
        assert!(verdict.fallen());
        verdict.record(true);
        assert!(!verdict.fallen() && !verdict.risen());
        verdict.record(true);
        assert!(verdict.risen() && verdict.just_risen());
        verdict.record(true);
        assert!(verdict.risen() && !verdict.just_risen());
    }

    #[test]
    fn jitter_only_ever_shortens_the_interval() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(1));
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_secs(1));
        }
    }
}
