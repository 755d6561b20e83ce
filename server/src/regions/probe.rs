//! One probe of a remote region: `GET /v1/status` on its router, answered with
//! `{"region", "ready", "load"}`. Healthy when it answers 200 with `"ready": true` within the
//! timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest status answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub ready: bool,
    pub load: Option<f64>,
    /// The region says an operator evacuates it.
    pub evacuating: bool,
    /// Why it failed, for logs.
    pub detail: String,
}

#[derive(serde::Deserialize)]
struct Status {
    ready: bool,
    load: Option<f64>,
    #[serde(default)]
    evacuating: bool,
}

pub async fn status(addr: SocketAddr, timeout: Duration) -> Probe {
    match tokio::time::timeout(timeout, ask(addr)).await {
        Ok(Ok(status)) => Probe {
            ready: status.ready,
            load: status.load,
            evacuating: status.evacuating,
            detail: match status.ready {
                true => "ready".to_string(),
                false => "answered not ready".to_string(),
            },
        },
        Ok(Err(detail)) => Probe {
            ready: false,
            load: None,
            evacuating: false,
            detail,
        },
        Err(_) => Probe {
            ready: false,
            load: None,
            evacuating: false,
            detail: format!("no answer within {timeout:?}"),
        },
    }
}

async fn ask(addr: SocketAddr) -> Result<Status, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let request = format!(
        "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: switchyard-region-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("write: {err}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|err| format!("read: {err}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.len() > MAX_ANSWER_BYTES {
            return Err("answer too large".to_string());
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut headers);
    let body_at = match head.parse(&answer) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => return Err("not an HTTP answer".to_string()),
    };
    if head.code != Some(200) {
        return Err(format!("status {}", head.code.unwrap_or(0)));
    }
    let chunked = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = &answer[body_at..];
    let body = match chunked {
        // A router answers with a length; tolerate one chunk for other front ends.
        true => body
            .split(|b| *b == b'\n')
            .nth(1)
            .unwrap_or_default()
            .to_vec(),
        false => body.to_vec(),
    };
    serde_json::from_slice(&body).map_err(|err| format!("bad status body: {err}"))
}
