//! `portcullis serve -c FILE`, and the gateway run loop shared with `quickstart`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use portcullis_config::Config;
use portcullis_proxy::Gateway;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Runs the gateway from a config file until SIGTERM or Ctrl-C.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{}: {error}", path.display());
            }
            bail!(
                "{}: {} error(s); not starting",
                path.display(),
                errors.0.len()
            );
        }
    };
    super::runtime()?.block_on(run_gateway(config, Some(path.to_path_buf()), |_| {}))?;
    Ok(ExitCode::SUCCESS)
}

/// The addresses a running gateway listens on.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Data-plane URLs.
    pub urls: Vec<String>,
    /// Admin URL.
    pub admin: String,
}

/// Binds, serves, reloads on SIGHUP, drains on SIGTERM/SIGINT. `on_ready` runs once every
/// socket is bound.
pub async fn run_gateway(
    config: Config,
    path: Option<PathBuf>,
    on_ready: impl FnOnce(&Bound),
) -> anyhow::Result<()> {
    let admin_addr = config.admin.listen;
    let mut follower = None;
    let mut admin_store = None;
    let credentials: Arc<dyn portcullis_core::CredentialLookup> = match &config.store {
        None => Arc::new(portcullis_core::NoCredentials),
        Some(store) => {
            let hasher = portcullis_store::KeyHasher::new(store.pepper.expose().as_bytes())
                .map_err(|err| anyhow::anyhow!("store.pepper: {err}"))?;
            let store = portcullis_store::Store::open(store.url.expose(), hasher)
                .await
                .context("cannot open the key store")?;
            let index = portcullis_proxy::keys::KeyIndex::load(&store)
                .await
                .context("cannot load the API keys")?;
            tracing::info!(keys = index.len(), "API key index loaded");
            admin_store = Some(store.clone());
            let usage = index.write_usage(store.clone(), std::time::Duration::from_secs(5));
            follower = Some((
                index.follow(store.clone()),
                usage,
                Arc::clone(&index),
                store,
            ));
            index
        }
    };
    let gateway = Gateway::with_credentials(config, path, credentials)
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let mut quota_writer = None;
    if let Some(store) = &admin_store {
        let loaded = portcullis_proxy::quotas::load(&gateway.limits, store)
            .await
            .context("cannot load the quota counters")?;
        tracing::debug!(windows = loaded, "quota counters loaded");
        quota_writer = Some((
            portcullis_proxy::quotas::persist(
                Arc::clone(&gateway.limits),
                store.clone(),
                std::time::Duration::from_secs(1),
            ),
            store.clone(),
        ));
    }
    let listeners = portcullis_proxy::bind(&gateway).await?;
    let admin = TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on {admin_addr} (admin)"))?;

    let mut urls = Vec::new();
    for listener in &listeners {
        let addr = listener.local_addr()?;
        urls.push(format!(
            "{}://{addr}",
            if listener.tls { "https" } else { "http" }
        ));
    }
    let bound = Bound {
        urls,
        admin: format!("http://{}", admin.local_addr()?),
    };
    for url in &bound.urls {
        eprintln!("portcullis: listening on {url}");
    }
    eprintln!("portcullis: admin on {}", bound.admin);

    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(handle_signals(Arc::clone(&gateway), stop_tx));
    let admin_stop = wait_for(stop_rx.clone());
    let admin_task = tokio::spawn(portcullis_admin::serve(
        admin,
        Arc::clone(&gateway),
        admin_store,
        admin_stop,
    ));
    on_ready(&bound);
    portcullis_proxy::serve(Arc::clone(&gateway), listeners, wait_for(stop_rx)).await;
    signals.abort();
    if let Some((follower, usage, index, store)) = follower {
        follower.abort();
        usage.abort();
        // The last requests' usage is written before the process exits.
        index.flush_usage(&store).await;
    }
    if let Some((writer, store)) = quota_writer {
        writer.abort();
        // The last requests' quota counts too: a restart must not refill a quota.
        if let Err(err) = portcullis_proxy::quotas::flush(&gateway.limits, &store).await {
            tracing::error!(error = %err, "the last quota counts could not be written");
        }
    }
    let _ = admin_task.await;
    eprintln!("portcullis: stopped");
    Ok(())
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn handle_signals(gateway: Arc<Gateway>, stop: watch::Sender<bool>) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let gateway = Arc::clone(&gateway);
                match tokio::task::spawn_blocking(move || gateway.reload()).await {
                    Ok(Ok(summary)) => tracing::info!(%summary, "config reloaded (SIGHUP)"),
                    Ok(Err(portcullis_proxy::ReloadError::Invalid(errors))) => {
                        for error in &errors.0 {
                            tracing::error!(%error, "reload refused; the running config keeps serving");
                        }
                    }
                    Ok(Err(err)) => tracing::error!(error = %err, "reload refused"),
                    Err(err) => tracing::error!(error = %err, "reload failed"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
}
