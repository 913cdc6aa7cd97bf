//! The errand-api binary: settings, telemetry, serve.

use errand_api::startup::Application;
use errand_core::{Settings, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init("errand-api", &settings.log, std::io::stdout);
    let app = Application::build(settings)?;
    tracing::info!(
        port = app.port(),
        "errand-api listening; Swagger UI at /docs"
    );
    app.run_until_stopped().await?;
    Ok(())
}
