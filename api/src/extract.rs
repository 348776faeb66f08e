//! Extractors: the authenticated caller and validated JSON bodies.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use countersign_domain::ErrorCode;
use countersign_domain::auth::Session;
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::problem::{ApiError, validation};
use crate::state::AppState;

/// The verified caller. Handlers then ask `session.principal.authorize(Action::…)`.
pub struct Caller(pub Session);

impl Deref for Caller {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.0
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        Box::pin(async move {
            let unauthorized =
                || ApiError::new(ErrorCode::Unauthorized, "a valid access token is required");
            let state = state.ok_or_else(unauthorized)?;
            let bearer = bearer.ok_or_else(unauthorized)?;
            let session = state.auth.authenticate(&bearer).await?;
            crate::telemetry::record_caller(&session);
            Ok(Caller(session))
        })
    }
}

/// A JSON body that passed its `validator` constraints.
pub struct Valid<T>(pub T);

impl<T> Valid<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for Valid<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let body: T = crate::problem::body_from_json(json.await?.into_inner())?;
            body.validate().map_err(validation)?;
            Ok(Valid(body))
        })
    }
}

/// Deserialises a field that distinguishes "absent" (`None`) from `null` (`Some(None)`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
