//! The errand-api binary: settings, telemetry, serve.
//!
//! `errand-api openapi [--product]` prints the OpenAPI document this configuration would
//! serve at `/openapi.json` (or `/openapi/product.json`) with the built-in kinds registered
//! and no others, and exits, without binding a port or
//! touching Redis: what client generators and `scripts/openapi-check.sh` read.

use errand_api::{openapi, startup::Application};
use errand_core::{Settings, telemetry};
use errand_kinds::{Catalog, Limits};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("openapi") {
        // What a fresh deployment serves: the built-in kinds, as this api seeds them.
        let builtin = Catalog::new(Limits::from(&settings.tasks));
        let docs = openapi::Documents::build(&openapi::DocKind::of(&builtin), &settings);
        let doc = match args.get(1).map(String::as_str) {
            None => docs.full,
            Some("--product") => docs.product,
            Some(other) => {
                anyhow::bail!("unknown argument `{other}`; usage: errand-api openapi [--product]")
            }
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let _telemetry = telemetry::init(
        "errand-api",
        &settings.log,
        &settings.telemetry,
        std::io::stdout,
    )?;
    let app = Application::build(settings)?;
    tracing::info!(
        port = app.port(),
        "errand-api listening; Swagger UI at /docs"
    );
    app.listen_for_signals();
    app.run_until_stopped().await?;
    Ok(())
}
