//! What goes wrong with a request, as the protocol answers it: an HTTP status and `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request is malformed, or does not fit the model or the stream's state (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// No model of that name (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The stream is held by another server sharing the store (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// A route other than health without the configured bearer token (HTTP 401).
    #[error("a bearer token is required (Authorization: Bearer …)")]
    Unauthorized,
    /// The server is stopping, or its stepping thread is gone (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The model failed on input the checks let through: a bug (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status the protocol answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::NotFound(_) => StatusCode::NOT_FOUND,
            ServeError::Conflict(_) => StatusCode::CONFLICT,
            ServeError::Unauthorized => StatusCode::UNAUTHORIZED,
            ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        (self.status(), Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
