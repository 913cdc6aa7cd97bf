//! Request extractors shared by the routes.

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body, read within `api.max_body_bytes` (actix's `PayloadConfig`) and
/// parsed into `T`. Unlike `web::Json`, every failure is one of ours: 413 `too-large`, 415
/// `unsupported-media-type`, or 400 naming the offending field.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = bytes.await.map_err(ApiError::body)?;
            parse_json(&req, &body).map(JsonBody)
        })
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a JSON body already read, naming the offending field on a type error. For
/// routes that read their body themselves (the batch, under its own limit); the others
/// take a [`JsonBody`].
pub(crate) fn parse_json<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != "." && !inner.is_syntax() && !inner.is_eof()).then_some(path);
        ApiError::BadRequest {
            field,
            detail: format!("invalid JSON body: {inner}"),
        }
    })
}
