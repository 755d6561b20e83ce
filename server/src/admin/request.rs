//! What every admin handler does with its request: resources that answer `405` with `Allow`
//! to other methods, and JSON bodies read within a size limit and decoded with the offending
//! field named.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;

use super::error::ApiError;

/// Largest admin request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The `Allow` of a path that only reads.
const READ: &str = "GET, HEAD";

/// A path that only reads, served by `handler` for `GET` and `HEAD`; any other method `405`.
pub fn read<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource(path, READ)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

/// A path served with the methods in `allow` (routes added by the caller); any other method is
/// `405 Method Not Allowed` with `Allow: {allow}`, as HTTP asks, not a `404` that would read as
/// a wrong path.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
}

async fn method_not_allowed(allow: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this path takes {allow}"),
    )
    .with_header(actix_web::http::header::ALLOW, allow))
}

/// Reads a JSON body (empty is `None`), at most [`MAX_BODY_BYTES`]; errors name the field.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    mut payload: web::Payload,
) -> Result<Option<T>, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::bad_request(format!("cannot read the body: {err}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("admin request bodies are at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    decode_json(&body)
}

/// A whole JSON body (empty or blank is `None`) as `T`; errors name the field. A body is an
/// object: an array is refused even where its items would fill a struct's fields in order.
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(None),
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "malformed JSON body: admin request bodies are JSON objects",
            ));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de)
        .map(Some)
        .map_err(|err| {
            let path = err.path().to_string();
            let inner = err.inner();
            let message =
                if inner.is_syntax() || inner.is_eof() || matches!(path.as_str(), "." | "") {
                    format!("malformed JSON body: {inner}")
                } else {
                    format!("field `{path}`: {inner}")
                };
            ApiError::bad_request(message)
        })
}
