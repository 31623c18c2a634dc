//! Prometheus text exposition on a local HTTP port: a tiny HTTP/1.1 responder, enough for a
//! scraper and `curl`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The latest rendered metrics, refreshed by the call loop.
pub type Snapshot = Arc<Mutex<String>>;

/// Renders the Switchboard's counters and gauges.
pub fn render(sb: &b2bua::Switchboard, tcp_connections: usize) -> String {
    let s = sb.stats();
    let mut out = String::with_capacity(2048);
    let mut counter = |name: &str, help: &str, v: u64| {
        out.push_str(&format!("# HELP centralino_{name} {help}\n# TYPE centralino_{name} counter\ncentralino_{name} {v}\n"));
    };
    counter(
        "sip_messages_received_total",
        "SIP messages received and parsed.",
        s.messages_in,
    );
    counter(
        "sip_messages_sent_total",
        "SIP messages sent.",
        s.messages_out,
    );
    counter(
        "sip_dropped_total",
        "Datagrams dropped as unparseable or invalid.",
        s.dropped,
    );
    counter(
        "sip_rejected_malformed_total",
        "Requests answered with an error for bad syntax.",
        s.rejected_malformed,
    );
    counter(
        "sip_penalised_total",
        "Requests ignored from penalised sources.",
        s.penalised,
    );
    counter("calls_started_total", "Calls started.", s.calls_started);
    counter("calls_answered_total", "Calls answered.", s.calls_answered);
    counter("calls_ended_total", "Calls ended.", s.calls_ended);
    counter(
        "registrations_total",
        "Successful REGISTER requests.",
        s.registrations,
    );
    counter(
        "auth_failures_total",
        "Digest authentication failures.",
        s.auth_failures,
    );
    let mut gauge = |name: &str, help: &str, v: usize| {
        out.push_str(&format!("# HELP centralino_{name} {help}\n# TYPE centralino_{name} gauge\ncentralino_{name} {v}\n"));
    };
    gauge("calls_active", "Calls in progress.", sb.n_calls());
    gauge(
        "transactions_active",
        "SIP transactions in progress.",
        sb.n_transactions(),
    );
    gauge(
        "registrations_active",
        "Registered contacts.",
        sb.n_bindings(),
    );
    gauge(
        "media_ports_in_use",
        "RTP port pairs in use.",
        sb.media_ports_in_use(),
    );
    gauge(
        "tcp_connections",
        "Open SIP TCP connections.",
        tcp_connections,
    );
    out
}

/// Serves the snapshot at any path until the process ends.
pub async fn serve(addr: SocketAddr, snapshot: Snapshot) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    loop {
        let (mut sock, _) = listener.accept().await?;
        let snapshot = Arc::clone(&snapshot);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), sock.read(&mut buf)).await;
            let body = snapshot.lock().map(|s| s.clone()).unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        });
    }
}
