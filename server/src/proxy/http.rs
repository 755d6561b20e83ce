//! The HTTP entry point: the public listener's default service. It runs the pipeline's
//! phases ([`super::pipeline`]) for one request and answers with the backend's streamed
//! response or the router's own error.
//!
//! Never awaits an actor mailbox. Per request it loads the route table and the pool snapshot
//! (lock-free), asks the pool's balancer for candidates, bumps the chosen backend's in-flight
//! atomic, exchanges with the backend over this worker's own connection pool
//! ([`super::forward`], [`crate::upstream::h1`]), and reports latency and status through
//! atomics and metric handles.

use std::sync::Arc;

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::http::header as ax;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{ProxyError, error_answer, error_response};
use super::forward::{self, ClientBody, Response, Target, request_framing};
use super::pipeline::{self, Ctx, PendingLine, Place, Protocol};
use super::state::ProxyState;
use crate::error::Error;
use crate::headers;
use crate::policy::shed;
use crate::upstream::h1::RequestFraming;

/// The default service of the public listener: every request comes here.
pub async fn handle(
    req: HttpRequest,
    payload: ClientBody,
    state: web::Data<ProxyState>,
) -> Response {
    let head = req.head();
    let mut ctx = Ctx::new(Protocol::Http, head);
    let conn = req.conn_data::<Arc<crate::conn::Conn>>();
    let resp = match pipeline::admit(conn, head, &state) {
        Err(err) => error_answer(&err.error, &ctx.request_id, head),
        Ok(_) if let Some(port) = state.redirect_https => redirect_to_https(&req, port),
        Ok(_) if let Some(answer) = super::region::public_endpoint(&req, &state) => {
            answer.map_into_right_body()
        }
        Ok(()) => {
            let resp = match serve(&mut ctx, head, payload, &state).await {
                Ok(resp) => resp,
                Err(err) => error_answer(&err.error, &ctx.request_id, head),
            };
            let Some(line) = pipeline::access_logged(&state)
                .then(|| PendingLine::new(&ctx, head, resp.status().as_u16()))
            else {
                return resp;
            };
            // The access line waits for the body to be sent.
            return resp.map_body(|_, body| match body {
                EitherBody::Left { mut body } => {
                    body.held_mut().access = Some(line);
                    EitherBody::left(body)
                }
                answered => {
                    line.write_with(body_bytes(&answered));
                    answered
                }
            });
        }
    };
    pipeline::log(
        &ctx,
        head,
        resp.status().as_u16(),
        body_bytes(resp.body()),
        &state,
    );
    resp
}

/// The length of an answer the router made itself (0 when it has none, or streams one).
fn body_bytes(body: &impl MessageBody) -> u64 {
    match body.size() {
        BodySize::Sized(n) => n,
        BodySize::None | BodySize::Stream => 0,
    }
}

/// The phases after admission: route, limits, place, then the exchange here (under the
/// pool's shedding admission) or the move to another region.
async fn serve(
    ctx: &mut Ctx,
    head: &actix_http::RequestHead,
    payload: ClientBody,
    state: &ProxyState,
) -> Result<Response, ProxyError> {
    let route = pipeline::route(head, state)?;
    ctx.route = Some(route.clone());
    pipeline::limits(&route, head, state).await?;
    let placed = pipeline::place(&route, head, state, Protocol::Http);
    // The pool's counters (a request sent to another region counts on the route's first).
    let (variant, here) = match &placed {
        Place::Pool(placed) => (placed.variant, true),
        Place::Region(_) => (&route.variants[0], false),
    };
    let outcome = match placed {
        Place::Region(region) => {
            // Boxed: rare, and it holds a whole second exchange.
            Box::pin(forward::to_region(
                head,
                payload,
                &route,
                region,
                state,
                &ctx.request_id,
            ))
            .await
        }
        Place::Pool(placed) => {
            let pool = &placed.variant.pool;
            match shed::admit(&pool.shed, route.shed_share, &route.id, &pool.id).await {
                Ok(admission) => {
                    let target = Target::Pool(placed);
                    let answered =
                        forward::forward(head, payload, &route, target, state, &ctx.request_id)
                            .await;
                    drop(admission);
                    answered
                }
                Err(err) => Err(err.into()),
            }
        }
    };
    let took = ctx.started.elapsed();
    variant.latency.record(took.as_secs_f64());
    if here {
        let status = match &outcome {
            Ok((resp, _)) => resp.status().as_u16(),
            Err(err) => err.error.status(),
        };
        variant.outcomes.record(status, took);
    }
    match outcome {
        Ok((resp, backend)) => {
            ctx.backend = Some(backend);
            Ok(resp)
        }
        Err(err) => {
            ctx.failed(&err);
            Err(err)
        }
    }
}

/// Answers a request that asks `Expect: 100-continue` before the client sends its body:
/// a `Content-Length` over its route's `max_body_bytes` is refused with 413 now, instead of
/// inviting the body with `100 Continue` and refusing it afterwards. `None`: go on (actix-http
/// then sends the 100). The connection is closed after the refusal: a client that sends the
/// body anyway cannot have it read as the next request.
pub fn refuse_expectation(
    head: &actix_http::RequestHead,
    state: &ProxyState,
) -> Option<actix_http::Response<actix_http::body::BoxBody>> {
    let RequestFraming::Length(length) = request_framing(&head.headers) else {
        return None;
    };
    let table = state.table.load();
    let route = table.find(pipeline::request_host(head), head.uri.path())?;
    if route.max_body_bytes == 0 || length <= route.max_body_bytes {
        return None;
    }
    let err = Error::TooLarge {
        what: "body",
        size: length,
        max: route.max_body_bytes,
    };
    let mut answer =
        error_response::<actix_http::body::BoxBody>(&err, &headers::request_id(&head.headers));
    answer
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    Some(answer.map_into_boxed_body().into())
}

/// A plain listener set to redirect: 308 to the same URL on HTTPS.
fn redirect_to_https(req: &HttpRequest, port: u16) -> Response {
    let host = req
        .headers()
        .get(ax::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .trim_start_matches('[')
                .trim_end_matches(']')
        })
        .unwrap_or("localhost");
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        443 => format!("https://{host}{target}"),
        port => format!("https://{host}:{port}{target}"),
    };
    HttpResponse::PermanentRedirect()
        .insert_header((ax::LOCATION, location))
        .finish()
        .map_into_boxed_body()
        .map_into_right_body()
}
