//! `portcullis identities …` and `portcullis keys …`: the token lifecycle from the shell,
//! through the same store the gateway reads (`[store]` of the config given with `-c`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use portcullis_config::Config;
use portcullis_store::{
    Actor, Identity, IdentityUpdate, KeyFilter, KeyHasher, KeyRecord, KeyStatusKind, KeyUpdate,
    NewIdentity, NewKey, Page, Store, StoreError, Timestamp,
};
use serde_json::{json, Value};

/// `portcullis identities …`.
#[derive(Debug, clap::Subcommand)]
pub enum IdentitiesCommand {
    /// Create an identity (a customer, service or user that owns keys).
    Create {
        #[command(flatten)]
        common: Common,
        /// Unique name.
        #[arg(long)]
        name: String,
        /// Role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        limits: NewOverrides,
    },
    /// List identities.
    List {
        #[command(flatten)]
        common: Common,
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one identity (by id or name).
    Show {
        #[command(flatten)]
        common: Common,
        /// Identity id or name.
        identity: String,
    },
    /// Change an identity's name, roles, metadata, rate limit or quota.
    Update {
        #[command(flatten)]
        common: Common,
        /// Identity id or name.
        identity: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// Roles, replacing the current ones (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Metadata, a JSON object, replacing the current one.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        limits: OverrideChanges,
    },
    /// Delete an identity (refused while it has usable keys).
    Delete {
        #[command(flatten)]
        common: Common,
        /// Identity id or name.
        identity: String,
    },
}

/// `portcullis keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; its plaintext is shown once.
    Create {
        #[command(flatten)]
        common: Common,
        /// Owner: identity id or name.
        #[arg(long)]
        identity: String,
        /// Scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Lifetime, e.g. 90d; no expiry when absent.
        #[arg(long)]
        expires: Option<String>,
        /// Environment written into the key (live, test).
        #[arg(long, default_value = "live")]
        env: String,
        /// Metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        limits: NewOverrides,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        common: Common,
        /// Only this identity's keys.
        #[arg(long)]
        identity: Option<String>,
        /// Only keys in this state: active, rotating, revoked, expired.
        #[arg(long)]
        status: Option<String>,
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one key (never its secret).
    Show {
        #[command(flatten)]
        common: Common,
        /// Key id.
        key: String,
    },
    /// Change a key's scopes, metadata, expiry, rate limit or quota.
    Update {
        #[command(flatten)]
        common: Common,
        /// Key id.
        key: String,
        /// Scopes, comma-separated, replacing the current ones.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// New lifetime from now (e.g. 30d), or "never".
        #[arg(long)]
        expires: Option<String>,
        /// Metadata, a JSON object, replacing the current one.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        limits: OverrideChanges,
    },
    /// Issue a new secret; the old one keeps working for the grace period.
    Rotate {
        #[command(flatten)]
        common: Common,
        /// Key id.
        key: String,
        /// How long the old secret keeps working (never past its own expiry).
        #[arg(long, default_value = "24h")]
        grace: String,
    },
    /// Revoke a key, immediately.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// Key id.
        key: String,
    },
}

/// Options every lifecycle command takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Config file whose [store] is used.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

async fn open(path: &Path) -> anyhow::Result<Store> {
    Ok(open_with_config(path).await?.1)
}

/// The config and its store.
async fn open_with_config(path: &Path) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(path)
        .map_err(|errors| anyhow!("{}: invalid config:\n{errors}", path.display()))?;
    let store = config.store.clone().ok_or_else(|| {
        anyhow!(
            "{}: no [store] section: keys need a store (url and pepper)",
            path.display()
        )
    })?;
    let hasher = KeyHasher::new(store.pepper.expose().as_bytes())
        .map_err(|err| anyhow!("store.pepper: {err}"))?;
    let store = Store::open(store.url.expose(), hasher)
        .await
        .context("cannot open the key store")?;
    Ok((config, store))
}

/// Rate-limit and quota overrides of a new identity or key.
#[derive(Debug, clap::Args)]
pub struct NewOverrides {
    /// Rate limit, e.g. 100/s or 1000/h (units s, m, h, d).
    #[arg(long = "rate-limit", value_name = "RATE")]
    rate_limit: Option<String>,
    /// Quota per calendar day or month (UTC), e.g. 1000/day or 50000/month.
    #[arg(long, value_name = "QUOTA")]
    quota: Option<String>,
}

/// Changes to the overrides of an identity or key: set one, clear one, or leave it.
#[derive(Debug, clap::Args)]
pub struct OverrideChanges {
    /// New rate limit, e.g. 100/s or 1000/h (units s, m, h, d).
    #[arg(
        long = "rate-limit",
        value_name = "RATE",
        conflicts_with = "no_rate_limit"
    )]
    rate_limit: Option<String>,
    /// Remove the rate limit override.
    #[arg(long = "no-rate-limit")]
    no_rate_limit: bool,
    /// New quota per calendar day or month (UTC), e.g. 1000/day or 50000/month.
    #[arg(long, value_name = "QUOTA", conflicts_with = "no_quota")]
    quota: Option<String>,
    /// Remove the quota override.
    #[arg(long = "no-quota")]
    no_quota: bool,
}

impl OverrideChanges {
    /// `(rate_limit_override, quota_override)` as the store's updates take them.
    fn into_update(self) -> (Option<Option<String>>, Option<Option<String>>) {
        let change = |set: Option<String>, clear: bool| match (set, clear) {
            (Some(value), _) => Some(Some(value)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        (
            change(self.rate_limit, self.no_rate_limit),
            change(self.quota, self.no_quota),
        )
    }
}

/// Store errors about an override name the flag the user typed, not the stored field.
fn flag_error(err: StoreError) -> anyhow::Error {
    match &err {
        StoreError::Invalid { field, reason } if field == "rate_limit_override" => {
            anyhow!("--rate-limit: {reason}")
        }
        StoreError::Invalid { field, reason } if field == "quota_override" => {
            anyhow!("--quota: {reason}")
        }
        _ => err.into(),
    }
}

fn actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Actor::new(format!("cli:{user}"))
}

fn metadata(text: Option<&str>) -> anyhow::Result<Option<Value>> {
    text.map(|t| match serde_json::from_str::<Value>(t) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => bail!("--metadata: must be a JSON object"),
        Err(err) => bail!("--metadata: not JSON: {err}"),
    })
    .transpose()
}

fn lifetime(text: &str, flag: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text)
        .map_err(|err| anyhow!("{flag}: \"{text}\" is not a duration ({err}); use e.g. 90d or 12h"))
}

fn print(json: bool, value: &Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

/// `  rate_limit=…  quota=…` for the overrides that are set.
fn overrides_text(rate_limit: Option<&str>, quota: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(rate) = rate_limit {
        text.push_str(&format!("  rate_limit={rate}"));
    }
    if let Some(quota) = quota {
        text.push_str(&format!("  quota={quota}"));
    }
    text
}

fn identity_line(identity: &Identity) -> String {
    format!(
        "{}  {}  roles={}{}",
        identity.id,
        identity.name,
        identity.roles.join(","),
        overrides_text(
            identity.rate_limit_override.as_deref(),
            identity.quota_override.as_deref()
        )
    )
}

fn key_line(key: &KeyRecord) -> String {
    let status = serde_json::to_value(key.status)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let expires = key
        .expires_at
        .map_or_else(|| "never".to_owned(), |t| t.to_string());
    format!(
        "{}  {}…  identity={}  status={}  scopes={}  expires={}{}",
        key.id,
        key.display_prefix,
        key.identity_id,
        status,
        key.scopes.join(","),
        expires,
        overrides_text(
            key.rate_limit_override.as_deref(),
            key.quota_override.as_deref()
        )
    )
}

/// Runs an identities command.
pub fn identities(command: IdentitiesCommand) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async move {
        match command {
            IdentitiesCommand::Create {
                common,
                name,
                roles,
                metadata: meta,
                limits,
            } => {
                let store = open(&common.config).await?;
                let mut new = NewIdentity::named(name);
                new.roles = roles;
                if let Some(meta) = metadata(meta.as_deref())? {
                    new.metadata = meta;
                }
                new.rate_limit_override = limits.rate_limit;
                new.quota_override = limits.quota;
                let identity = store
                    .create_identity(new, &actor())
                    .await
                    .map_err(flag_error)?;
                print(common.json, &serde_json::to_value(&identity)?, || {
                    format!("created identity {} ({})", identity.id, identity.name)
                });
            }
            IdentitiesCommand::List { common, limit } => {
                let store = open(&common.config).await?;
                let page = store.list_identities(&Page::first(limit)).await?;
                print(common.json, &serde_json::to_value(&page)?, || {
                    page.items
                        .iter()
                        .map(identity_line)
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
            IdentitiesCommand::Show { common, identity } => {
                let store = open(&common.config).await?;
                let identity = store.get_identity(&identity).await?;
                print(common.json, &serde_json::to_value(&identity)?, || {
                    serde_json::to_string_pretty(&identity).unwrap_or_default()
                });
            }
            IdentitiesCommand::Update {
                common,
                identity,
                name,
                roles,
                metadata: meta,
                limits,
            } => {
                let store = open(&common.config).await?;
                let (rate_limit_override, quota_override) = limits.into_update();
                let update = IdentityUpdate {
                    name,
                    roles: (!roles.is_empty()).then_some(roles),
                    metadata: metadata(meta.as_deref())?,
                    rate_limit_override,
                    quota_override,
                };
                let identity = store
                    .update_identity(&identity, update, &actor())
                    .await
                    .map_err(flag_error)?;
                print(common.json, &serde_json::to_value(&identity)?, || {
                    format!("updated identity {}", identity_line(&identity))
                });
            }
            IdentitiesCommand::Delete { common, identity } => {
                let store = open(&common.config).await?;
                store.delete_identity(&identity, &actor()).await?;
                print(
                    common.json,
                    &json!({ "id": identity, "deleted": true }),
                    || format!("deleted identity {identity}"),
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a keys command.
pub fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async move {
        match command {
            KeysCommand::Create {
                common,
                identity,
                scopes,
                roles,
                expires,
                env,
                metadata: meta,
                limits,
            } => {
                let store = open(&common.config).await?;
                let mut new = NewKey::for_identity(identity);
                new.scopes = scopes.into_iter().filter(|s| !s.is_empty()).collect();
                new.roles = roles;
                new.env = env;
                if let Some(meta) = metadata(meta.as_deref())? {
                    new.metadata = meta;
                }
                if let Some(expires) = expires {
                    new.expires_at =
                        Some(Timestamp::now().saturating_add(lifetime(&expires, "--expires")?));
                }
                new.rate_limit_override = limits.rate_limit;
                new.quota_override = limits.quota;
                let (record, plaintext) =
                    store.create_key(new, &actor()).await.map_err(flag_error)?;
                let value = json!({ "id": record.id, "key": plaintext.expose(), "record": record });
                print(common.json, &value, || {
                    format!(
                        "{}\n\nkey (shown once, store it now): {}",
                        key_line(&record),
                        plaintext.expose()
                    )
                });
            }
            KeysCommand::List {
                common,
                identity,
                status,
                limit,
            } => {
                let store = open(&common.config).await?;
                let status = status
                    .map(|s| {
                        s.parse::<KeyStatusKind>().map_err(|_| {
                            anyhow!("--status: \"{s}\" is not active, rotating, revoked or expired")
                        })
                    })
                    .transpose()?;
                let page = store
                    .list_keys(&KeyFilter { identity, status }, &Page::first(limit))
                    .await?;
                print(common.json, &serde_json::to_value(&page)?, || {
                    page.items
                        .iter()
                        .map(key_line)
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
            KeysCommand::Show { common, key } => {
                let (config, store) = open_with_config(&common.config).await?;
                let record = store.get_key(&key).await?;
                // The quotas of the config's routes that count this key, from the store.
                let quotas =
                    portcullis_proxy::quotas::key_report(&config.routes, &store, &key, None)
                        .await?;
                let mut value = serde_json::to_value(&record)?;
                value["quotas"] = serde_json::to_value(&quotas)?;
                print(common.json, &value, || {
                    let mut text = key_line(&record);
                    for q in &quotas {
                        text.push_str(&format!(
                            "\nquota {} on route {}: {} used of {}, {} left, renews {}{}",
                            q.policy,
                            q.route,
                            q.used,
                            q.quota,
                            q.remaining,
                            q.resets_at,
                            if q.monitor { " (monitor)" } else { "" }
                        ));
                    }
                    text
                });
            }
            KeysCommand::Update {
                common,
                key,
                scopes,
                expires,
                metadata: meta,
                limits,
            } => {
                let store = open(&common.config).await?;
                let expires_at = match expires.as_deref() {
                    None => None,
                    Some("never") => Some(None),
                    Some(text) => Some(Some(
                        Timestamp::now().saturating_add(lifetime(text, "--expires")?),
                    )),
                };
                let (rate_limit_override, quota_override) = limits.into_update();
                let update = KeyUpdate {
                    scopes,
                    metadata: metadata(meta.as_deref())?,
                    expires_at,
                    rate_limit_override,
                    quota_override,
                    ..KeyUpdate::default()
                };
                let record = store
                    .update_key(&key, update, &actor())
                    .await
                    .map_err(flag_error)?;
                print(common.json, &serde_json::to_value(&record)?, || {
                    key_line(&record)
                });
            }
            KeysCommand::Rotate { common, key, grace } => {
                let store = open(&common.config).await?;
                let rotated = store
                    .rotate_key(&key, lifetime(&grace, "--grace")?, &actor())
                    .await?;
                let value = json!({
                    "id": rotated.key.id,
                    "key": rotated.plaintext.expose(),
                    "record": rotated.key,
                    "previous": rotated.previous,
                });
                print(common.json, &value, || {
                    format!(
                        "{}\nprevious: {}\n\nnew key (shown once, store it now): {}",
                        key_line(&rotated.key),
                        key_line(&rotated.previous),
                        rotated.plaintext.expose()
                    )
                });
            }
            KeysCommand::Revoke { common, key } => {
                let store = open(&common.config).await?;
                let record = store.revoke_key(&key, &actor()).await?;
                print(common.json, &serde_json::to_value(&record)?, || {
                    format!("revoked {}", key_line(&record))
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
