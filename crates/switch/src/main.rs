//! `centralino`: the switch binary. It owns every socket, timer, file and clock, and drives the
//! sans-IO `b2bua::Switchboard`. No protocol or routing logic lives here.

mod db;
mod media_task;
mod metrics;
mod player;
mod prompts;
mod router_cli;
mod run;
mod voicemail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "centralino",
    version,
    about = "SIP switch for public-sector hotlines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch.
    Run {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// SIP address for UDP and TCP.
        #[arg(long, default_value = "0.0.0.0:5060")]
        listen: std::net::SocketAddr,
        /// Directory for the database and recordings.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Start the switch's wall clock at this instant (RFC 3339); it then advances in real time.
        #[arg(long)]
        start_time: Option<String>,
    },
    /// Check a configuration file; print each problem as FILE:LINE:COL.
    Check {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Explain where a call would go.
    Route {
        #[arg(long)]
        config: PathBuf,
        /// Instant of the call (RFC 3339).
        #[arg(long)]
        at: String,
        /// Caller's number.
        #[arg(long)]
        from: Option<String>,
        /// Dialled number (default: the dialplan's first number).
        #[arg(long)]
        to: Option<String>,
        /// Digits pressed so far in menus.
        #[arg(long)]
        digits: Option<String>,
        /// Emergency mode.
        #[arg(long, value_parser = ["on", "off"])]
        emergency: Option<String>,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// List who is on duty in each group.
    Duty {
        #[arg(long)]
        config: PathBuf,
        /// Instant (RFC 3339).
        #[arg(long)]
        at: String,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            listen,
            data_dir,
            start_time,
        } => run::run(&config, listen, &data_dir, start_time.as_deref()),
        Command::Check { file } => return check(&file),
        Command::Route {
            config,
            at,
            from,
            to,
            digits,
            emergency,
            format,
        } => router_cli::route_command(
            &config,
            &at,
            from.as_deref(),
            digits.as_deref(),
            to.as_deref(),
            emergency.as_deref(),
            &format,
        ),
        Command::Duty { config, at, format } => router_cli::duty_command(&config, &at, &format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("centralino: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and compiles a configuration file, printing every diagnostic to stderr.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<b2bua::Config> {
    let name = path.display().to_string();
    let source =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{name}: cannot read: {e}"))?;
    match b2bua::Config::compile(&name, &source) {
        Ok((mut config, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            if let Err(errors) = prompts::load(&mut config, path) {
                for e in &errors {
                    eprintln!("{e}");
                }
                anyhow::bail!(
                    "{name}: {} prompt error(s); configuration refused",
                    errors.len()
                );
            }
            Ok(config)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            let n = errors.iter().filter(|e| e.is_error).count();
            anyhow::bail!("{name}: {n} error(s); configuration refused")
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match load_config(path) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("centralino: {e:#}");
            ExitCode::FAILURE
        }
    }
}
