//! A refused admin call and its answer: status, `{"error": kind, "message": ...}` (plus any
//! further fields, such as a refused reload's `issues`) and the headers HTTP asks for
//! (`Allow` on a 405, `WWW-Authenticate` on a 401). Handlers return `Result<_, ApiError>`;
//! actix-web turns the error into its answer through [`ResponseError`].

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value};

use crate::control::pool::PoolError;

/// A refused admin call, before it becomes its answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// Further fields of the body, after `error` and `message`.
    extra: Vec<(&'static str, Value)>,
    /// Headers the answer carries.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The router (an actor, a blocking task) could not do what was asked right now.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn unknown_backend(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_backend",
            format!("no backend with id {id:?}"),
        )
    }

    pub fn unknown_route(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_route",
            format!("no route with id {id:?}"),
        )
    }

    /// The answer carries `name: value` too.
    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> ApiError {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// The body carries the field `key` too.
    pub fn with_field(mut self, key: &'static str, value: Value) -> ApiError {
        self.extra.push((key, value));
        self
    }

    fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::from(self.kind));
        body.insert("message".into(), Value::from(self.message.clone()));
        for (key, value) in &self.extra {
            body.insert((*key).into(), value.clone());
        }
        Value::Object(body)
    }
}

/// A pool's refusal, by what it says: an unknown backend is `404 unknown_backend`, an id
/// taken `409 backend_exists`, a backend on its way out `409 conflict`.
impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> ApiError {
        let (status, kind) = match &err {
            PoolError::NoBackend { .. } => (StatusCode::NOT_FOUND, "unknown_backend"),
            PoolError::Exists { .. } => (StatusCode::CONFLICT, "backend_exists"),
            PoolError::Removing { .. } => (StatusCode::CONFLICT, "conflict"),
        };
        ApiError::new(status, kind, err.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind,
            self.status.as_u16(),
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut answer = HttpResponse::build(self.status);
        for header in &self.headers {
            answer.insert_header(header.clone());
        }
        answer.json(self.body())
    }
}
