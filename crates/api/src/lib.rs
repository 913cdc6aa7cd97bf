//! errand-api: the HTTP face of errand.
//!
//! # Layout
//! - [`startup`]: builds the actix-web app from settings (`Application`).
//! - `routes`: one module per resource.
//! - `access`: API keys (scopes, constant-time match) and the submit rate limit.
//! - `error`: `ApiError`, mapped to problem+json in one place.
//! - `retry_after`: the middleware that writes every `Retry-After` (API and dashboard).
//! - `extract`: `JsonBody`, the JSON request body every submit route reads.
//! - [`openapi`]: the OpenAPI document behind `/openapi.json` and `/docs`.
//! - `metrics`: `GET /metrics` (Prometheus), the HTTP middleware that feeds it.
//! - `views`: the JSON the API serves, built from the store's types.
//! - `redoc`: `/redoc` with ReDoc's script served from here, not a CDN.
//! - `registry`: the kind registry as this process holds it: what submits are validated
//!   against (each kind's JSON Schema, compiled once) and what the documents show.

mod access;
mod background;
mod error;
mod events;
mod extract;
mod metrics;
pub mod openapi;
mod redoc;
mod registry;
mod retry_after;
mod routes;
pub mod startup;
mod state;
mod ui;
mod views;
