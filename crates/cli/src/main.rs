//! `errand`: the command line for errand's HTTP API. Every command prints text for people
//! or, with `--output json`, the API's JSON for scripts; the exit code says how it ended
//! (see [`exit`]), so a script can branch without parsing anything.

mod args;
mod exit;
mod flow;
mod output;
mod run;
mod workflow;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors; clap knows which is which.
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("errand: cannot start: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    match rt.block_on(run::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("errand: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
