//! `switchyard probe URL`: one HTTP GET that exits 0 on a 2xx answer and 1 otherwise — for a
//! container's `HEALTHCHECK` and Kubernetes exec probes, on images that carry no curl.
//!
//! Plain `http://` only (the admin listener's `/healthz` and `/readyz`); every failure is one
//! line on stderr naming the URL and what went wrong.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{url}: not an http:// URL with a host and port ({why})")]
    BadUrl { url: String, why: String },
    #[error("{url}: {what} failed: {source}")]
    Io {
        url: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: answered {status}")]
    Status { url: String, status: u16 },
}

/// GETs `url` within `timeout`; `Ok(status)` for a 2xx.
pub async fn probe(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    match tokio::time::timeout(timeout, get(url)).await {
        Ok(answer) => answer,
        Err(_) => Err(ProbeError::Timeout {
            url: url.to_string(),
            timeout,
        }),
    }
}

async fn get(url: &str) -> Result<u16, ProbeError> {
    let bad = |why: &str| ProbeError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("the scheme must be http"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let io = |what, source| ProbeError::Io {
        url: url.to_string(),
        what,
        source,
    };
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| io("connect", e))?;
    let http = |source| ProbeError::Http {
        url: url.to_string(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "switchyard-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(&e.to_string()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status().as_u16();
    match response.status().is_success() {
        true => Ok(status),
        false => Err(ProbeError::Status {
            url: url.to_string(),
            status,
        }),
    }
}
