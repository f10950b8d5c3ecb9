//! The one mapping from failures to HTTP: `{"error": {"code", "message"}}` with the right
//! status, everywhere (docs/http-api.md). Internal failures are logged with their detail and
//! answered with a generic message.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;
use crossfire_engine::debate::RequestError;
use crossfire_engine::motion::MotionError;
use crossfire_engine::screen::ScreenError;

/// When to try a motion again while the moderation endpoint does not answer.
const MODERATION_RETRY_S: u64 = 30;

/// The shape of every error body: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// For `motion_refused`: the policy category (`hate`, `self_harm`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// The `code` of an error body: what a client can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    TooLarge,
    UnsupportedMediaType,
    Invalid,
    Unauthorized,
    InvalidCredentials,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooManyRequests,
    Unavailable,
    /// The motion breaks the screening policy (422).
    MotionRefused,
    /// The moderation endpoint does not answer and the deployment refuses what it cannot
    /// screen (503, with `Retry-After`).
    ModerationUnavailable,
    /// Editors took the debate or perspective down (410).
    Removed,
    /// The deployment's daily model token budget is spent (503, with `Retry-After`: the
    /// next UTC day).
    BudgetExhausted,
    Internal,
}

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is well-formed but asks for something impossible (422).
    #[error("{0}")]
    Invalid(String),
    /// The body is not the JSON the route takes (400, 413, 415 or 422).
    #[error("{message}")]
    BadBody {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    #[error("sign in first")]
    Unauthorized,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the resource's state (409).
    #[error("{0}")]
    Conflict(String),
    /// A limit is reached; the client may try again after `retry_after` seconds.
    #[error("{message}")]
    TooMany { message: String, retry_after: u64 },
    /// A dependency does not answer; the detail is logged, not sent.
    #[error("the service is unavailable")]
    Unavailable(String),
    /// The screening policy refuses the motion: the category's message, never the rule.
    #[error("{message}")]
    MotionRefused { category: String, message: String },
    /// The moderation endpoint does not answer; the detail is logged, not sent.
    #[error("motions cannot be checked right now: try again in a minute")]
    ModerationUnavailable(String),
    /// Editors took it down: what the asker may be told (the owner hears the editors' note).
    #[error("{0}")]
    Removed(String),
    /// Today's model token budget is spent; new runs wait `retry_after` seconds, for the
    /// next UTC day.
    #[error("today's debates and perspectives are all used up: try again tomorrow")]
    BudgetExhausted { retry_after: u64 },
    /// Anything else; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadBody { status, .. } => *status,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_)
            | ApiError::ModerationUnavailable(_)
            | ApiError::BudgetExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Removed(_) => StatusCode::GONE,
            ApiError::MotionRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Invalid(_) => ErrorCode::Invalid,
            ApiError::BadBody { code, .. } => *code,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::TooMany { .. } => ErrorCode::TooManyRequests,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::MotionRefused { .. } => ErrorCode::MotionRefused,
            ApiError::ModerationUnavailable(_) => ErrorCode::ModerationUnavailable,
            ApiError::Removed(_) => ErrorCode::Removed,
            ApiError::BudgetExhausted { .. } => ErrorCode::BudgetExhausted,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The body answered for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                category: match self {
                    ApiError::MotionRefused { category, .. } => Some(category.clone()),
                    _ => None,
                },
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!("{detail}"),
            ApiError::Unavailable(detail) => tracing::warn!("unavailable: {detail}"),
            ApiError::ModerationUnavailable(detail) => {
                tracing::warn!("moderation unavailable: {detail}")
            }
            _ => {}
        }
        let mut response = (self.status_code(), axum::Json(self.body())).into_response();
        let retry_after = match self {
            ApiError::TooMany { retry_after, .. } => Some(retry_after),
            ApiError::ModerationUnavailable(_) => Some(MODERATION_RETRY_S),
            ApiError::BudgetExhausted { retry_after } => Some(retry_after),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Duplicate => ApiError::Conflict("already exists".to_string()),
            other => ApiError::Internal(format!("storage: {other}")),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        let code = match status {
            StatusCode::BAD_REQUEST => ErrorCode::MalformedJson,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::Invalid,
        };
        ApiError::BadBody {
            status,
            code,
            message: rejection.body_text(),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        match e {
            RequestError::LivingPersona(_) => ApiError::Forbidden(e.to_string()),
            _ => ApiError::Invalid(e.to_string()),
        }
    }
}

impl From<ScreenError> for ApiError {
    fn from(e: ScreenError) -> ApiError {
        ApiError::ModerationUnavailable(e.to_string())
    }
}

impl From<MotionError> for ApiError {
    fn from(e: MotionError) -> ApiError {
        ApiError::Invalid(e.to_string())
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// `Query<T>` whose rejections are [`ApiError`]s (422, naming the bad parameter).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e: QueryRejection| ApiError::Invalid(e.body_text()))?;
        Ok(ApiQuery(value))
    }
}
