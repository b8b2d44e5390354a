//! Listeners and connections: plain and TLS accept loops, HTTP/1.1 and HTTP/2, slow-client
//! defences and graceful shutdown.
//!
//! - Plain listeners tell HTTP/2 (prior knowledge) from HTTP/1.1 by the first bytes; TLS
//!   listeners by ALPN. Both the sniff and the TLS handshake are bounded by
//!   `request_header_timeout`, so a client that connects and sends nothing holds nothing.
//! - HTTP/1.1 connections are served by the gateway's own driver ([`crate::h1_server`]), which
//!   bounds request heads by `request_header_timeout` too: a connection that had started
//!   sending a request gets a 408 in the JSON error shape; an idle keep-alive connection is
//!   just closed. HTTP/2 connections are served by hyper.
//! - Shutdown stops the accept loops, asks every connection to finish its in-flight requests,
//!   and waits up to `drain_timeout`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::gateway::Gateway;
use crate::handler::ConnInfo;
use crate::io::{Conn, Io};
use crate::metrics::ListenerLabels;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A bound listening socket.
#[derive(Debug)]
pub struct Listener {
    /// The socket, non-blocking, registered with no reactor: every worker registers its own
    /// handle on it.
    pub socket: std::net::TcpListener,
    /// Whether connections on it are TLS.
    pub tls: bool,
}

impl Listener {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

async fn bind_one(addr: &SocketAddr, tls: bool) -> io::Result<Listener> {
    let socket = TcpListener::bind(addr)
        .await
        .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}")))?;
    Ok(Listener {
        socket: socket.into_std()?,
        tls,
    })
}

/// Binds every data-plane listener of the current config.
pub async fn bind(gateway: &Gateway) -> io::Result<Vec<Listener>> {
    let snapshot = gateway.snapshot();
    let mut listeners = Vec::new();
    for addr in &snapshot.config.gateway.listen {
        listeners.push(bind_one(addr, false).await?);
    }
    if let Some(tls) = &snapshot.config.gateway.tls {
        for addr in &tls.listen {
            listeners.push(bind_one(addr, true).await?);
        }
    }
    Ok(listeners)
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The index of the data-plane worker running on this thread (0 elsewhere).
pub fn worker_index() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// Serves the listeners until `shutdown` resolves, then drains.
///
/// The data plane runs thread-per-core: `workers` OS threads, each with its own
/// single-threaded runtime, each accepting from every listener and keeping its own upstream
/// connection pools. A request is handled from accept to response on one thread, with no
/// work stealing and no cross-thread wake-ups (measured: a quarter less CPU per request than a
/// work-stealing runtime; see docs/performance.md). An idle worker is the one that wins the
/// next accept, which balances connections across workers.
pub async fn serve(
    gateway: Arc<Gateway>,
    listeners: Vec<Listener>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut done = Vec::new();
    for index in 0..gateway.workers() {
        let sockets: Vec<(std::net::TcpListener, bool)> = match listeners
            .iter()
            .map(|l| l.socket.try_clone().map(|s| (s, l.tls)))
            .collect::<io::Result<_>>()
        {
            Ok(sockets) => sockets,
            Err(err) => {
                tracing::error!(error = %err, "cannot share a listening socket with a worker");
                continue;
            }
        };
        let gateway = Arc::clone(&gateway);
        let stop = stop_rx.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("portcullis-worker-{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(index));
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(worker(gateway, sockets, stop)),
                    Err(err) => tracing::error!(error = %err, "cannot start a worker runtime"),
                }
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) => done.push(done_rx),
            Err(err) => tracing::error!(error = %err, "cannot start a worker thread"),
        }
    }
    drop(listeners);
    shutdown.await;
    gateway.start_draining();
    let _ = stop_tx.send(true);
    tracing::info!(drain_timeout = ?gateway.snapshot().config.gateway.drain_timeout, "stopped accepting; draining in-flight requests");
    for worker in done {
        let _ = worker.await;
    }
    gateway.finish_logs();
}

/// One data-plane worker: accept loops for every listener, then a bounded drain.
async fn worker(
    gateway: Arc<Gateway>,
    sockets: Vec<(std::net::TcpListener, bool)>,
    mut stop: watch::Receiver<bool>,
) {
    // Every request arms timers (head read, upstream wait) and disarms them. tokio wakes its
    // driver with a system call (an eventfd write) whenever a new timer is the earliest, which,
    // with no other timer pending, is nearly every request. A timer that is always pending and
    // due within a second keeps the request timers (seconds away) from ever being the earliest.
    let anchor = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
        }
    });
    let graceful = Arc::new(GracefulShutdown::new());
    // HTTP/1.1 connections hold a receiver: told to finish, waited for until all are gone.
    let (h1_drain_tx, h1_drain_rx) = watch::channel(false);
    let (loop_stop_tx, loop_stop_rx) = watch::channel(false);
    let mut loops = Vec::new();
    for (socket, tls) in sockets {
        let listener = match TcpListener::from_std(socket) {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(error = %err, "cannot register a listening socket");
                continue;
            }
        };
        loops.push(tokio::spawn(accept_loop(
            Arc::clone(&gateway),
            listener,
            tls,
            Arc::clone(&graceful),
            h1_drain_rx.clone(),
            loop_stop_rx.clone(),
        )));
    }
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let _ = loop_stop_tx.send(true);
    for accept in loops {
        let _ = accept.await;
    }
    drop(h1_drain_rx);
    let _ = h1_drain_tx.send(true);
    let drain = gateway.snapshot().config.gateway.drain_timeout;
    let _anchor = AbortOnDrop(anchor);
    // The accept loops have ended, so this is the last reference.
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return;
    };
    let both = async {
        tokio::join!(graceful.shutdown(), h1_drain_tx.closed());
    };
    if tokio::time::timeout(drain, both).await.is_err() {
        tracing::warn!(
            worker = worker_index(),
            "drain timeout reached; closing the remaining connections"
        );
    }
}

async fn accept_loop(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: bool,
    graceful: Arc<GracefulShutdown>,
    h1_drain: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let gateway = Arc::clone(&gateway);
                let watcher = graceful.watcher();
                let drain = h1_drain.clone();
                tokio::spawn(async move {
                    serve_connection(gateway, stream, peer, tls, watcher, drain).await;
                });
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ConnectionGauge(prometheus_client::metrics::gauge::Gauge);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn serve_connection(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
    watcher: Watcher,
    drain: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let gauge = gateway
        .metrics
        .connections
        .get_or_create(&ListenerLabels {
            scheme: if tls { "https" } else { "http" },
        })
        .clone();
    gauge.inc();
    let _gauge = ConnectionGauge(gauge);
    let snapshot = gateway.snapshot();
    let header_timeout = snapshot.config.gateway.request_header_timeout;
    let mut info = ConnInfo::new(peer, tls).with_local(stream.local_addr().ok());
    // Held for the connection's life. A trusted proxy carries many clients: it is not capped.
    let mut _connection_slot = None;
    if let Some(cap) = snapshot.config.limits.max_connections_per_ip {
        if !crate::headers::is_trusted_peer(peer.ip(), &snapshot.config.gateway.trusted_proxies) {
            _connection_slot = gateway
                .connections_by_ip
                .try_acquire(&peer.ip().to_string(), cap);
            if _connection_slot.is_none() {
                gateway.metrics.connections_refused.inc();
                info.over_connection_cap = true;
            }
        }
    }

    if tls {
        let Some(server_config) = snapshot.tls.clone() else {
            return;
        };
        drop(snapshot);
        let accepted = tokio::time::timeout(
            header_timeout,
            TlsAcceptor::from(server_config).accept(stream),
        )
        .await;
        let stream = match accepted {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        if h2 {
            serve_h2(gateway, stream, info, watcher).await;
        } else {
            drop(watcher);
            let conn = Conn::new(Io::Server(Box::new(stream)), b"");
            crate::h1_server::serve(gateway, conn, info, drain).await;
        }
        return;
    }
    drop(snapshot);
    let mut stream = stream;
    let mut sniffed = Vec::with_capacity(H2_PREFACE.len());
    match tokio::time::timeout(header_timeout, sniff(&mut stream, &mut sniffed)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return,
        // The head's time is up before it could even be told HTTP/1 from HTTP/2.
        Err(_) => {
            let mut conn = Conn::new(Io::Plain(stream), &sniffed);
            crate::h1_server::head_timed_out(&gateway, &mut conn).await;
            return;
        }
    }
    if sniffed.starts_with(H2_PREFACE) {
        serve_h2(
            gateway,
            PrefixedIo::new(stream, Bytes::from(sniffed)),
            info,
            watcher,
        )
        .await;
    } else {
        drop(watcher);
        let conn = Conn::new(Io::Plain(stream), &sniffed);
        crate::h1_server::serve(gateway, conn, info, drain).await;
    }
}

/// Reads until the first bytes tell HTTP/2 prior knowledge from HTTP/1.x.
async fn sniff(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut chunk = [0u8; 24];
        let wanted = H2_PREFACE.len() - buf.len();
        let n = stream.read(&mut chunk[..wanted]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() == H2_PREFACE.len() || !H2_PREFACE.starts_with(buf) {
            return Ok(());
        }
    }
}

async fn serve_h2<S>(gateway: Arc<Gateway>, io: S, info: ConnInfo, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let snapshot = gateway.snapshot();
    let max_header = u32::try_from(snapshot.config.gateway.max_header_bytes).unwrap_or(u32::MAX);
    drop(snapshot);
    let service_gateway = Arc::clone(&gateway);
    let service_info = info.clone();
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let gateway = Arc::clone(&service_gateway);
        let info = service_info.clone();
        let request = request.map(crate::body::ClientBody::Hyper);
        async move { Ok::<_, Infallible>(gateway.handle(request, &info).await) }
    });
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(max_header)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!(peer = %info.peer, error = %err, "HTTP/2 connection error");
    }
}

/// A stream whose first bytes (the protocol sniff) were already read: they are replayed
/// first.
struct PrefixedIo<S> {
    stream: S,
    prefix: Bytes,
}

impl<S> PrefixedIo<S> {
    fn new(stream: S, prefix: Bytes) -> Self {
        Self { stream, prefix }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PrefixedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
