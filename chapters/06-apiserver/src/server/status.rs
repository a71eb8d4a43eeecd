//! Errors as Kubernetes `Status` objects.
//!
//! Every failed request gets an HTTP status code *and* a `Status` body that says why.
//! kubectl prints it as `Error from server (NotFound): pods "web" not found`; typed clients
//! raise an exception per reason (the Python client's `ApiException` carries `.status`).
//!
//! What the real kube-apiserver does differently: nothing in shape; it has more reasons
//! (`Unauthorized`, `Forbidden`, `TooManyRequests`, ...) because it has authentication,
//! authorization and priority-and-fairness queues, which we leave out.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::Cause;

// ANCHOR: api_error
/// A failed request: the HTTP code, the machine-readable reason and a message for humans.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, `BadRequest`, ...
    pub reason: &'static str,
    pub message: String,
    /// `details`: which object (name, kind) and, for `Invalid`, the causes.
    pub details: Value,
}

impl ApiError {
    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("{plural} \"{name}\" not found"))
            .with_details(json!({"name": name, "kind": plural}))
    }
    pub fn already_exists(plural: &str, name: &str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "AlreadyExists", format!("{plural} \"{name}\" already exists"))
            .with_details(json!({"name": name, "kind": plural}))
    }
    /// The optimistic-concurrency failure: someone else wrote the object since you read it.
    pub fn conflict(plural: &str, name: &str) -> ApiError {
        let message = format!(
            "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        ApiError::new(StatusCode::CONFLICT, "Conflict", message).with_details(json!({"name": name, "kind": plural}))
    }
    pub fn invalid(kind: &str, name: &str, causes: &[Cause]) -> ApiError {
        let list: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": "FieldValueRequired", "message": c.message, "field": c.field}))
            .collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {}", list.join(", ")),
        )
        .with_details(json!({"name": name, "kind": kind, "causes": causes}))
    }
    /// A watch or continue token from before the compacted revision.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GONE, "Expired", message)
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason, message: message.into(), details: Value::Null }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16(),
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.to_status())).into_response()
    }
}
// ANCHOR_END: api_error

impl From<crate::Error> for ApiError {
    fn from(err: crate::Error) -> ApiError {
        match err {
            crate::Error::Compacted { .. } => ApiError::expired(format!("too old resource version: {err}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// `Result` of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
