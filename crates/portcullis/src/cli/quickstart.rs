//! `portcullis quickstart`: the gateway in front of a built-in demo API, on an embedded
//! default config, with curl lines that show what it does.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use portcullis_config::Config;

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Gateway listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Admin listen address.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: String,
    /// Print the embedded config and exit.
    #[arg(long)]
    print_config: bool,
}

/// The embedded default config; `{upstream}`, `{listen}` and `{admin}` are filled in.
const TEMPLATE: &str = r#"# The config `portcullis quickstart` runs on.
[gateway]
listen = ["{listen}"]
request_timeout = "10s"

[admin]
listen = "{admin}"

[log]
access = "stdout"

[store]
url = "sqlite://{db}"
pepper = "file:{pepper}"

[[upstream]]
name = "demo"
targets = ["{upstream}"]

[[route]]
name = "orders"
methods = ["GET", "POST"]
path = "/orders"
upstream = "demo"
auth = ["api_key"]
scopes = ["orders:read"]

[[route]]
name = "order"
methods = ["GET"]
path = "/orders/{order_id}"
upstream = "demo"
auth = ["api_key"]
scopes = ["orders:read"]
limit = { rate = "1/s", burst = 5, by = "identity" }

[[route]]
name = "health"
methods = ["GET"]
path = "/health"
upstream = "demo"
auth = ["none"]
"#;

fn render(upstream: &str, listen: &str, admin: &str, state: &Path) -> String {
    TEMPLATE
        .replace("{upstream}", upstream)
        .replace("{listen}", listen)
        .replace("{admin}", admin)
        .replace("{db}", &state.join("quickstart.db").display().to_string())
        .replace("{pepper}", &state.join("pepper").display().to_string())
}

/// A fresh state directory for this run: its SQLite store and a random pepper (mode 0600).
fn state_dir() -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write as _;
    let dir = std::env::temp_dir().join(format!("portcullis-quickstart-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pepper: [u8; 32] = rand::random();
    let hex: String = pepper.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(dir.join("pepper"))
        .context("cannot write the quickstart pepper")?;
    file.write_all(hex.as_bytes())
        .context("cannot write the quickstart pepper")?;
    Ok(dir)
}

/// The demo's keys, minted in the quickstart store.
struct DemoKeys {
    admin: String,
    reader: String,
    no_scope: String,
}

async fn mint(config: &Config) -> anyhow::Result<DemoKeys> {
    use portcullis_store::{Actor, KeyHasher, NewIdentity, NewKey, Store};
    let store_config = config
        .store
        .as_ref()
        .context("the quickstart config has no store")?;
    let hasher = KeyHasher::new(store_config.pepper.expose().as_bytes())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let store = Store::open(store_config.url.expose(), hasher)
        .await
        .context("cannot open the quickstart store")?;
    let actor = Actor::new("quickstart");
    store
        .create_identity(NewIdentity::named("demo"), &actor)
        .await?;
    store
        .create_identity(NewIdentity::named("admin"), &actor)
        .await?;
    let mut reader = NewKey::for_identity("demo");
    reader.scopes = vec!["orders:read".into()];
    let (_, reader) = store.create_key(reader, &actor).await?;
    let (_, no_scope) = store
        .create_key(NewKey::for_identity("demo"), &actor)
        .await?;
    let mut admin = NewKey::for_identity("admin");
    admin.roles = vec!["admin".into()];
    let (_, admin) = store.create_key(admin, &actor).await?;
    store.close().await;
    Ok(DemoKeys {
        admin: admin.expose().to_owned(),
        reader: reader.expose().to_owned(),
        no_scope: no_scope.expose().to_owned(),
    })
}

/// Runs the demo until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.print_config {
        let state = std::env::temp_dir().join("portcullis-quickstart-PID");
        print!(
            "{}",
            render("127.0.0.1:3000", &args.listen, &args.admin, &state)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let state = state_dir()?;
    let state_for_run = state.clone();
    let result = super::runtime()?.block_on(async move {
        let state = state_for_run;
        let upstream = super::demo::start().await.context("cannot start the demo API")?;
        let text = render(&upstream.to_string(), &args.listen, &args.admin, &state);
        let config = Config::from_toml(&text, Path::new(".")).map_err(|errors| anyhow::anyhow!("{errors}"))?;
        let keys = mint(&config).await?;
        super::serve::run_gateway(config, None, |bound| {
            let gw = bound.urls.first().cloned().unwrap_or_default();
            println!("Portcullis quickstart");
            println!("  demo API (upstream)  http://{upstream}");
            println!("  gateway              {gw}");
            println!("  admin                {}", bound.admin);
            println!();
            println!("  demo key (orders:read)   {}", keys.reader);
            println!("  demo key (no scopes)     {}", keys.no_scope);
            println!("  admin key (role admin)   {}", keys.admin);
            println!();
            println!("Try:");
            println!("  curl -i {gw}/orders/1 -H 'Authorization: Bearer {}'   # 200: forwarded (upstream's Server/X-Powered-By removed)", keys.reader);
            println!("  curl -i {gw}/orders/1                      # 401: no key");
            println!("  curl -i {gw}/orders/1 -H 'X-API-Key: {}'   # 403: the key lacks orders:read", keys.no_scope);
            println!("  for i in 1 2 3 4 5; do curl -s -o /dev/null {gw}/orders/1 -H 'X-API-Key: {}'; done; curl -i {gw}/orders/1 -H 'X-API-Key: {}'   # 429 once the burst of 5 is spent: Retry-After, RateLimit-Policy, RateLimit", keys.reader, keys.reader);
            println!("  curl -i {gw}/admin                         # 404: no route, in the gateway's JSON error shape");
            println!("  curl -i -X DELETE {gw}/orders/1            # 405: method not allowed on this route");
            println!("  curl -i --path-as-is '{gw}/orders/%2e%2e/admin'  # 400: ambiguous path refused before routing");
            println!("  curl -i \"{gw}/orders?id=1%27%20OR%201%3D1--\" -H 'X-API-Key: {}'   # 403: SQL injection blocked by inspection", keys.reader);
            println!("  curl -i -X POST {gw}/orders -H 'X-API-Key: {}' -H 'content-type: application/json' -d '{{\"item\":\"<script>alert(1)</script>\"}}'  # 403: XSS in a JSON body", keys.reader);
            println!("  curl -s {}/metrics | grep portcullis_requests", bound.admin);
            println!();
            println!("Access log lines follow (JSON, one per request). Ctrl-C stops.");
        })
        .await
    });
    let _ = std::fs::remove_dir_all(&state);
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let dir = std::env::temp_dir();
        let text = render("127.0.0.1:3000", "127.0.0.1:8080", "127.0.0.1:9901", &dir);
        // The pepper file is made at run time; here only the rest of the config is checked.
        let pepper = format!("file:{}", dir.join("pepper").display());
        let text = text.replace(&pepper, "env:PORTCULLIS_QUICKSTART_TEST_PEPPER");
        std::env::set_var("PORTCULLIS_QUICKSTART_TEST_PEPPER", "0123456789abcdef0123");
        let config = Config::from_toml(&text, Path::new(".")).unwrap();
        assert_eq!(config.routes.len(), 3);
        assert!(config.store.is_some());
    }
}
