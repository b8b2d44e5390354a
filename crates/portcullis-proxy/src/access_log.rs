//! The access log: one JSON line per request, written off the request path.
//!
//! Requests hand a small record to a bounded channel; a dedicated thread turns records into
//! JSON and writes them through a buffer that is flushed whenever the channel runs dry. When
//! the writer falls behind (a slow disk, a flood) records are dropped and counted rather than
//! making requests wait.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

/// One finished request.
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request head arrived.
    pub time: SystemTime,
    /// Request id.
    pub request_id: String,
    /// Client address (see `trusted_proxies`).
    pub client_ip: IpAddr,
    /// Method.
    pub method: http::Method,
    /// Path, without the query string (which may carry credentials).
    pub path: String,
    /// Matched route.
    pub route: Option<Arc<str>>,
    /// Status sent.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Time the upstream took to send its response head, in microseconds.
    pub upstream_us: Option<u64>,
    /// Time from request head to the end of the response, in microseconds.
    pub total_us: u64,
    /// `allow`, `monitor` or `reject`.
    pub decision: &'static str,
    /// The rejection code, when the gateway answered itself.
    pub code: Option<&'static str>,
    /// Filters in monitor mode that would have refused the request.
    pub monitored: Vec<&'static str>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    client_ip: IpAddr,
    method: &'a str,
    path: &'a str,
    route: Option<&'a str>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    upstream_ms: Option<f64>,
    total_ms: f64,
    decision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    monitored: &'a [&'static str],
}

fn millis(us: u64) -> f64 {
    // Microsecond precision, printed as milliseconds.
    us as f64 / 1000.0
}

/// Where access log records go.
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<SyncSender<AccessRecord>>,
    dropped: Counter,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("enabled", &self.sender.is_some())
            .finish()
    }
}

const QUEUE: usize = 16 * 1024;

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> Self {
        Self {
            sender: None,
            dropped: Counter::default(),
        }
    }

    /// Starts a writer thread for a destination. The thread ends, after writing what is
    /// queued, when the last handle is dropped.
    pub fn start(
        destination: &portcullis_config::AccessLog,
        dropped: Counter,
    ) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match destination {
            portcullis_config::AccessLog::Off => {
                return Ok(Self {
                    sender: None,
                    dropped,
                })
            }
            portcullis_config::AccessLog::Stdout => Box::new(std::io::stdout()),
            portcullis_config::AccessLog::File(path) => Box::new(open_append(path)?),
        };
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(&receiver, out))?;
        Ok(Self {
            sender: Some(sender),
            dropped,
        })
    }

    /// Whether records are written at all (callers skip building them when not).
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues a record; never blocks.
    pub fn record(&self, record: AccessRecord) {
        if let Some(sender) = &self.sender {
            match sender.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.inc();
                }
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn write_loop(receiver: &Receiver<AccessRecord>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(512);
    while let Ok(record) = receiver.recv() {
        write_record(&mut out, &mut line, &record);
        // Drain what is queued before paying for a flush.
        while let Ok(record) = receiver.try_recv() {
            write_record(&mut out, &mut line, &record);
        }
        if let Err(err) = out.flush() {
            tracing::warn!(error = %err, "cannot write the access log");
        }
    }
    let _ = out.flush();
}

fn write_record(out: &mut impl Write, line: &mut Vec<u8>, record: &AccessRecord) {
    line.clear();
    let value = Line {
        time: humantime::format_rfc3339_micros(record.time).to_string(),
        request_id: &record.request_id,
        client_ip: record.client_ip,
        method: record.method.as_str(),
        path: &record.path,
        route: record.route.as_deref(),
        status: record.status,
        bytes_in: record.bytes_in,
        bytes_out: record.bytes_out,
        upstream_ms: record.upstream_us.map(millis),
        total_ms: millis(record.total_us),
        decision: record.decision,
        code: record.code,
        monitored: &record.monitored,
    };
    if serde_json::to_writer(&mut *line, &value).is_ok() {
        line.push(b'\n');
        if let Err(err) = out.write_all(line) {
            tracing::warn!(error = %err, "cannot write the access log");
        }
    }
}
