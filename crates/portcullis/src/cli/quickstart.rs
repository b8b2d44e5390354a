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

[[upstream]]
name = "demo"
targets = ["{upstream}"]

[[route]]
name = "orders"
methods = ["GET", "POST"]
path = "/orders"
upstream = "demo"
auth = ["none"]

[[route]]
name = "order"
methods = ["GET"]
path = "/orders/{order_id}"
upstream = "demo"
auth = ["none"]

[[route]]
name = "health"
methods = ["GET"]
path = "/health"
upstream = "demo"
auth = ["none"]
"#;

fn render(upstream: &str, listen: &str, admin: &str) -> String {
    TEMPLATE
        .replace("{upstream}", upstream)
        .replace("{listen}", listen)
        .replace("{admin}", admin)
}

/// Runs the demo until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.print_config {
        print!("{}", render("127.0.0.1:3000", &args.listen, &args.admin));
        return Ok(ExitCode::SUCCESS);
    }
    super::runtime()?.block_on(async move {
        let upstream = super::demo::start().await.context("cannot start the demo API")?;
        let text = render(&upstream.to_string(), &args.listen, &args.admin);
        let config = Config::from_toml(&text, Path::new(".")).map_err(|errors| anyhow::anyhow!("{errors}"))?;
        super::serve::run_gateway(config, None, |bound| {
            let gw = bound.urls.first().cloned().unwrap_or_default();
            println!("Portcullis quickstart");
            println!("  demo API (upstream)  http://{upstream}");
            println!("  gateway              {gw}");
            println!("  admin                {}", bound.admin);
            println!();
            println!("Try:");
            println!("  curl -i {gw}/orders/1                      # 200: forwarded to the demo API (its Server/X-Powered-By removed)");
            println!("  curl -i {gw}/admin                         # 404: no route, in the gateway's JSON error shape");
            println!("  curl -i -X DELETE {gw}/orders/1            # 405: method not allowed on this route");
            println!("  curl -i --path-as-is '{gw}/orders/%2e%2e/admin'  # 400: ambiguous path refused before routing");
            println!("  curl -i \"{gw}/orders?id=1%27%20OR%201%3D1--\"   # 403: SQL injection blocked by inspection");
            println!("  curl -i -X POST {gw}/orders -H 'content-type: application/json' -d '{{\"item\":\"<script>alert(1)</script>\"}}'  # 403: XSS in a JSON body");
            println!("  curl -s {}/metrics | grep portcullis_requests", bound.admin);
            println!();
            println!("Access log lines follow (JSON, one per request). Ctrl-C stops.");
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let config = Config::from_toml(
            &render("127.0.0.1:3000", "127.0.0.1:8080", "127.0.0.1:9901"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.routes.len(), 3);
    }
}
