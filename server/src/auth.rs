//! Sign-in: Argon2id password hashes, random session tokens stored only as SHA-256 hashes,
//! the token as an `HttpOnly; SameSite=Strict` cookie and in the login answer (for
//! `Authorization: Bearer`), and the [`CurrentUser`] extractor every account route uses.
//! A cookie-authenticated request that changes state must carry `X-Requested-With` or a
//! same-origin `Origin`, which a cross-site page cannot forge.
//!
//! Sign-in is guarded ([`crate::sign_in::SignInGuard`]): attempts are rate-limited per client address and
//! failures per user name (429 with `Retry-After`), and at most a few password hashes
//! (19 MiB and a core each) run at once.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use lvbak_core::protocol::{Account, SignedIn};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::identity::random_bytes;
use crate::storage::UserRecord;
use crate::util::now;

pub const SESSION_COOKIE: &str = "lvbak_session";
const SESSION_SECONDS: i64 = 30 * 24 * 3600;

/// An Argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|error| error.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A readable random password for new accounts.
pub fn generate_password() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<15>())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The signed-in user of a request.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub UserRecord);

impl CurrentUser {
    /// Signs a request's user in for a middleware, and keeps the user with the request so
    /// its handler does not sign them in again; `None` when the request does not sign in
    /// (its handler refuses it as usual).
    pub(crate) async fn sign_in(request: Request, state: &AppState) -> (Request, Option<UserRecord>) {
        let (mut parts, body) = request.into_parts();
        let user = Self::from_request_parts(&mut parts, state).await.ok();
        if let Some(user) = &user {
            parts.extensions.insert(user.clone());
        }
        (Request::from_parts(parts, body), user.map(|CurrentUser(user)| user))
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_string())
        })
    })
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    (!token.trim().is_empty()).then(|| token.trim().to_string())
}

/// Whether a cookie-authenticated request may change state: it carries the custom header
/// (which cross-site forms cannot send and cross-site scripts cannot without a CORS grant),
/// or its `Origin` is this very host.
fn same_site_request(headers: &HeaderMap) -> bool {
    if headers.contains_key("x-requested-with") {
        return true;
    }
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(ORIGIN).and_then(|o| o.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        _ => false,
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Signed in already by a middleware on the way (see [`CurrentUser::sign_in`]).
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let (token, from_cookie) = match bearer_token(&parts.headers) {
            Some(token) => (token, false),
            None => (cookie_token(&parts.headers).ok_or(AppError::Unauthorized)?, true),
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if from_cookie && !safe && !same_site_request(&parts.headers) {
            return Err(AppError::CrossSiteRequest);
        }
        let user = state.store().accounts().session_user(&token_hash(&token), now()).await?;
        user.map(CurrentUser).ok_or(AppError::Unauthorized)
    }
}

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// User names and passwords longer than this are refused without hashing.
const MAX_CREDENTIAL_BYTES: usize = 1024;

/// The client address of a request, as the sign-in guard sees it.
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(state.sign_in().client_address(parts)))
    }
}

fn session_cookie(token: &str, max_age: i64, secure: bool) -> Result<HeaderValue, AppError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(AppError::internal)
}

/// How long a sign-in waits for a free password hasher before answering `busy`.
const HASH_WAIT: Duration = Duration::from_secs(10);

/// `POST /api/v1/auth/login`: the same 401 for an unknown user and a wrong password.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> AppResult<Response> {
    let guard = state.sign_in();
    guard.limits.take_attempt(&address).await.map_err(|retry_after| AppError::RateLimited { retry_after })?;
    if request.username.len() > MAX_CREDENTIAL_BYTES || request.password.len() > MAX_CREDENTIAL_BYTES {
        return Err(AppError::BadCredentials);
    }
    let name_key = request.username.to_lowercase();
    // A name whose failures ran out of tokens is refused before any hashing.
    guard.limits.take_failure(&name_key).await.map_err(|retry_after| AppError::RateLimited { retry_after })?;
    let permit = tokio::time::timeout(HASH_WAIT, guard.hashes.clone().acquire_owned())
        .await
        .map_err(|_| AppError::Busy { what: "sign-in", retry_after: Duration::from_secs(1) })?
        .map_err(AppError::internal)?;
    let store = state.store();
    // The hasher's permit is held from the lookup to the new session, as one sign-in.
    let found = store.accounts().credentials(&request.username).await?;
    let password = request.password;
    let verified = tokio::task::spawn_blocking(move || match found {
        Some((user, stored)) => password_matches(&password, &stored).then_some(user),
        None => {
            // An unknown user costs the same hashing as a known one.
            let _ = password_matches(&password, &DUMMY_HASH);
            None
        }
    })
    .await?;
    let Some(user) = verified else {
        return Err(AppError::BadCredentials);
    };
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let at = now();
    store.accounts().create_session(&token_hash(&token), &user.id, at, at + SESSION_SECONDS).await?;
    drop(permit);
    // A success gives back the token its own attempt took from the name's failure bucket.
    guard.limits.give_back_failure(&name_key).await;
    let mut response =
        Json(SignedIn { token: token.clone(), user: Account { id: user.id, username: user.username } }).into_response();
    response.headers_mut().insert(SET_COOKIE, session_cookie(&token, SESSION_SECONDS, guard.secure(&headers))?);
    Ok(response)
}

/// A hash of a random password, verified against for unknown users.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&generate_password()).unwrap_or_default());

/// `POST /api/v1/auth/logout`
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, _user: CurrentUser) -> AppResult<Response> {
    if let Some(token) = bearer_token(&headers).or_else(|| cookie_token(&headers)) {
        state.store().accounts().delete_session(&token_hash(&token)).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(SET_COOKIE, session_cookie("", 0, state.sign_in().secure(&headers))?);
    Ok(response)
}

/// `GET /api/v1/auth/me`
pub async fn me(CurrentUser(user): CurrentUser) -> Json<Account> {
    Json(Account { id: user.id, username: user.username })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches("correct horse", &hash));
        assert!(!password_matches("wrong horse", &hash));
        assert!(PasswordHash::new(&DUMMY_HASH).is_ok());
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!same_site_request(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_site_request(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_site_request(&headers));
        let mut custom = HeaderMap::new();
        custom.insert("x-requested-with", HeaderValue::from_static("lvbak"));
        assert!(same_site_request(&custom));
    }
}
