//! The admin listener (default `127.0.0.1:9901`): `/metrics` (Prometheus text), `/healthz`
//! (the process is alive), `/readyz` (it takes traffic; false while stopping) and the JSON
//! admin API under `/admin/v1/` ([`api`], guarded by [`auth`], shared across nodes by
//! [`cluster`]), and the operator console at `/console` ([`console`]).
//!
//! Layers, each importing only those below it: [`state`] and [`error`] (what handlers hold
//! and how they refuse), [`request`] (resources and JSON bodies), [`action`] (applying a change to a pool actor or a route's split),
//! [`cluster`] (sharing changes between nodes), [`auth`], [`api`], [`traffic`] (the routes'
//! weights and blue-green switches) and [`rollouts`] (canary rollouts).

pub mod action;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod console;
pub mod error;
pub mod request;
pub mod rollouts;
pub mod state;
pub mod traffic;

use actix_web::{HttpResponse, web};

use crate::lifecycle::Readiness;
use crate::telemetry;

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<state::AdminState>) {
    cfg.app_data(web::Data::from(state.ready.clone()))
        .app_data(state)
        .service(request::read("/metrics", metrics))
        .service(request::read("/healthz", healthz))
        .service(request::read("/readyz", readyz))
        .configure(console::configure)
        .configure(api::configure);
}

async fn metrics() -> HttpResponse {
    match telemetry::metrics_handle() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::ServiceUnavailable()
            .body("metrics unavailable: another metrics recorder was installed first\n"),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(ready: web::Data<Readiness>) -> HttpResponse {
    if ready.get() {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready\n")
    }
}
