//! One probe of a remote region: `GET /v1/status` on its router, answered with
//! `{"region", "ready", "load"}`. Healthy when it answers 200 with `"ready": true` within the
//! timeout. Asked through the health checks' probe client ([`active::get`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::health::active;
use crate::upstream::h1::exchange;

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
    match tokio::time::timeout(timeout, ask(addr, timeout)).await {
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

async fn ask(addr: SocketAddr, timeout: Duration) -> Result<Status, String> {
    // The whole probe is bounded by `timeout` already; this one only has to be no shorter.
    let mut stream = exchange::connect_stream(addr, None, timeout)
        .await
        .map_err(|err| err.to_string())?;
    let answer = active::get(
        &mut stream,
        addr,
        "/v1/status",
        "switchyard-region-probe",
        MAX_ANSWER_BYTES,
    )
    .await
    .map_err(|err| err.to_string())?;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    let body = answer
        .body(MAX_ANSWER_BYTES)
        .await
        .map_err(|err| err.to_string())?;
    serde_json::from_slice(&body).map_err(|err| format!("bad status body: {err}"))
}
