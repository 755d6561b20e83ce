//! The admin listener (default `127.0.0.1:9901`): `/metrics` (Prometheus text), `/healthz`
//! (the process is alive), `/readyz` (it takes traffic; false while stopping) and the JSON
//! admin API under `/admin/v1/` ([`api`], guarded by [`auth`], shared across nodes by
//! [`cluster`]).

pub mod api;
pub mod auth;
pub mod cluster;

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};

use crate::telemetry;

/// Whether this node takes traffic: set once the listeners are up, cleared when it stops.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<api::AdminState>) {
    cfg.app_data(web::Data::from(state.ready.clone()))
        .app_data(state)
        .service(
            read("/metrics")
                .route(web::get().to(metrics))
                .route(web::head().to(metrics)),
        )
        .service(
            read("/healthz")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz)),
        )
        .service(
            read("/readyz")
                .route(web::get().to(readyz))
                .route(web::head().to(readyz)),
        )
        .configure(api::configure);
}

/// A path that only reads: `GET` and `HEAD`, any other method `405` with `Allow`.
fn read(path: &str) -> actix_web::Resource {
    api::resource(path, api::READ)
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
