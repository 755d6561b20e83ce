//! The admin JSON API under `/admin/v1/` (shapes pinned in DESIGN.md, described in
//! `docs/admin-openapi.yaml`).
//!
//! Reads come straight from the published snapshots (no actor round trip); changes go to the
//! owning `PoolActor` and, with Redis configured, to every other node through the cluster
//! channel ([`super::cluster`]). Every call that changes something needs
//! `Authorization: Bearer TOKEN`, checked before anything else ([`super::auth`]).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::action::{AdminAction, apply, find, local_region, pool_actor};
use super::error::ApiError;
use super::request::{decode_json, read, read_json, resource};
use super::state::AdminState;
use crate::config::{BackendConfig, MAX_WEIGHT, parse_address};
use crate::control::pool::{AddBackend, RemoveBackend};
use crate::control::region::{Evacuate, Unevacuate};
use crate::control::reload::{self, ReloadError};
use crate::routing::{BackendEntry, PoolHandle, RouteTable};

/// A drain's deadline when the request names none (or its spread, when that is longer).
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(60);
/// A drain's spread when the request names none (never more than the deadline).
pub const DEFAULT_DRAIN_SPREAD: Duration = Duration::from_secs(10);
/// Longest drain deadline accepted: a day.
pub const MAX_DRAIN_SECONDS: f64 = 86_400.0;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before the guarded scope, which would otherwise take the path: it runs the token check
    // itself and answers a wrong token with `200 {"valid": false}`.
    cfg.service(resource("/admin/v1/auth", "POST").route(web::post().to(super::auth::token_check)));
    cfg.service(
        web::scope("/admin/v1")
            .wrap(actix_web::middleware::from_fn(super::auth::require_token))
            .service(read("/status", status))
            .service(read("/regions", regions))
            .service(resource("/regions/{name}/evacuate", "POST").route(web::post().to(evacuate)))
            .service(
                resource("/regions/{name}/unevacuate", "POST").route(web::post().to(unevacuate)),
            )
            .service(read("/pools", pools))
            .service(resource("/reload", "POST").route(web::post().to(reload)))
            .service(
                resource("/backends", "GET, HEAD, POST")
                    .route(web::get().to(backends))
                    .route(web::head().to(backends))
                    .route(web::post().to(add_backend)),
            )
            .service(
                resource("/backends/{id}", "GET, HEAD, DELETE")
                    .route(web::get().to(backend))
                    .route(web::head().to(backend))
                    .route(web::delete().to(remove_backend)),
            )
            .service(resource("/backends/{id}/drain", "POST").route(web::post().to(drain)))
            .service(resource("/backends/{id}/undrain", "POST").route(web::post().to(undrain)))
            .service(resource("/backends/{id}/weight", "PUT").route(web::put().to(weight)))
            .configure(super::traffic::configure)
            .configure(super::rollouts::configure)
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such admin endpoint; see docs/admin-openapi.yaml",
    ))
}

/// Two decimals are plenty for a rate or a latency on a page.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn backend_json(pool: &PoolHandle, b: &BackendEntry) -> Value {
    let recent = b.stats.recent(std::time::Instant::now());
    json!({
        "id": &*b.id,
        "pool": &*pool.id,
        "address": b.addr.to_string(),
        "state": b.state.as_str(),
        "weight": b.weight,
        "configured_weight": b.health.configured_weight,
        "weight_percent": b.health.weight_percent,
        "slow_start": b.health.slow_start,
        "drain_left_s": b.health.drain_deadline.map(|d| {
            round2(d.saturating_duration_since(crate::clock::Instant::now()).as_secs_f64())
        }),
        "inflight": b.stats.inflight(),
        "sessions": b.stats.sessions(),
        "rps": round2(recent.rps),
        "error_rate": round2(recent.error_rate),
        "p99_ms": recent.p99_ms.map(round2),
        "recent_s": round2(recent.seconds),
        "health": {
            "checks": b.health.checks.as_str(),
            "ejected": b.health.ejected,
            "held_down": b.health.held_down,
            "overloaded": b.health.overloaded,
            "consecutive_failures": b.stats.consecutive_failures(),
        },
    })
}

async fn status(state: web::Data<AdminState>) -> HttpResponse {
    let table = state.table.load();
    let (mut backends, mut sessions, mut inflight) = (0, 0u64, 0u64);
    for pool in &table.pools {
        for b in &pool.load().backends {
            backends += 1;
            sessions += u64::from(b.stats.sessions());
            inflight += u64::from(b.stats.inflight());
        }
    }
    HttpResponse::Ok().json(json!({
        "region": state.region,
        "version": env!("CARGO_PKG_VERSION"),
        "ready": state.ready.get(),
        "uptime_s": state.started.elapsed().as_secs(),
        "routes": table.routes().count(),
        "pools": table.pools.len(),
        "backends": backends,
        "sessions": sessions,
        "inflight": inflight,
        "session_store": state.store,
        "cluster": state.cluster.as_ref().map(|c| c.is_up()),
    }))
}

async fn regions(state: web::Data<AdminState>) -> HttpResponse {
    let table = state.table.load();
    let from = state.directory.local.location.unwrap_or((0.0, 0.0));
    let pools: Vec<&str> = table.pools.iter().map(|p| &*p.id).collect();
    let regions: Vec<Value> = state
        .directory
        .ordered(&table, state.ready.get(), from)
        .into_iter()
        .map(|v| {
            json!({
                "name": v.name,
                "local": v.local,
                "endpoint": v.endpoint,
                "healthy": v.healthy,
                "evacuating": v.evacuating,
                "load": v.load,
                "distance_km": v.distance_km.map(f64::round),
                "pools": if v.local { json!(pools) } else { json!(null) },
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "regions": regions }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvacuateBody {
    spread_s: Option<f64>,
}

/// `POST /admin/v1/regions/{name}/evacuate`: the region is ordered last in this node's
/// directory and takes no overflow; when it is this node's own region, every live session is
/// closed with `4003` (move to the next region), spread over `spread_s` (default 10 s), and
/// new sessions are told to move.
async fn evacuate(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let spread = evacuation_spread(read_json::<EvacuateBody>(payload).await?)?;
    let region = state
        .directory
        .region(&name)
        .ok_or_else(|| unknown_region(&name))?;
    let already = region.evacuating();
    region.set_evacuating(true);
    let mut moving = 0;
    if region.local && !already {
        let to = state
            .directory
            .nearest_remote()
            .map(|next| next.name.clone());
        moving = local_region(&state.supervisor)
            .await
            .ok_or_else(|| ApiError::unavailable("the region's actor is not running"))?
            .send(Evacuate { spread, to })
            .await
            .map_err(|_| ApiError::unavailable("the region's actor did not answer"))?;
    }
    if !already {
        tracing::warn!(region = %region.name, local = region.local, sessions = moving, ?spread, "region evacuating");
        metrics::counter!("switchyard_region_evacuations_total", "region" => region.name.clone())
            .increment(1);
    }
    Ok(HttpResponse::Accepted().json(json!({
        "region": region.name,
        "local": region.local,
        "evacuating": true,
        "sessions_moving": moving,
    })))
}

/// An evacuation's spread from its body, checked.
fn evacuation_spread(body: Option<EvacuateBody>) -> Result<Duration, ApiError> {
    match body.and_then(|b| b.spread_s) {
        None => Ok(DEFAULT_DRAIN_SPREAD),
        Some(s) if s.is_finite() && (0.0..=MAX_DRAIN_SECONDS).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => Err(ApiError::bad_request(format!(
            "field `spread_s`: {s} is not between 0 and {MAX_DRAIN_SECONDS} seconds"
        ))),
    }
}

fn unknown_region(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_region",
        format!("no region named {name:?}"),
    )
}

/// `POST /admin/v1/regions/{name}/unevacuate`: the undo.
async fn unevacuate(
    state: web::Data<AdminState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let region = state
        .directory
        .region(&name)
        .ok_or_else(|| unknown_region(&name))?;
    if region.evacuating() {
        tracing::info!(region = %region.name, "region evacuation lifted");
    }
    if region.local
        && let Some(actor) = local_region(&state.supervisor).await
    {
        // Sessions not yet asked to move stay where they are.
        actor.do_send(Unevacuate);
    }
    region.set_evacuating(false);
    Ok(HttpResponse::Ok().json(json!({ "region": region.name, "evacuating": false })))
}

async fn pools(state: web::Data<AdminState>) -> HttpResponse {
    let table = state.table.load();
    let pools: Vec<Value> = table
        .pools
        .iter()
        .map(|pool| {
            let snapshot = pool.load();
            json!({
                "id": &*pool.id,
                "algorithm": pool.algorithm().name(),
                "panic": snapshot.panic,
                "eligible": snapshot.eligible.iter().map(|b| &*b.id).collect::<Vec<_>>(),
                "backends": snapshot.backends.iter().map(|b| backend_json(pool, b)).collect::<Vec<_>>(),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "pools": pools }))
}

async fn backends(state: web::Data<AdminState>) -> HttpResponse {
    let table = state.table.load();
    let all: Vec<Value> = table
        .pools
        .iter()
        .flat_map(|pool| {
            let snapshot = pool.load_full();
            snapshot
                .backends
                .iter()
                .map(|b| backend_json(pool, b))
                .collect::<Vec<_>>()
        })
        .collect();
    HttpResponse::Ok().json(json!({ "backends": all }))
}

async fn backend(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(StatusCode::OK, &state.table.load(), &id)
}

/// A backend's view, with `status`.
fn answer(status: StatusCode, table: &RouteTable, id: &str) -> Result<HttpResponse, ApiError> {
    let (pool, b) = find(table, id).ok_or_else(|| ApiError::unknown_backend(id))?;
    Ok(HttpResponse::build(status).json(backend_json(&pool, &b)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    deadline_s: Option<f64>,
    spread_s: Option<f64>,
}

/// A drain's deadline and spread from its body, checked.
fn drain_times(body: Option<DrainBody>) -> Result<(Duration, Duration), ApiError> {
    let body = body.unwrap_or(DrainBody {
        deadline_s: None,
        spread_s: None,
    });
    let bad = ApiError::bad_request;
    let deadline = match body.deadline_s {
        // A spread longer than the default deadline asks for that long a drain.
        None => match body.spread_s {
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_DRAIN_SECONDS => {
                DEFAULT_DRAIN_DEADLINE.max(Duration::from_secs_f64(s))
            }
            _ => DEFAULT_DRAIN_DEADLINE,
        },
        Some(d) if d.is_finite() && d > 0.0 && d <= MAX_DRAIN_SECONDS => Duration::from_secs_f64(d),
        Some(d) => {
            return Err(bad(format!(
                "field `deadline_s`: {d} is not between 0 (excluded) and {MAX_DRAIN_SECONDS} seconds"
            )));
        }
    };
    let spread = match body.spread_s {
        None => DEFAULT_DRAIN_SPREAD.min(deadline),
        // `try_`: a spread too large for a `Duration` is refused like any other, not a panic.
        Some(s) if s >= 0.0 && Duration::try_from_secs_f64(s).is_ok_and(|s| s <= deadline) => {
            Duration::from_secs_f64(s)
        }
        Some(s) => {
            return Err(bad(format!(
                "field `spread_s`: {s} must be at least 0 and at most `deadline_s` ({} s)",
                deadline.as_secs_f64()
            )));
        }
    };
    Ok((deadline, spread))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: u32,
}

/// Applies an action here, then tells the other nodes; answers with the backend's view.
async fn act(
    state: &AdminState,
    action: AdminAction,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let table = state.table.load_full();
    apply(&table, &state.supervisor, &action).await?;
    if let Some(cluster) = &state.cluster {
        cluster.announce(&action).await;
    }
    answer(status, &table, action.backend().unwrap_or_default())
}

async fn drain(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (deadline, spread) = drain_times(read_json::<DrainBody>(payload).await?)?;
    let action = AdminAction::Drain {
        backend: id.into_inner(),
        deadline_ms: deadline.as_millis() as u64,
        spread_ms: spread.as_millis() as u64,
    };
    act(&state, action, StatusCode::ACCEPTED).await
}

async fn undrain(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    read_json::<Value>(payload).await?;
    let action = AdminAction::Undrain {
        backend: id.into_inner(),
    };
    act(&state, action, StatusCode::OK).await
}

async fn weight(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let weight = weight_of(read_json::<WeightBody>(payload).await?)?;
    let action = AdminAction::Weight {
        backend: id.into_inner(),
        weight,
    };
    act(&state, action, StatusCode::OK).await
}

/// A weight from its body, checked.
fn weight_of(body: Option<WeightBody>) -> Result<u32, ApiError> {
    let Some(WeightBody { weight }) = body else {
        return Err(ApiError::bad_request("a body {\"weight\": N} is required"));
    };
    checked_weight(weight)
}

/// A weight in `1..=MAX_WEIGHT` (0 is what a drain is for).
fn checked_weight(weight: u32) -> Result<u32, ApiError> {
    if weight == 0 || weight > MAX_WEIGHT {
        return Err(ApiError::bad_request(format!(
            "field `weight`: {weight} is not between 1 and {MAX_WEIGHT} (drain a backend instead of weighting it 0)"
        )));
    }
    Ok(weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(deadline: Option<f64>, spread: Option<f64>) -> Result<(u64, u64), StatusCode> {
        drain_times(Some(DrainBody {
            deadline_s: deadline,
            spread_s: spread,
        }))
        .map(|(d, s)| (d.as_millis() as u64, s.as_millis() as u64))
        .map_err(|e| e.status)
    }

    #[test]
    fn drain_times_have_defaults_and_refuse_absurd_values() {
        assert_eq!(times(None, None), Ok((60_000, 10_000)));
        assert_eq!(
            times(Some(4.0), None),
            Ok((4_000, 4_000)),
            "spread within the deadline"
        );
        assert_eq!(times(Some(30.0), Some(5.5)), Ok((30_000, 5_500)));
        assert_eq!(
            times(None, Some(300.0)),
            Ok((300_000, 300_000)),
            "a spread past the default deadline lengthens it"
        );
        assert_eq!(times(None, Some(86_400.0)), Ok((86_400_000, 86_400_000)));
        for bad in [
            times(Some(-1.0), None),
            times(Some(0.0), None),
            times(Some(1e12), None),
            times(Some(f64::NAN), None),
            times(Some(10.0), Some(11.0)),
            times(Some(10.0), Some(-0.5)),
        ] {
            assert_eq!(bad, Err(StatusCode::BAD_REQUEST));
        }
    }

    /// Found by the `admin_body` fuzz target: a spread past what a `Duration` holds panicked
    /// (`Duration::from_secs_f64`) instead of being refused.
    #[test]
    fn a_huge_drain_spread_is_refused_not_a_panic() {
        assert_eq!(times(Some(10.0), Some(1e20)), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            times(None, Some(f64::INFINITY)),
            Err(StatusCode::BAD_REQUEST)
        );
        // The fuzzer's input, exactly.
        let found = br#"{"deadline_s": 30, "spread_s": 31111111111111111111111}"#;
        assert!(
            parse_body(BodyKind::Drain, found)
                .unwrap_err()
                .contains("spread_s")
        );
        for body in [
            &br#"{"spread_s": 1e300}"#[..],
            br#"{"deadline_s": 1e300}"#,
            br#"{"deadline_s": -0.0}"#,
        ] {
            assert!(parse_body(BodyKind::Drain, body).is_err());
        }
        assert!(parse_body(BodyKind::Evacuate, br#"{"spread_s": 1e300}"#).is_err());
        // A struct's fields never come from an array.
        for kind in [
            BodyKind::Drain,
            BodyKind::Weight,
            BodyKind::Reload,
            BodyKind::Undrain,
        ] {
            assert!(parse_body(kind, b"[null, null]").is_err(), "{kind:?}");
            assert!(parse_body(kind, b" [30]").is_err(), "{kind:?}");
        }
        assert_eq!(parse_body(BodyKind::Undrain, b" \n"), Ok(()));
        assert_eq!(
            parse_body(BodyKind::Drain, br#"{"deadline_s": 30, "spread_s": 5.5}"#),
            Ok(())
        );
    }
}

/// `POST /admin/v1/reload`: reads the config file again ([`crate::control::reload`]); an
/// invalid one changes nothing and is answered with every problem and its key path.
async fn reload(
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    read_json::<Value>(payload).await?;
    let path = state.config_path.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_config_file",
            "this node was started without a config file: there is nothing to reload",
        )
    })?;
    let config = web::block(move || reload::load(&path))
        .await
        .map_err(|_| ApiError::unavailable("the reload could not run"))?
        .map_err(reload_refused)?;
    let reloaded = reload::apply(&state.supervisor, &state.tls, config)
        .await
        .map_err(reload_refused)?;
    let mut answer = serde_json::to_value(&reloaded.report).unwrap_or_default();
    answer["certificates"] = json!(reloaded.certificates);
    Ok(HttpResponse::Ok().json(answer))
}

/// A reload's refusal as its answer: an invalid file is `400 invalid_config` with its issues.
fn reload_refused(err: ReloadError) -> ApiError {
    match &err {
        ReloadError::Invalid { source, .. } => {
            let issues: Vec<Value> = source
                .issues
                .iter()
                .map(|i| json!({ "key": i.key, "message": i.message }))
                .collect();
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", err.to_string())
                .with_field("issues", json!(issues))
        }
        ReloadError::Unavailable | ReloadError::Io(_) => ApiError::unavailable(err.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBackend {
    pool: String,
    id: String,
    address: String,
    weight: Option<u32>,
    max_sessions: Option<u32>,
}

/// `POST /admin/v1/backends`: adds a backend to a pool on this node, until the next reload or
/// restart (put it in the config file to keep it).
async fn add_backend(
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = new_backend(read_json::<NewBackend>(payload).await?)?;
    let _one_at_a_time = state.adding.lock().await;
    let table = state.table.load_full();
    let pool = table.pool(&body.pool).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_pool",
            format!("no pool with id {:?}", body.pool),
        )
    })?;
    new_backend_id(&body.id)?;
    if find(&table, &body.id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "backend_exists",
            format!(
                "a backend with id {:?} exists (backend ids are unique across pools)",
                body.id
            ),
        ));
    }
    let weight = new_backend_limits(&body)?;
    let text = body.address.clone();
    let address = match web::block(move || parse_address(&text)).await {
        // Nothing can be dialled on port 0 (a config file may name it for a backend never
        // used; one added at runtime is meant to take work).
        Ok(Ok(address)) if address.port == 0 => {
            return Err(ApiError::bad_request(format!(
                "field `address`: {:?}: port 0 is not a port to connect to (1-65535)",
                body.address
            )));
        }
        Ok(Ok(address)) => address,
        Ok(Err(reason)) => {
            return Err(ApiError::bad_request(format!("field `address`: {reason}")));
        }
        Err(_) => return Err(ApiError::unavailable("the address could not be checked")),
    };
    let actor = pool_actor(&state.supervisor, &pool.id)
        .await
        .ok_or_else(|| ApiError::unavailable("the pool's actor is not running"))?;
    // The routes that send to the pool, in slot order (the table holds them in match order).
    let mut routes: Vec<(usize, String)> = table
        .routes()
        .flat_map(|r| {
            r.variants
                .iter()
                .filter(|v| v.pool.id == pool.id)
                .map(|v| (v.slot, r.id.to_string()))
        })
        .collect();
    routes.sort();
    let routes: Vec<String> = routes.into_iter().map(|(_, id)| id).collect();
    actor
        .send(AddBackend {
            backend: BackendConfig {
                id: body.id.clone(),
                address,
                weight,
                max_sessions: body.max_sessions,
            },
            routes,
        })
        .await
        .map_err(|_| ApiError::unavailable("the pool's actor did not answer"))??;
    answer(StatusCode::CREATED, &state.table.load(), &body.id)
}

/// The body of `POST /backends`, which is required.
fn new_backend(body: Option<NewBackend>) -> Result<NewBackend, ApiError> {
    body.ok_or_else(|| {
        ApiError::bad_request(
            "a body {\"pool\", \"id\", \"address\", \"weight\"?, \"max_sessions\"?} is required",
        )
    })
}

/// A new backend's id, checked as the config file's are.
fn new_backend_id(id: &str) -> Result<(), ApiError> {
    match crate::config::backend_id_problem(id) {
        Some(problem) => Err(ApiError::bad_request(format!("field `id`: {problem}"))),
        None => Ok(()),
    }
}

/// A new backend's weight (default 1) and session limit, checked: its weight.
fn new_backend_limits(body: &NewBackend) -> Result<u32, ApiError> {
    let weight = checked_weight(body.weight.unwrap_or(1))?;
    if body.max_sessions == Some(0) {
        return Err(ApiError::bad_request(
            "field `max_sessions`: must be at least 1 (omit it for no limit)",
        ));
    }
    Ok(weight)
}

/// An admin request body, for [`parse_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `POST /backends/{id}/drain`
    Drain,
    /// `POST /backends/{id}/undrain` (any JSON, or nothing)
    Undrain,
    /// `PUT /backends/{id}/weight`
    Weight,
    /// `POST /regions/{name}/evacuate`
    Evacuate,
    /// `POST /backends`
    AddBackend,
    /// `POST /reload` (any JSON, or nothing)
    Reload,
}

/// Runs the checks a handler makes on its body before it looks at any state: the same JSON
/// decoding (unknown fields refused, errors naming the field) and the same value checks.
/// `Err` is the message the caller would get with its 400. Not checked here, because they
/// need the running router: whether the backend, pool or region exists, and (for
/// `AddBackend`) the address, which may need a DNS lookup. For the fuzz targets and tests.
pub fn parse_body(kind: BodyKind, bytes: &[u8]) -> Result<(), String> {
    let checked = match kind {
        BodyKind::Drain => decode_json::<DrainBody>(bytes)
            .and_then(drain_times)
            .map(drop),
        BodyKind::Undrain | BodyKind::Reload => decode_json::<Value>(bytes).map(drop),
        BodyKind::Weight => decode_json::<WeightBody>(bytes)
            .and_then(weight_of)
            .map(drop),
        BodyKind::Evacuate => decode_json::<EvacuateBody>(bytes)
            .and_then(evacuation_spread)
            .map(drop),
        BodyKind::AddBackend => decode_json::<NewBackend>(bytes)
            .and_then(new_backend)
            .and_then(|body| {
                new_backend_id(&body.id)?;
                new_backend_limits(&body).map(drop)
            }),
    };
    checked.map_err(|err| err.message)
}

/// `DELETE /admin/v1/backends/{id}`: drains the backend (as a drain with a 60 s deadline and
/// a 10 s spread), then takes it out of its pool, on this node until the next reload.
async fn remove_backend(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let table = state.table.load_full();
    let (pool, _) = find(&table, &id).ok_or_else(|| ApiError::unknown_backend(&id))?;
    let actor = pool_actor(&state.supervisor, &pool.id)
        .await
        .ok_or_else(|| ApiError::unavailable("the pool's actor is not running"))?;
    actor
        .send(RemoveBackend {
            backend: id.to_string(),
        })
        .await
        .map_err(|_| ApiError::unavailable("the pool's actor did not answer"))??;
    answer(StatusCode::ACCEPTED, &state.table.load(), &id)
}
