//! Subcommands.

mod check;
mod demo;
mod keys;
mod quickstart;
mod serve;
mod waf;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Portcullis: an API security gateway.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway and a built-in demo API on an embedded default config.
    Quickstart(quickstart::Args),
    /// Run the gateway (data plane and admin listener) from a config file.
    Serve {
        /// Config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file: print every error with its place, exit 1 if there are any.
    Check {
        /// Config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Identities (customers, services, users) that own keys.
    Identities {
        #[command(subcommand)]
        command: keys::IdentitiesCommand,
    },
    /// API keys: create, list, show, update, rotate, revoke.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The inspection engine offline.
    Waf {
        #[command(subcommand)]
        command: WafCommand,
    },
}

#[derive(Debug, Subcommand)]
enum WafCommand {
    /// Judge JSON Lines requests from stdin: one verdict per line, a summary on stderr.
    Eval(waf::EvalArgs),
}

/// Logs go to stderr (stdout carries the access log); `PORTCULLIS_LOG` sets the filter.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs a subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { config } => Ok(check::run(&config)),
        Command::Serve { config } => serve::run(&config),
        Command::Quickstart(args) => quickstart::run(args),
        Command::Identities { command } => keys::identities(command),
        Command::Keys { command } => keys::keys(command),
        Command::Waf {
            command: WafCommand::Eval(args),
        } => waf::eval(&args),
    }
}

/// The control runtime: signals, the admin listener, the quickstart demo API. The data plane
/// runs on worker threads of its own (see `portcullis_proxy::serve`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
