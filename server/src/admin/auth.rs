//! The admin API's bearer token: every call that changes something needs
//! `Authorization: Bearer TOKEN`, checked before routing, so an unknown backend id without a
//! token is 401, not 404. Reads (`GET`) need none: the admin listener is loopback-only by
//! default. Without a configured token the API is read-only.
//!
//! Every call that changes something is logged (target `switchyard::admin::audit`) with who
//! made it — the client's address and a short fingerprint of the token it presented (the
//! first 8 hex digits of its SHA-256; never the token) — and what came of it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::error::ApiError;
use super::state::AdminState;

/// The bearer token a request presents, if any.
fn presented(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether `presented` may change things on this node: `Err` is the refusal — `401` without
/// a token, `403` for a wrong one or when this node has none configured (read-only).
fn check(configured: Option<&str>, presented: Option<&str>) -> Result<(), ApiError> {
    match (presented, configured) {
        (None, _) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this call needs Authorization: Bearer <admin token>",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer")),
        (Some(_), None) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API is read-only on this node: no admin token is configured (node.admin_token_file or SWITCHYARD_ADMIN_TOKEN)",
        )),
        (Some(given), Some(token)) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "wrong admin token",
        )),
    }
}

/// Who made a call, for the audit log: the client's address and its token's fingerprint.
fn who(peer: Option<std::net::SocketAddr>, presented: Option<&str>) -> (String, String) {
    (
        peer.map_or_else(|| "-".to_string(), |a| a.to_string()),
        presented.map_or_else(|| "none".to_string(), fingerprint),
    )
}

/// Counts and logs a refused call.
fn refused(client: &str, token: &str, method: &Method, path: &str, refusal: &ApiError) {
    metrics::counter!("switchyard_admin_refused_total").increment(1);
    tracing::warn!(target: "switchyard::admin::audit", %client, %token, %method, %path, status = refusal.status.as_u16(), reason = refusal.kind, "admin call refused");
}

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let configured = req
        .app_data::<web::Data<AdminState>>()
        .and_then(|s| s.token.clone());
    let presented = presented(req.headers());
    let (client, token) = who(req.peer_addr(), presented);
    let (method, path) = (req.method().clone(), req.path().to_string());
    match check(configured.as_deref(), presented) {
        Ok(()) => {
            let answered = next.call(req).await?;
            tracing::info!(target: "switchyard::admin::audit", %client, %token, %method, %path, status = answered.status().as_u16(), "admin call");
            Ok(answered.map_into_left_body())
        }
        Err(refusal) => {
            refused(&client, &token, &method, &path, &refusal);
            Ok(req
                .into_response(refusal.error_response())
                .map_into_right_body())
        }
    }
}

/// `POST /admin/v1/auth`: whether the bearer token presented is this node's —
/// `{"valid": true}`, or `{"valid": false, "error", "message"}` (counted and logged as a
/// refusal) — `200` either way; without a token `401`, as any call. Changes nothing: the
/// console checks a token with it before keeping it (a refused call would be an error in the
/// browser's console). Served outside the guarded scope, with the same check.
pub async fn token_check(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let presented = presented(req.headers());
    match check(state.token.as_deref(), presented) {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({ "valid": true }))),
        Err(refusal) => {
            let (client, token) = who(req.peer_addr(), presented);
            if presented.is_none() {
                refused(&client, &token, req.method(), req.path(), &refusal);
                return Err(refusal);
            }
            // A token checked and found wrong: an answer, not a refused call.
            metrics::counter!("switchyard_admin_refused_total").increment(1);
            tracing::warn!(target: "switchyard::admin::audit", %client, %token, reason = refusal.kind, "admin token refused");
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "valid": false,
                "error": refusal.kind,
                "message": refusal.message,
            })))
        }
    }
}

/// The first 8 hex digits of the token's SHA-256: tells two tokens apart in the log without
/// showing either.
fn fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares the two tokens' SHA-256 digests byte by byte, all 32 of them: the time depends
/// neither on where the tokens differ nor on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_match_only_when_equal() {
        assert!(super::same(b"s3cret-token", b"s3cret-token"));
        assert!(!super::same(b"s3cret-token", b"s3cret-tokeN"));
        assert!(!super::same(b"s3cret", b"s3cret-token"));
        assert!(!super::same(b"", b"s3cret-token"));
        assert!(super::same(b"", b""));
    }
}
