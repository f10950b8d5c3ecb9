//! Accounts: sign-up, login, logout, and the signed-in user of a request (session cookie or
//! `Authorization: Bearer`). Passwords are hashed with argon2id off the async runtime;
//! session tokens are 256 random bits, stored only as SHA-256 hashes.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use crate::store::{User, now_ms};

/// The session cookie's name.
pub const COOKIE: &str = "crossfire_session";
const SESSION_DAYS: i64 = 30;
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// A new session: its token (also set as a cookie) and who it is for.
#[derive(Serialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub user: User,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    email: String,
    password: String,
}

/// `POST /api/auth/signup`
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = Credentials,
    responses((status = 201, description = "Signed up and in, with a session cookie", body = Session), (status = 409, description = "Email taken", body = ErrorBody), (status = 422, description = "Bad email or password length", body = ErrorBody), (status = 429, description = "Too many sign-ups from this address (Retry-After)", body = ErrorBody)))]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    if let Some(limiter) = &state.signup_limiter {
        let ip = client_ip(&headers, peer, state.config.client_ip_header.as_deref());
        limiter.check(&[format!("ip:{ip}")])?;
    }
    let email = normalize_email(&body.email)?;
    let chars = body.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return Err(ApiError::Invalid(format!(
            "the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
        )));
    }
    let hash = hash_password(body.password).await?;
    let user = state.store.create_user(&email, &hash, now_ms()).await?;
    session_response(&state, &headers, user, StatusCode::CREATED).await
}

/// `POST /api/auth/login`
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, description = "Signed in, with a session cookie", body = Session), (status = 401, description = "Wrong email or password", body = ErrorBody), (status = 429, description = "Too many attempts", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_lowercase();
    let ip = client_ip(&headers, peer, state.config.client_ip_header.as_deref());
    state
        .login_limiter
        .check(&[format!("email:{email}"), format!("ip:{ip}")])?;
    let stored = state.store.credentials(&email).await?;
    // An unknown email costs the same as a wrong password: both verify a hash.
    let (user_id, hash) = match stored {
        Some(c) => (Some(c.id), Some(c.password_hash)),
        None => (None, None),
    };
    let valid = verify_password(body.password, hash).await?;
    let user = match (valid, user_id) {
        (true, Some(id)) => state.store.user(id).await?,
        _ => None,
    };
    let Some(user) = user else {
        return Err(ApiError::InvalidCredentials);
    };
    session_response(&state, &headers, user, StatusCode::OK).await
}

/// `POST /api/auth/logout`
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = token_of(&headers).ok_or(ApiError::Unauthorized)?;
    let ended = state
        .store
        .delete_session(&crossfire_engine::sha256_hex(token.as_bytes()))
        .await?;
    if !ended {
        return Err(ApiError::Unauthorized);
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The signed-in user", body = User), (status = 401, description = "Not signed in", body = ErrorBody)))]
/// `GET /api/auth/me`
pub async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user)
}

/// The signed-in user; requests without a live session are answered 401.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = token_of(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user = state
            .store
            .session_user(&crossfire_engine::sha256_hex(token.as_bytes()), now_ms())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(CurrentUser(user))
    }
}

/// The signed-in user if there is one: pages render for everyone, and differently for readers.
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match CurrentUser::from_request_parts(parts, state).await {
            Ok(CurrentUser(user)) => Ok(MaybeUser(Some(user))),
            Err(ApiError::Unauthorized) => Ok(MaybeUser(None)),
            Err(e) => Err(e),
        }
    }
}

/// The client's address: from the trusted proxy's header when one is configured (its first
/// address), else the connection's peer. Without a configured header, no header is believed.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted: Option<&str>) -> IpAddr {
    trusted
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse().ok())
        .unwrap_or_else(|| peer.ip())
}

/// The session token of a request: `Authorization: Bearer`, else the cookie.
fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

async fn session_response(
    state: &AppState,
    headers: &HeaderMap,
    user: User,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let expires = now_ms() + SESSION_DAYS * 24 * 3600 * 1000;
    state
        .store
        .create_session(
            &crossfire_engine::sha256_hex(token.as_bytes()),
            user.id,
            expires,
        )
        .await?;
    // Secure when the client reached us over https (directly or through a proxy).
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_DAYS * 24 * 3600,
        if https { "; Secure" } else { "" }
    );
    let body = Json(Session { token, user });
    Ok((status, [(header::SET_COOKIE, cookie)], body).into_response())
}

/// A plausible email address, lowercased: something@domain.tld, no spaces, ≤ 254 chars.
fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::Invalid(
            "that is not an email address".to_string(),
        ))
    }
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .ok()
    .and_then(Result::ok)
    .ok_or_else(|| ApiError::Internal("hashing failed".to_string()))
}

/// Verifies against `hash`, or — for an unknown email — against a dummy hash, so that both
/// cost the same. Everything, including making the dummy hash once, runs off the runtime.
async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
        let matches = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && matches
    })
    .await
    .map_err(|_| ApiError::Internal("verifying failed".to_string()))
}

/// A real argon2id hash of a random password, verified for unknown emails.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let password = hex::encode(rand::random::<[u8; 16]>());
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}
