//! `lvbak user add NAME [--password P]`: creates an account (printing a generated password
//! when none is given); `lvbak user list`; `lvbak user quota NAME [SIZE|none|default]`:
//! shows or sets an account's disk quota.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::printable::is_bidi_control;
use super::{fail, runtime};
use crate::auth::{generate_password, hash_password};
use crate::config::{parse_quota, DataDirArg, DEFAULT_QUOTA};
use crate::storage::Store;
use crate::util::now;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account.
    Add {
        name: String,
        /// The password (a random one is generated and printed if omitted).
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Show an account's disk use and quota, or set its quota: a size such as `10G`,
    /// `none` for no limit, or `default` for the instance's (`--quota` / `LVBAK_QUOTA`).
    Quota {
        name: String,
        quota: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// The instance's quota as `lvbak serve` takes it (`LVBAK_QUOTA`, else the default).
fn instance_quota() -> anyhow::Result<Option<u64>> {
    let text = std::env::var("LVBAK_QUOTA").unwrap_or_else(|_| DEFAULT_QUOTA.to_string());
    parse_quota(&text).map_err(anyhow::Error::msg)
}

/// Creates an account in an opened store; returns its id.
pub async fn add_user(store: &Store, name: &str, password: &str) -> anyhow::Result<String> {
    // Names are printed as they are (`user list`, `user quota`): nothing a terminal acts on.
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || is_bidi_control(c) || c == '/') {
        anyhow::bail!("a user name is 1 to 64 characters, without control characters, bidi controls or '/'");
    }
    let hash = hash_password(password).map_err(anyhow::Error::msg)?;
    let id = crate::util::new_id();
    Ok(store.accounts().create_user(&id, name, &hash, now()).await?.id)
}

pub fn run(args: &UserArgs) -> ExitCode {
    let result = runtime().and_then(|runtime| {
        runtime.block_on(async {
            match &args.command {
                UserCommand::Add { name, password, data } => {
                    let store = data.open_store().await?;
                    let generated = password.is_none();
                    let password = password.clone().unwrap_or_else(generate_password);
                    add_user(&store, name, &password).await?;
                    if generated {
                        println!("created user {name} with password {password}");
                    } else {
                        println!("created user {name}");
                    }
                }
                UserCommand::List { data } => {
                    let store = data.open_store().await?;
                    for name in store.accounts().user_names().await? {
                        println!("{name}");
                    }
                }
                UserCommand::Quota { name, quota, data } => {
                    let store = data.open_store().await?;
                    let accounts = store.accounts();
                    let user = accounts.user_by_name(name).await?.ok_or_else(|| anyhow::anyhow!("no user {name:?}"))?;
                    if let Some(quota) = quota {
                        let setting = match quota.trim() {
                            "default" => None,
                            other => Some(parse_quota(other).map_err(anyhow::Error::msg)?),
                        };
                        accounts.set_quota(&user.id, setting).await?;
                    }
                    let usage = match accounts.usage_of(&user.id).await? {
                        Some(bytes) => bytes,
                        None => store.files.usage_of(&user.id)?,
                    };
                    let own = accounts.quota_of(&user.id).await?;
                    let instance = instance_quota()?;
                    let (words, quota) = match own {
                        None => (
                            match instance {
                                Some(bytes) => format!("the instance's, {bytes} bytes"),
                                None => "the instance's, none".to_string(),
                            },
                            instance,
                        ),
                        Some(None) => ("none".to_string(), None),
                        Some(Some(bytes)) => (format!("{bytes} bytes"), Some(bytes)),
                    };
                    let over = match quota {
                        Some(quota) if usage > quota => {
                            format!(
                                "; over quota by {} bytes: its data is kept, imports are refused until it is under",
                                usage - quota
                            )
                        }
                        _ => String::new(),
                    };
                    println!("{name}: {usage} bytes used; quota: {words}{over}");
                }
            }
            Ok(())
        })
    });
    result.map_or_else(fail, |()| ExitCode::SUCCESS)
}
