//! `portcullis check -c FILE`.

use std::path::Path;
use std::process::ExitCode;

use portcullis_config::Config;

/// Prints every error (path: message) and returns 1, or a summary and 0.
pub fn run(path: &Path) -> ExitCode {
    let result = Config::load(path).and_then(|config| {
        let summary = config.summary();
        portcullis_proxy::check(config).map(|_| summary)
    });
    match result {
        Ok(summary) => {
            println!("{}: ok: {summary}", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{}: {error}", path.display());
            }
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}
