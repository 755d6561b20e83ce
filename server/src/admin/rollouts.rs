//! The admin API's canary rollouts: `POST /admin/v1/rollouts` starts one on a route (it needs
//! no `split` in the config: the route gets one), `GET …/rollouts[/{id}]` shows where each
//! stands — its step, the figures it compared and every decision with the numbers behind it —
//! and `POST …/{id}/pause`, `…/resume`, `…/promote`, `…/rollback` are the operator's hand on
//! it. The rollouts themselves live in [`crate::control::rollout`].

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::action::pool_list;
use super::error::ApiError;
use super::request::{read, read_json, resource};
use super::state::AdminState;
use crate::config::raw::DurationStr;
use crate::control::rollout::canary::Thresholds;
use crate::control::rollout::plan::{
    Action, DEFAULT_HOLD_MS, DEFAULT_STEPS, Plan, Rollout, TOTAL, check_steps, check_thresholds,
};
use crate::control::rollout::{Change, List, RolloutError, Rollouts, Start, Status};
use crate::control::supervisor::GetRollouts;
use crate::routing::RouteTable;

/// Longest wait for the rollouts actor's view (it answers from memory: longer means stuck).
pub const LIST_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/rollouts", "GET, HEAD, POST")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(start)),
    )
    .service(read("/rollouts/{id}", one));
    for action in [
        Action::Pause,
        Action::Resume,
        Action::Promote,
        Action::Rollback,
    ] {
        let path = format!("/rollouts/{{id}}/{}", action.as_str());
        cfg.service(resource(&path, "POST").route(web::post().to(
            move |state: web::Data<AdminState>, id: web::Path<String>, payload: web::Payload| {
                change(state, id.into_inner(), action, payload)
            },
        )));
    }
}

/// The node's rollouts actor.
pub async fn rollouts(state: &AdminState) -> Result<Addr<Rollouts>, ApiError> {
    state
        .supervisor
        .send(GetRollouts)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::unavailable("the rollouts actor is not running"))
}

/// The rollouts and this node's status as the actor last read them (none if it does not
/// answer in time).
async fn last_read(actor: &Addr<Rollouts>) -> (Vec<Rollout>, Status) {
    actor
        .send(List)
        .timeout(LIST_WITHIN)
        .await
        .unwrap_or_default()
}

/// `409 rollout_exists` when `route` has a rollout running or paused: the route is that
/// rollout's to weigh.
pub async fn refuse_if_active(actor: &Addr<Rollouts>, route: &str) -> Result<(), ApiError> {
    let (all, _) = last_read(actor).await;
    match all
        .iter()
        .find(|r| r.plan.route == route && r.phase.is_active())
    {
        Some(active) => Err(RolloutError::Exists {
            route: route.to_string(),
            existing: active.id.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

impl From<RolloutError> for ApiError {
    fn from(err: RolloutError) -> ApiError {
        let message = err.to_string();
        match err {
            RolloutError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_rollout", message)
            }
            RolloutError::Exists { existing, .. } => {
                ApiError::new(StatusCode::CONFLICT, "rollout_exists", message)
                    .with_field("rollout", Value::from(existing))
            }
            RolloutError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            RolloutError::Unavailable(_) => ApiError::unavailable(message),
        }
    }
}

/// A rollout as the API shows it.
fn view(r: &Rollout, status: &Status) -> Value {
    let weights: serde_json::Map<String, Value> = r
        .weights()
        .into_iter()
        .map(|(pool, w)| (pool, Value::from(w)))
        .collect();
    json!({
        "id": r.id,
        "route": r.plan.route,
        "baseline": r.plan.baseline,
        "canary": r.plan.canary,
        "phase": r.phase.as_str(),
        "step": r.step,
        "steps": r.plan.steps,
        "percent": r.percent(),
        "hold_s": r.plan.hold_ms as f64 / 1000.0,
        "min_requests": r.plan.thresholds.min_requests,
        "thresholds": {
            "error_ratio": r.plan.thresholds.error_ratio,
            "error_margin_pp": r.plan.thresholds.error_margin_pp,
            "latency_ratio": r.plan.thresholds.latency_ratio,
            "latency_margin_ms": r.plan.thresholds.latency_margin_ms,
        },
        "weights": weights,
        "step_started_ms": r.step_started_ms,
        "window": r.last,
        "history": r.history,
        "held": status.held,
        "version": r.version,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
    })
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, ApiError> {
    let (all, status) = rollouts(&state)
        .await?
        .send(List)
        .timeout(LIST_WITHIN)
        .await
        .map_err(|_| ApiError::unavailable("the rollouts actor did not answer"))?;
    let views: Vec<Value> = all.iter().map(|r| view(r, &status)).collect();
    Ok(HttpResponse::Ok().json(json!({
        "rollouts": views,
        "shared": status.shared,
        "deciding": status.deciding,
        "held": status.held,
        "read_ms_ago": status.read_at.map(|t| t.elapsed().as_millis() as u64),
    })))
}

async fn one(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (all, status) = rollouts(&state)
        .await?
        .send(List)
        .timeout(LIST_WITHIN)
        .await
        .map_err(|_| ApiError::unavailable("the rollouts actor did not answer"))?;
    let found = all
        .iter()
        .find(|r| r.id == *id)
        .ok_or_else(|| ApiError::from(RolloutError::NotFound(id.into_inner())))?;
    Ok(HttpResponse::Ok().json(view(found, &status)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    route: String,
    baseline: String,
    canary: String,
    steps: Option<Vec<f64>>,
    hold: Option<DurationStr>,
    min_requests: Option<u64>,
    thresholds: Option<ThresholdsBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsBody {
    error_ratio: Option<f64>,
    error_margin_pp: Option<f64>,
    latency_ratio: Option<f64>,
    latency_margin_ms: Option<f64>,
}

/// The plan a start asks for, checked against the running route table.
fn plan(table: &RouteTable, body: StartBody) -> Result<Plan, ApiError> {
    let route = table
        .routes()
        .find(|r| *r.id == *body.route)
        .ok_or_else(|| {
            ApiError::bad_request(format!("field `route`: no route {:?}", body.route))
        })?;
    if !route.sends_to(&body.baseline) {
        return Err(ApiError::bad_request(format!(
            "field `baseline`: route {:?} does not send to pool {:?} (it sends to {})",
            body.route,
            body.baseline,
            pool_list(route)
        )));
    }
    if table.pool(&body.canary).is_none() {
        return Err(ApiError::bad_request(format!(
            "field `canary`: no pool {:?}",
            body.canary
        )));
    }
    if body.canary == body.baseline {
        return Err(ApiError::bad_request(
            "field `canary`: the canary must be another pool than the baseline",
        ));
    }
    if route
        .shadow
        .as_ref()
        .is_some_and(|s| *s.pool.id == *body.canary)
    {
        return Err(ApiError::bad_request(format!(
            "field `canary`: pool {:?} is the route's shadow: its answers are discarded",
            body.canary
        )));
    }
    // The route's weights now, scaled to sum to TOTAL.
    let now: Vec<(String, u64)> = match &route.split {
        Some(split) => route
            .variants
            .iter()
            .zip(split.weights().values.iter())
            .map(|(v, w)| (v.pool.id.to_string(), u64::from(*w)))
            .collect(),
        None => vec![(route.pool().id.to_string(), 1)],
    };
    if now.iter().any(|(p, w)| *p == body.canary && *w > 0) {
        return Err(ApiError::bad_request(format!(
            "field `canary`: pool {:?} already takes a share of route {:?}: a canary starts at 0",
            body.canary, body.route
        )));
    }
    let total: u64 = now.iter().map(|(_, w)| w).sum::<u64>().max(1);
    let start: Vec<(String, u32)> = now
        .into_iter()
        .filter(|(p, _)| *p != body.canary)
        .map(|(p, w)| (p, (w * u64::from(TOTAL) / total) as u32))
        .collect();
    if start.iter().any(|(p, w)| *p == body.baseline && *w == 0) {
        return Err(ApiError::bad_request(format!(
            "field `baseline`: pool {:?} takes no share of route {:?}: there is nothing to move to the canary",
            body.baseline, body.route
        )));
    }
    let steps = body.steps.unwrap_or_else(|| DEFAULT_STEPS.to_vec());
    check_steps(&steps).map_err(ApiError::bad_request)?;
    let defaults = Thresholds::default();
    let given = body.thresholds.unwrap_or(ThresholdsBody {
        error_ratio: None,
        error_margin_pp: None,
        latency_ratio: None,
        latency_margin_ms: None,
    });
    let thresholds = Thresholds {
        error_ratio: given.error_ratio.unwrap_or(defaults.error_ratio),
        error_margin_pp: given.error_margin_pp.unwrap_or(defaults.error_margin_pp),
        latency_ratio: given.latency_ratio.unwrap_or(defaults.latency_ratio),
        latency_margin_ms: given
            .latency_margin_ms
            .unwrap_or(defaults.latency_margin_ms),
        min_requests: body.min_requests.unwrap_or(defaults.min_requests),
    };
    check_thresholds(&thresholds).map_err(ApiError::bad_request)?;
    Ok(Plan {
        route: body.route,
        baseline: body.baseline,
        canary: body.canary,
        steps,
        hold_ms: body
            .hold
            .map_or(DEFAULT_HOLD_MS, |h| h.0.as_millis() as u64),
        thresholds,
        start,
    })
}

/// `POST /admin/v1/rollouts`: `201` with the rollout; `409 rollout_exists` (with its id in
/// `rollout`) when the route has one under way.
async fn start(
    state: web::Data<AdminState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(body) = read_json::<StartBody>(payload).await? else {
        return Err(ApiError::bad_request(
            "a body {\"route\": ..., \"baseline\": ..., \"canary\": ...} is required",
        ));
    };
    let actor = rollouts(&state).await?;
    // One under way on the route is the answer, before what the route looks like under it.
    refuse_if_active(&actor, &body.route).await?;
    let plan = plan(&state.table.load(), body)?;
    let rollout = actor
        .send(Start(plan))
        .await
        .map_err(|_| ApiError::unavailable("the rollouts actor did not answer"))??;
    let (_, status) = last_read(&actor).await;
    Ok(HttpResponse::build(StatusCode::CREATED).json(view(&rollout, &status)))
}

async fn change(
    state: web::Data<AdminState>,
    id: String,
    action: Action,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    read_json::<Value>(payload).await?;
    let actor = rollouts(&state).await?;
    let rollout = actor
        .send(Change { id, action })
        .await
        .map_err(|_| ApiError::unavailable("the rollouts actor did not answer"))??;
    let (_, status) = last_read(&actor).await;
    Ok(HttpResponse::Ok().json(view(&rollout, &status)))
}
