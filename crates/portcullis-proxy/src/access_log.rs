//! The access log: one JSON line per request, written off the request path.
//!
//! Requests hand a small record to a bounded channel; a dedicated thread wakes every 20 ms,
//! turns what is queued into JSON and writes it through one buffer and one flush. When the
//! writer falls behind (a slow disk, a flood) records are dropped and counted rather than
//! making requests wait.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
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
    /// What the inspection engine found.
    pub findings: Vec<portcullis_inspect::Finding>,
}

#[derive(Serialize)]
struct LoggedFinding<'a> {
    class: &'a str,
    location: &'a str,
    detector: &'a str,
    score: u32,
    evidence: &'a str,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    findings: Vec<LoggedFinding<'a>>,
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
    writer: Option<Arc<Writer>>,
}

/// The writer thread's stop signal and its "everything is written" answer.
struct Writer {
    closing: std::sync::atomic::AtomicBool,
    done: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("enabled", &self.sender.is_some())
            .finish()
    }
}

const QUEUE: usize = 8 * 1024;

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> Self {
        Self {
            sender: None,
            dropped: Counter::default(),
            writer: None,
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
                    writer: None,
                })
            }
            portcullis_config::AccessLog::Stdout => Box::new(std::io::stdout()),
            portcullis_config::AccessLog::File(path) => Box::new(open_append(path)?),
        };
        let (sender, receiver) = sync_channel(QUEUE);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = Arc::new(Writer {
            closing: std::sync::atomic::AtomicBool::new(false),
            done: std::sync::Mutex::new(Some(done_rx)),
        });
        let thread_writer = Arc::clone(&writer);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                write_loop(&receiver, out, &thread_writer.closing);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            sender: Some(sender),
            dropped,
            writer: Some(writer),
        })
    }

    /// Writes out everything queued and stops the writer; waits at most `limit`. Called on
    /// shutdown, after the last request, so that no line is lost when the process exits.
    pub fn finish(&self, limit: std::time::Duration) {
        let Some(writer) = &self.writer else { return };
        writer
            .closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let done = writer.done.lock().ok().and_then(|mut done| done.take());
        if let Some(done) = done {
            let _ = done.recv_timeout(limit);
        }
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

fn write_loop(
    receiver: &Receiver<AccessRecord>,
    out: Box<dyn Write + Send>,
    closing: &std::sync::atomic::AtomicBool,
) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(512);
    loop {
        // The writer polls on a short interval instead of blocking on the channel: a blocked
        // receiver would have to be woken (a futex call and a context switch) for every
        // request, which costs more than writing the line.
        let mut wrote = false;
        loop {
            match receiver.try_recv() {
                Ok(record) => {
                    write_record(&mut out, &mut line, &record);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if wrote {
            if let Err(err) = out.flush() {
                tracing::warn!(error = %err, "cannot write the access log");
            }
        }
        if closing.load(std::sync::atomic::Ordering::Relaxed) {
            // One last pass: a record may have been queued after the drain above.
            while let Ok(record) = receiver.try_recv() {
                write_record(&mut out, &mut line, &record);
            }
            let _ = out.flush();
            return;
        }
        std::thread::sleep(FLUSH_INTERVAL);
    }
}

/// How long a line may wait in the queue before it is written.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

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
        findings: record
            .findings
            .iter()
            .map(|f| LoggedFinding {
                class: f.class.as_str(),
                location: &f.location,
                detector: f.detector,
                score: f.score,
                evidence: &f.evidence,
            })
            .collect(),
    };
    if serde_json::to_writer(&mut *line, &value).is_ok() {
        line.push(b'\n');
        if let Err(err) = out.write_all(line) {
            tracing::warn!(error = %err, "cannot write the access log");
        }
    }
}
