//! Prometheus text exposition on a local HTTP port: a tiny HTTP/1.1 responder, enough for a
//! scraper and `curl`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The latest rendered metrics, refreshed by the call loop.
pub type Snapshot = Arc<Mutex<String>>;

/// RTP counters summed over every call that has ended.
#[derive(Debug, Default)]
pub struct MediaTotals {
    received: u64,
    forwarded: u64,
    bytes: u64,
    lost: u64,
    dropped: u64,
    timeouts: u64,
}

impl MediaTotals {
    /// Adds one call's counters.
    pub fn add(&mut self, s: &crate::media_task::MediaSummary) {
        for leg in [&s.a, &s.b] {
            self.received += leg.received_packets;
            self.forwarded += leg.forwarded_packets;
            self.bytes += leg.forwarded_bytes;
            self.lost += leg.lost;
            self.dropped += leg.dropped.total();
        }
        self.timeouts += u64::from(s.timed_out);
    }
}

/// Renders the Switchboard's counters and gauges.
pub fn render(sb: &b2bua::Switchboard, tcp_connections: usize, media: &MediaTotals) -> String {
    let s = sb.stats();
    let counters: [(&str, &str, u64); 19] = [
        (
            "sip_messages_received_total",
            "SIP messages received and parsed.",
            s.messages_in,
        ),
        (
            "sip_messages_sent_total",
            "SIP messages sent.",
            s.messages_out,
        ),
        (
            "sip_dropped_total",
            "Datagrams dropped as unparseable or invalid.",
            s.dropped,
        ),
        (
            "sip_rejected_malformed_total",
            "Requests answered with an error for bad syntax.",
            s.rejected_malformed,
        ),
        (
            "sip_penalised_total",
            "Requests ignored from penalised sources.",
            s.penalised,
        ),
        ("calls_started_total", "Calls started.", s.calls_started),
        ("calls_answered_total", "Calls answered.", s.calls_answered),
        (
            "calls_ivr_total",
            "Calls the switch answered itself (IVR, voicemail).",
            s.calls_ivr,
        ),
        (
            "ivr_digits_total",
            "Keys callers pressed in the IVR.",
            s.ivr_digits,
        ),
        (
            "voicemails_total",
            "Voicemail messages stored.",
            s.voicemails,
        ),
        ("calls_ended_total", "Calls ended.", s.calls_ended),
        (
            "registrations_total",
            "Successful REGISTER requests.",
            s.registrations,
        ),
        (
            "auth_failures_total",
            "Digest authentication failures.",
            s.auth_failures,
        ),
        (
            "rtp_packets_received_total",
            "RTP/RTCP packets received by the relay (ended calls).",
            media.received,
        ),
        (
            "rtp_packets_forwarded_total",
            "RTP/RTCP packets relayed (ended calls).",
            media.forwarded,
        ),
        (
            "rtp_bytes_forwarded_total",
            "RTP/RTCP bytes relayed (ended calls).",
            media.bytes,
        ),
        (
            "rtp_packets_lost_total",
            "RTP packets lost before the switch, from sequence gaps (ended calls).",
            media.lost,
        ),
        (
            "rtp_packets_dropped_total",
            "Datagrams the relay refused (ended calls).",
            media.dropped,
        ),
        (
            "media_timeouts_total",
            "Calls ended because no RTP arrived.",
            media.timeouts,
        ),
    ];
    let gauges: [(&str, &str, usize); 6] = [
        ("calls_active", "Calls in progress.", sb.n_calls()),
        (
            "transactions_active",
            "SIP transactions in progress.",
            sb.n_transactions(),
        ),
        (
            "registrations_active",
            "Registered contacts (bindings).",
            sb.n_bindings(),
        ),
        (
            "registered_extensions",
            "Extensions with at least one registered contact.",
            sb.n_registered_extensions(),
        ),
        (
            "media_ports_in_use",
            "RTP port pairs in use.",
            sb.media_ports_in_use(),
        ),
        (
            "tcp_connections",
            "Open SIP TCP connections.",
            tcp_connections,
        ),
    ];
    let mut out = String::with_capacity(4096);
    for (name, help, v) in counters {
        out.push_str(&format!("# HELP centralino_{name} {help}\n# TYPE centralino_{name} counter\ncentralino_{name} {v}\n"));
    }
    for (name, help, v) in gauges {
        out.push_str(&format!("# HELP centralino_{name} {help}\n# TYPE centralino_{name} gauge\ncentralino_{name} {v}\n"));
    }
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
