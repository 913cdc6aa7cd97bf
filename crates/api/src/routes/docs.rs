//! The OpenAPI documents, built from the kinds registered now (`openapi::documents`):
//! a kind a worker registers gets its typed branch without the api being restarted.

use actix_web::{HttpResponse, get, web};

use crate::{error::ApiError, state::AppState};

/// `/openapi.json`: every route, the tutorial's included.
#[get("/openapi.json")]
pub(crate) async fn openapi_full(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let docs = crate::openapi::documents(&state).await?;
    Ok(HttpResponse::Ok().json(&docs.full))
}

/// `/openapi/product.json`: the product API alone, what client generators read.
#[get("/openapi/product.json")]
pub(crate) async fn openapi_product(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let docs = crate::openapi::documents(&state).await?;
    Ok(HttpResponse::Ok().json(&docs.product))
}
