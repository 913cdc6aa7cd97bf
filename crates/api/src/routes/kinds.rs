use actix_web::{HttpResponse, get, web};
use errand_kinds::KindInfo;

use crate::state::AppState;

/// The task catalog: every kind, its aliases, idempotency, and payload JSON schema.
#[utoipa::path(tag = "tasks", responses((status = 200, body = Vec<KindInfo>)))]
#[get("/v1/kinds")]
pub(crate) async fn list_kinds(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.catalog.infos())
}
