//! `wharf numbers add/list/remove`: the operator's pool of phone numbers, which accounts
//! purchase from (`POST /v1/whatsapp/phone-numbers/purchase`).

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use wharf_core::{Phone, time::rfc3339};
use wharf_server::services::numbers::area_code_of;
use wharf_store::{PoolAdd, PoolNumberRow, PoolRemoval, Store};

#[derive(Debug, Subcommand)]
pub enum NumbersCommand {
    /// Add a number to the pool (it is available to purchases at once).
    Add {
        /// The number, in international form (+12125550100).
        phone_number: String,
        /// Its country, ISO 3166-1 alpha-2 (US).
        #[arg(long)]
        country: String,
        /// Its area code (derived for +1 numbers when not given).
        #[arg(long)]
        area_code: Option<String>,
        /// Its city, for searches by locality.
        #[arg(long)]
        locality: Option<String>,
        /// The number's Graph id at Meta, when it was added to a Meta pre-verified pool;
        /// `request-code` and `verify` run on it.
        #[arg(long)]
        meta_preverified_id: Option<String>,
    },
    /// List the pool, with the record holding each assigned number.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a number from the pool (refused while an account holds it).
    Remove {
        /// The number.
        phone_number: String,
    },
}

fn digits(flag: &str, v: Option<String>, max: usize) -> anyhow::Result<Option<String>> {
    match v.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(v))
        }
        Some(v) => anyhow::bail!("--{flag}: {v} must be 1 to {max} digits"),
    }
}

fn phone(raw: &str) -> anyhow::Result<String> {
    Phone::parse(raw)
        .map(|p| p.e164().to_owned())
        .map_err(|e| anyhow::anyhow!("{raw} is not a phone number: {e}"))
}

/// Runs a `numbers` command.
pub async fn run(store: &Store, cmd: NumbersCommand) -> anyhow::Result<()> {
    match cmd {
        NumbersCommand::Add {
            phone_number,
            country,
            area_code,
            locality,
            meta_preverified_id,
        } => {
            let phone_number = phone(&phone_number)?;
            let country = country.trim().to_ascii_uppercase();
            anyhow::ensure!(
                country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
                "--country must be an ISO 3166-1 alpha-2 code such as US"
            );
            let area_code =
                digits("area-code", area_code, 6)?.or_else(|| area_code_of(&phone_number));
            let locality = locality
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty());
            anyhow::ensure!(
                locality.as_ref().is_none_or(|l| l.chars().count() <= 100),
                "--locality must be at most 100 characters"
            );
            let meta = digits("meta-preverified-id", meta_preverified_id, 32)?;
            let row = PoolNumberRow {
                phone_number: phone_number.clone(),
                country,
                area_code,
                locality,
                meta_preverified_id: meta,
                assigned_to: None,
                created_at: wharf_core::time::now_millis(),
            };
            match store
                .add_pool_number(&row)
                .await
                .context("cannot add the number")?
            {
                PoolAdd::Added => println!("added {phone_number} to the pool"),
                PoolAdd::InPool => anyhow::bail!("{phone_number} is already in the pool"),
                PoolAdd::Held(id) => anyhow::bail!(
                    "{phone_number} is held by an account (record {id}, ordered from a provider); \
                     it cannot be added to the pool while that account holds it"
                ),
            }
        }
        NumbersCommand::List { json } => {
            let pool = store.pool_numbers().await?;
            if json {
                let rows: Vec<_> = pool
                    .iter()
                    .map(|n| {
                        json!({
                            "phone_number": n.phone_number,
                            "country": n.country,
                            "area_code": n.area_code,
                            "locality": n.locality,
                            "meta_preverified_id": n.meta_preverified_id,
                            "assigned_to": n.assigned_to,
                            "created_at": rfc3339(n.created_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<17} {:<7} {:<9} {:<20} {:<20} STATUS",
                    "NUMBER", "COUNTRY", "AREA", "LOCALITY", "META ID"
                );
                for n in pool {
                    let status = n
                        .assigned_to
                        .map(|id| format!("assigned to {id}"))
                        .unwrap_or_else(|| "available".into());
                    println!(
                        "{:<17} {:<7} {:<9} {:<20} {:<20} {status}",
                        n.phone_number,
                        n.country,
                        n.area_code.as_deref().unwrap_or("-"),
                        n.locality.as_deref().unwrap_or("-"),
                        n.meta_preverified_id.as_deref().unwrap_or("-"),
                    );
                }
            }
        }
        NumbersCommand::Remove { phone_number } => {
            let phone_number = phone(&phone_number)?;
            match store.remove_pool_number(&phone_number).await? {
                PoolRemoval::Removed => println!("removed {phone_number} from the pool"),
                PoolRemoval::Missing => anyhow::bail!("{phone_number} is not in the pool"),
                PoolRemoval::Assigned(id) => anyhow::bail!(
                    "{phone_number} is held by {id}; it can be removed once the account releases it"
                ),
            }
        }
    }
    Ok(())
}
