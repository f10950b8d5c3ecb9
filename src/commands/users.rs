//! `crossfire users`: user accounts in the service's database, for an operator.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crossfire_server::store::{COMMAND_LINE, Role};

use super::runtime;
use crate::cli::UsersCommand;
use crate::config::Config;

pub fn run(config: &Config, command: UsersCommand) -> Result<ExitCode> {
    match command {
        UsersCommand::Grant { email, role } => runtime()?.block_on(grant(config, &email, role)),
    }
}

/// Gives the user with that email the role.
async fn grant(config: &Config, email: &str, role: Role) -> Result<ExitCode> {
    let store = crossfire_server::store::Store::connect(&config.server.database_url).await?;
    if !store
        .set_role(&email.trim().to_lowercase(), role, COMMAND_LINE)
        .await?
    {
        bail!("no user with the email {email}");
    }
    println!("{email} is now {}", role.as_str());
    Ok(ExitCode::SUCCESS)
}
