//! Shadow traffic on the request path: a sampled request of a route with a `shadow` is also
//! sent to the shadow pool, from a task of its own, and its answer is read and dropped. The
//! primary never waits for it: the mirror starts beside the primary exchange and only learns
//! the primary's status afterwards, to count whether the two agreed by status class. What
//! would weigh on the primary is refused up front and counted: a streamed or large body, more
//! than `max_concurrent` mirrors in flight. Mirrored requests carry `X-Switchyard-Shadow: 1`.

use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::headers::SHADOW_HEADER;
use crate::routing::shadow::Shadow;
use crate::routing::{InflightGuard, PoolHandle};
use crate::upstream::Timeouts;
use crate::upstream::h1::UpstreamBody;
use crate::upstream::h1::body::Holder;
use crate::upstream::h1::exchange::RequestBody;

/// A shadow's answer is read to the end and dropped: its body holds only the in-flight count.
impl Holder for InflightGuard {}
/// Most of a shadow's answer read and dropped (to put its connection back in the pool); past
/// it the rest is not waited for and the connection is closed.
const DISCARD_LIMIT: usize = 1024 * 1024;

/// A mirror under way: told the primary's status once it is known.
pub struct Mirror {
    primary: oneshot::Sender<(u16, Duration)>,
    started: Instant,
}

impl Mirror {
    /// The primary answered `status` (the router's own error status if it failed).
    pub fn primary(self, status: u16) {
        let _ = self.primary.send((status, self.started.elapsed()));
    }
}

/// Starts mirroring the request whose backend head is `request` (and body `body`) when it is
/// in the sampled share and the shadow's limits allow; `None` otherwise.
pub fn start(
    shadow: &Shadow,
    request: &[u8],
    body: &RequestBody,
    head_request: bool,
    idempotent: bool,
    key: u64,
) -> Option<Mirror> {
    if !shadow.sampled() {
        return None;
    }
    let counts = &shadow.counts;
    let body = match body {
        RequestBody::None => None,
        RequestBody::Buffered(bytes) if bytes.len() as u64 <= shadow.max_body_bytes => {
            Some(bytes.clone())
        }
        _ => {
            counts.skipped_body.increment(1);
            return None;
        }
    };
    let Some(permit) = shadow.permit() else {
        counts.skipped_busy.increment(1);
        return None;
    };
    let head = marked(request);
    let (tell, told) = oneshot::channel::<(u16, Duration)>();
    let (pool, timeout, counts) = (shadow.pool.clone(), shadow.timeout, counts.clone());
    actix_rt::spawn(async move {
        let exchanged = exchange(&pool, &head, body, head_request, idempotent, key, timeout);
        let status = match tokio::time::timeout(timeout, exchanged).await {
            Ok(Some((status, head_after))) => {
                counts.shadow_latency.record(head_after.as_secs_f64());
                Some(status)
            }
            _ => None,
        };
        // The shadow is done: its place goes to the next mirror while this one waits for the
        // primary's status (a long poll may take a while).
        drop(permit);
        match (told.await, status) {
            (_, None) => counts.failed.increment(1),
            (Ok((primary, took)), Some(status)) => {
                counts.primary_latency.record(took.as_secs_f64());
                match primary / 100 == status / 100 {
                    true => counts.agree.increment(1),
                    false => counts.disagree.increment(1),
                }
            }
            // The primary was dropped (its client went away): nothing to compare.
            (Err(_), Some(_)) => {}
        }
    });
    Some(Mirror {
        primary: tell,
        started: Instant::now(),
    })
}

/// The request head with the shadow marker added before its blank line.
fn marked(request: &[u8]) -> Vec<u8> {
    let end = request.len().saturating_sub(2);
    let mut head = Vec::with_capacity(request.len() + SHADOW_HEADER.len() + 5);
    head.extend_from_slice(&request[..end]);
    head.extend_from_slice(SHADOW_HEADER.as_bytes());
    head.extend_from_slice(b": 1\r\n\r\n");
    head
}

/// Sends the mirrored request to one of the shadow pool's backends (its balancer's first
/// choice; no retry) and reads its answer to the end: the status and the time to its head.
async fn exchange(
    pool: &PoolHandle,
    head: &[u8],
    body: Option<Bytes>,
    head_request: bool,
    idempotent: bool,
    key: u64,
    timeout: Duration,
) -> Option<(u16, Duration)> {
    let snapshot = pool.load_full();
    let index = snapshot
        .balancer
        .candidates(&snapshot.eligible, key)
        .next()?;
    let backend = &snapshot.eligible[index];
    let inflight = backend.stats.start_request();
    let timeouts = Timeouts {
        connect: timeout,
        response: timeout,
        idle: timeout,
    };
    let mut body = body.map_or(RequestBody::None, RequestBody::Buffered);
    let sent = Instant::now();
    let answered = crate::upstream::h1::exchange(
        backend.addr,
        backend.tls.as_deref(),
        head,
        &mut body,
        head_request,
        idempotent,
        &timeouts,
    )
    .await;
    let (conn, answer) = match answered {
        Ok(answered) => answered,
        Err(_) => {
            backend.stats.record_outcome(false);
            return None;
        }
    };
    let took = sent.elapsed();
    backend.stats.record_outcome(answer.status < 500);
    let status = answer.status;
    // Read to the end so the connection goes back to the pool (it holds the in-flight count
    // of the shadow's backend until then).
    let rest = UpstreamBody::new(
        conn,
        answer.framing,
        BodySize::Stream,
        answer.reusable,
        timeout,
        inflight,
    );
    let mut rest = std::pin::pin!(rest);
    let mut read = 0;
    while read <= DISCARD_LIMIT {
        match std::future::poll_fn(|cx| rest.as_mut().poll_next(cx)).await {
            Some(Ok(chunk)) => read += chunk.len(),
            Some(Err(_)) | None => break,
        }
    }
    Some((status, took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_goes_before_the_blank_line() {
        let head = b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n";
        assert_eq!(
            marked(head),
            b"GET /x HTTP/1.1\r\nhost: a\r\nx-switchyard-shadow: 1\r\n\r\n".to_vec()
        );
    }
}
