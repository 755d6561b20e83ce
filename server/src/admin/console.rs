//! The operator console: `GET /console` on the admin listener, a page that reads the admin API
//! every second and acts through it (docs/OPERATIONS.md). Plain HTML, CSS and JavaScript
//! compiled into the binary — no build step, nothing fetched from elsewhere — served with a
//! content security policy that lets the page talk to this listener only. Viewing needs no
//! token (as the read API); acting sends the admin token as a bearer header, which the page
//! keeps in the tab's `sessionStorage` and checks first with `POST /admin/v1/auth`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::request::read;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// Only this listener, for everything: scripts, styles, calls; no frames, no inline code.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(read("/console", page))
        .service(read("/console/", page))
        .service(read("/console/console.js", script))
        .service(read("/console/console.css", style));
}

fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}

async fn page() -> HttpResponse {
    asset(PAGE, "text/html; charset=utf-8")
}

async fn script() -> HttpResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> HttpResponse {
    asset(STYLE, "text/css; charset=utf-8")
}
