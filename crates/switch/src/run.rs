//! `centralino run`: the tokio edge around the Switchboard. One loop owns the Switchboard and
//! the SIP UDP socket; TCP connections, media tasks and signals reach it as [`Wake`] events.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use b2bua::{CallKey, Input, LegSide, Now, Output, Switchboard, SwitchboardConfig};
use sip_core::{Peer, TimerConfig, Transport};
use sip_msg::{Frame, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::db::{self, DbWrite};
use crate::media_task::{self, MediaCommand};
use crate::metrics;
use crate::player::PlayerCommand;

/// A TCP connection with no traffic for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(300);
/// Most TCP connections served at once.
const TCP_MAX_CONNECTIONS: usize = 4096;

/// Everything besides UDP datagrams and timers that wakes the call loop.
enum Wake {
    Tcp {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    TcpOpen {
        addr: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    TcpClosed {
        addr: SocketAddr,
    },
    MediaEnded(CallKey, media_task::MediaSummary),
    Media(CallKey, media_task::MediaEvent),
    MediaFailed(CallKey),
    Reload,
    /// The configuration loaded for a reload, or why it was refused.
    Reloaded(Box<anyhow::Result<b2bua::Config>>),
    Shutdown,
}

/// The switch's clock: real, or started at a chosen instant and advancing in real time.
struct Clock {
    start_instant: Instant,
    start_wall: Option<jiff::Timestamp>,
}

impl Clock {
    fn now(&self) -> Now {
        let instant = Instant::now();
        let wall = match self.start_wall {
            Some(w) => {
                let elapsed = jiff::SignedDuration::try_from(instant - self.start_instant)
                    .unwrap_or_default();
                w.checked_add(elapsed).unwrap_or(w)
            }
            None => jiff::Timestamp::now(),
        };
        Now { instant, wall }
    }
}

/// Runs the switch until SIGTERM or SIGINT.
pub fn run(
    config_path: &Path,
    listen: SocketAddr,
    data_dir: &Path,
    start_time: Option<&str>,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let start_wall = match start_time {
        Some(s) => Some(
            s.parse::<jiff::Timestamp>()
                .with_context(|| format!("--start-time {s}: not an RFC 3339 instant"))?,
        ),
        None => None,
    };
    let config = Arc::new(crate::load_config(config_path)?);
    // The call loop owns its thread and its epoll (a current-thread runtime): a datagram wakes
    // it directly, with no hand-over from a worker thread. Media relays run on their own
    // threads, so RTP never waits behind signalling or the other way round: one
    // current-thread runtime per shard, each call's relay on one of them. Measured on 2 CPUs:
    // a work-stealing pool cost ~15 % more CPU per packet than one thread, and two shards
    // ~30 % more than one (fewer packets per wake-up); the call loop keeps a CPU of its own,
    // so media gets one shard per remaining pair of CPUs (1 on 2 CPUs, up to 4).
    let n_shards = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4));
    let (wake_tx, wake_rx) = mpsc::unbounded_channel::<Wake>();
    let media_shards = media_shards(n_shards, &wake_tx)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(main_loop(
        config_path.to_owned(),
        config,
        listen,
        data_dir.to_owned(),
        Clock {
            start_instant: Instant::now(),
            start_wall,
        },
        media_shards,
        (wake_tx, wake_rx),
    ))
}

async fn main_loop(
    config_path: std::path::PathBuf,
    config: Arc<b2bua::Config>,
    listen: SocketAddr,
    data_dir: std::path::PathBuf,
    clock: Clock,
    media_shards: Vec<Shard>,
    (wake_tx, mut wake_rx): (mpsc::UnboundedSender<Wake>, mpsc::UnboundedReceiver<Wake>),
) -> anyhow::Result<()> {
    let db::Opened {
        bindings: stored,
        writer: db_tx,
        thread: db_thread,
    } = db::open(&data_dir)?;
    let udp = bind_sip_udp(listen).with_context(|| format!("cannot bind UDP {listen}"))?;
    let tcp = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot bind TCP {listen}"))?;
    let local = udp.local_addr()?;
    let advertised_ip = match (listen.ip().is_unspecified(), config.advertise) {
        (false, _) => listen.ip(),
        (true, Some(ip)) => ip,
        (true, None) => {
            warn!(
                "listening on an unspecified address without [switch] advertise: putting 127.0.0.1 in Via, Contact and SDP"
            );
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    };
    let mut seed = [0u8; 32];
    getrandom(&mut seed);
    let settings = SwitchboardConfig {
        advertised_ip,
        sip_port: local.port(),
        rng_seed: seed,
        timers: TimerConfig::default(),
    };
    let mut sb = Switchboard::new(settings, Arc::clone(&config));
    sb.restore_bindings(stored, clock.now());
    info!(udp = %local, tcp = %tcp.local_addr()?, config = %config.file, bindings = sb.n_bindings(), "centralino running");

    tokio::spawn(accept_tcp(tcp, wake_tx.clone()));
    spawn_signals(wake_tx.clone());
    let snapshot: metrics::Snapshot = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = config.metrics {
        let snap = Arc::clone(&snapshot);
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, snap).await {
                error!(%addr, error = %e, "metrics server failed");
            }
        });
    }

    let mut conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut media: HashMap<CallKey, mpsc::UnboundedSender<MediaCommand>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    let mut db_batch: Vec<DbWrite> = Vec::new();
    let mut media_totals = metrics::MediaTotals::default();
    // Media opened in this round of outputs, started once the round is done (so that an IVR
    // answer in the same round can still borrow the caller's socket for the player).
    let mut pending: Vec<PendingMedia> = Vec::new();
    let mut ivr_calls: std::collections::HashSet<CallKey> = std::collections::HashSet::new();
    let mut ssrc_state = u64::from_le_bytes(seed[..8].try_into().unwrap_or_default()) | 1;
    loop {
        // Act on everything the Switchboard wants done.
        while let Some(out) = sb.poll_output() {
            match out {
                Output::Transmit { to, bytes } => {
                    transmit(&udp, &mut conns, &wake_tx, to, bytes).await
                }
                Output::OpenMedia {
                    call,
                    a_port,
                    b_port,
                    timeout,
                } => {
                    // Bound here, at once, so a taken port fails the call before anything
                    // else happens to it; the media runtime then drives the sockets.
                    match media_task::bind(advertised_ip, a_port, b_port) {
                        Ok(sockets) => {
                            let (tx, rx) = mpsc::unbounded_channel();
                            media.insert(call, tx);
                            pending.push(PendingMedia {
                                call,
                                sockets,
                                rx,
                                timeout,
                            });
                        }
                        Err(e) => {
                            warn!(call = call.0, a_port, b_port, error = %e, "cannot bind media ports; they are set aside");
                            sb.handle(Input::MediaFailed { call }, clock.now());
                        }
                    }
                }
                Output::MediaRemote {
                    call,
                    leg,
                    rtp,
                    rtcp,
                } => {
                    if let Some(m) = media.get(&call) {
                        let leg = match leg {
                            LegSide::A => media::LegId::A,
                            LegSide::B => media::LegId::B,
                        };
                        let _ = m.send(MediaCommand::Remote { leg, rtp, rtcp });
                    }
                }
                Output::MediaHold { call, on_hold } => {
                    if let Some(m) = media.get(&call) {
                        let _ = m.send(MediaCommand::Hold(on_hold));
                    }
                }
                Output::CloseMedia { call } => {
                    if let Some(m) = media.remove(&call) {
                        let _ = m.send(MediaCommand::Close);
                    }
                    if ivr_calls.remove(&call) {
                        player_of(&media_shards, call).send_cmd(PlayerCommand::Close { call });
                    }
                }
                Output::MediaIvr {
                    call,
                    encoding,
                    payload_type,
                    telephone_event,
                } => {
                    // Media opened in this round: the socket is still here. Opened earlier (a
                    // group's no_answer after ringing): the call's media task shares it.
                    let socket = pending
                        .iter()
                        .find(|p| p.call == call)
                        .and_then(|p| p.sockets[0].try_clone().ok());
                    let share_socket = socket.is_none();
                    ssrc_state = splitmix(ssrc_state);
                    player_of(&media_shards, call).send_cmd(PlayerCommand::Open {
                        call,
                        socket,
                        encoding,
                        payload_type,
                        ssrc: (ssrc_state >> 32) as u32,
                    });
                    ivr_calls.insert(call);
                    if let Some(m) = media.get(&call) {
                        let _ = m.send(MediaCommand::Listen {
                            encoding,
                            payload_type,
                            telephone_event,
                            share_socket,
                        });
                    }
                }
                Output::Play { call, id, prompts } => {
                    player_of(&media_shards, call).send_cmd(PlayerCommand::Play {
                        call,
                        id,
                        prompts,
                    });
                }
                Output::PlayLoop {
                    call,
                    music,
                    announcement,
                    every,
                } => {
                    player_of(&media_shards, call).send_cmd(PlayerCommand::Loop {
                        call,
                        music,
                        announcement,
                        every,
                    });
                }
                Output::StopPlayback { call } => {
                    player_of(&media_shards, call).send_cmd(PlayerCommand::Stop { call });
                }
                Output::Record {
                    call,
                    mailbox,
                    caller,
                    dialled,
                    call_id,
                    max,
                    started_unix,
                } => {
                    if let Some(m) = media.get(&call) {
                        let meta = crate::voicemail::MessageMeta {
                            mailbox,
                            caller,
                            dialled,
                            call_id,
                            started_unix,
                            call: call.0,
                        };
                        let _ = m.send(MediaCommand::Record { max, meta });
                    }
                }
                Output::MediaDtmf {
                    call,
                    telephone_event,
                } => {
                    if let Some(m) = media.get(&call) {
                        let _ = m.send(MediaCommand::Dtmf(telephone_event));
                    }
                }
                Output::StopRecording { call } => {
                    if let Some(m) = media.get(&call) {
                        let _ = m.send(MediaCommand::StopRecording);
                    }
                }
                Output::MediaBridge { call } => {
                    if let Some(m) = media.get(&call) {
                        let _ = m.send(MediaCommand::Bridge);
                    }
                    if ivr_calls.remove(&call) {
                        player_of(&media_shards, call).send_cmd(PlayerCommand::Close { call });
                    }
                }
                Output::SaveBinding(b) => db_batch.push(DbWrite::Save(b)),
                Output::DeleteBinding(b) => db_batch.push(DbWrite::Delete(b)),
            }
        }
        for p in pending.drain(..) {
            let wake = wake_tx.clone();
            let events = wake_tx.clone();
            let call = p.call;
            let context = media_task::MediaContext {
                data_dir: data_dir.clone(),
                events: Arc::new(move |ev| {
                    let _ = events.send(Wake::Media(call, ev));
                }),
                call,
                player: player_of(&media_shards, call).player.clone(),
            };
            let (sockets, rx, timeout) = (p.sockets, p.rx, p.timeout);
            media_shards[shard_of(&media_shards, call)]
                .handle
                .spawn(async move {
                    match media_task::register(sockets) {
                        Ok(sockets) => {
                            media_task::relay(sockets, timeout, rx, context, |summary| {
                                let _ = wake.send(Wake::MediaEnded(call, summary));
                            })
                            .await
                        }
                        Err(e) => {
                            warn!(call = call.0, error = %e, "cannot register media sockets");
                            let _ = wake.send(Wake::MediaFailed(call));
                        }
                    }
                });
        }
        if !db_batch.is_empty() {
            let _ = db_tx.send(std::mem::take(&mut db_batch));
        }
        let deadline = sb.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    let now = clock.now();
                    sb.handle(Input::Message { from: Peer { transport: Transport::Udp, addr: from }, bytes: &buf[..n] }, now);
                    // Drain what else is queued before acting, to amortise the wake-up.
                    for _ in 0..64 {
                        match udp.try_recv_from(&mut buf) {
                            Ok((n, from)) => sb.handle(Input::Message { from: Peer { transport: Transport::Udp, addr: from }, bytes: &buf[..n] }, now),
                            Err(_) => break,
                        }
                    }
                }
            }
            Some(w) = wake_rx.recv() => match w {
                Wake::Tcp { from, bytes } => sb.handle(Input::Message { from: Peer { transport: Transport::Tcp, addr: from }, bytes: &bytes }, clock.now()),
                Wake::TcpOpen { addr, writer } => {
                    conns.insert(addr, writer);
                }
                Wake::TcpClosed { addr } => {
                    conns.remove(&addr);
                }
                                Wake::MediaFailed(call) => {
                    media.remove(&call);
                    sb.handle(Input::MediaFailed { call }, clock.now());
                }
                Wake::Media(call, ev) => {
                    let input = match ev {
                        media_task::MediaEvent::Digit(digit) => Input::Digit { call, digit },
                        media_task::MediaEvent::PlaybackFinished(id) => Input::PlaybackFinished { call, id },
                        media_task::MediaEvent::Recorded(stored) => Input::RecordingDone { call, stored },
                    };
                    sb.handle(input, clock.now());
                }
                Wake::MediaEnded(call, summary) => {
                    let (a, b) = (&summary.a, &summary.b);
                    debug!(
                        call = call.0, timed_out = summary.timed_out,
                        a_rx = a.received_packets, a_fwd = a.forwarded_packets, a_lost = a.lost,
                        b_rx = b.received_packets, b_fwd = b.forwarded_packets, b_lost = b.lost,
                        dropped = a.dropped.total() + b.dropped.total(), "media ended"
                    );
                    media_totals.add(&summary);
                    if summary.timed_out {
                        media.remove(&call);
                        sb.handle(Input::MediaTimeout { call }, clock.now());
                    }
                }
                Wake::Reload => {
                    // Compiling the dialplan and decoding its prompts takes a while: off the
                    // call loop, which keeps serving calls meanwhile.
                    let (path, wake) = (config_path.clone(), wake_tx.clone());
                    std::thread::spawn(move || {
                        let loaded = crate::load_config(&path);
                        let _ = wake.send(Wake::Reloaded(Box::new(loaded)));
                    });
                }
                Wake::Reloaded(loaded) => match *loaded {
                    Ok(c) => {
                        info!("configuration reloaded");
                        sb.reload(Arc::new(c));
                    }
                    Err(e) => warn!(error = %e, "reload refused; the running configuration stays"),
                },
                Wake::Shutdown => break,
            },
            _ = sleep_until(deadline) => sb.handle(Input::Timeout, clock.now()),
            _ = metrics_tick.tick() => {
                if let Ok(mut s) = snapshot.lock() {
                    *s = metrics::render(&sb, conns.len(), &media_totals);
                }
            }
        }
    }
    info!(calls = sb.n_calls(), "shutting down");
    for (_, m) in media.drain() {
        let _ = m.send(MediaCommand::Close);
    }
    drop(db_tx);
    let _ = db_thread.join();
    Ok(())
}

/// One media thread: its runtime drives the relays of its calls and its prompt player.
struct Shard {
    handle: tokio::runtime::Handle,
    player: mpsc::UnboundedSender<PlayerCommand>,
}

impl Shard {
    fn send_cmd(&self, cmd: PlayerCommand) {
        let _ = self.player.send(cmd);
    }
}

/// Media opened but not started yet.
struct PendingMedia {
    call: CallKey,
    sockets: [std::net::UdpSocket; 4],
    rx: mpsc::UnboundedReceiver<MediaCommand>,
    timeout: Duration,
}

fn shard_of(shards: &[Shard], call: CallKey) -> usize {
    (call.0 % shards.len() as u64) as usize
}

fn player_of(shards: &[Shard], call: CallKey) -> &Shard {
    &shards[shard_of(shards, call)]
}

/// SplitMix64: the SSRCs of our prompt streams.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Starts `n` media threads, each driving its own current-thread runtime with the shard's
/// prompt player as its main task (relays are spawned onto them; the threads end with the
/// process).
fn media_shards(n: usize, wake: &mpsc::UnboundedSender<Wake>) -> anyhow::Result<Vec<Shard>> {
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (player, commands) = mpsc::unbounded_channel();
        shards.push(Shard {
            handle: rt.handle().clone(),
            player,
        });
        let wake = wake.clone();
        let report: crate::player::Report = Arc::new(move |call, ev| {
            let _ = wake.send(Wake::Media(call, ev));
        });
        std::thread::Builder::new()
            .name(format!("media-{i}"))
            .spawn(move || rt.block_on(crate::player::run(commands, report)))?;
    }
    Ok(shards)
}

/// Receive buffer asked for the SIP socket: bursts of signalling (a trunk's busy hour, a
/// flood) wait here while the call loop catches up, instead of being dropped. The kernel caps
/// it at `net.core.rmem_max`.
const SIP_RECV_BUFFER: usize = 8 << 20;

/// Binds the SIP UDP socket with a large receive buffer (benchmarks showed the default one
/// overflowing at 2,000 calls/s).
fn bind_sip_udp(listen: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(listen),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if let Err(e) = socket.set_recv_buffer_size(SIP_RECV_BUFFER) {
        warn!(error = %e, "cannot enlarge the SIP receive buffer");
    }
    socket.bind(&listen.into())?;
    socket.set_nonblocking(true)?;
    let got = socket.recv_buffer_size().unwrap_or(0);
    if got < SIP_RECV_BUFFER {
        debug!(
            bytes = got,
            "SIP receive buffer capped by net.core.rmem_max"
        );
    }
    UdpSocket::from_std(socket.into())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn transmit(
    udp: &UdpSocket,
    conns: &mut HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    wake: &mpsc::UnboundedSender<Wake>,
    to: Peer,
    bytes: Vec<u8>,
) {
    match to.transport {
        Transport::Udp => {
            // RFC 4475 §3.3.10: never send to a broadcast or unspecified address.
            if to.addr.ip().is_unspecified()
                || to.addr.port() == 0
                || matches!(to.addr.ip(), IpAddr::V4(v4) if v4.is_broadcast())
            {
                return;
            }
            if let Err(e) = udp.try_send_to(&bytes, to.addr) {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    let _ = udp.send_to(&bytes, to.addr).await;
                } else {
                    debug!(to = %to.addr, error = %e, "UDP send failed");
                }
            }
        }
        Transport::Tcp => match conns
            .get(&to.addr)
            .or_else(|| request_target(&bytes).and_then(|t| conns.get(&t)))
        {
            Some(w) => {
                if w.try_send(bytes).is_err() {
                    debug!(to = %to.addr, "TCP connection is full or gone; message dropped");
                }
            }
            None => {
                // No connection to that peer: open one (RFC 3261 §18.1.1). A phone's
                // registration connection may be gone; a request then goes to the address in
                // its Request-URI (the phone's Contact), where the phone listens.
                let wake = wake.clone();
                let addr = request_target(&bytes).unwrap_or(to.addr);
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let writer = serve_connection(stream, addr, wake.clone(), None);
                            let _ = writer.send(bytes).await;
                            let _ = wake.send(Wake::TcpOpen { addr, writer });
                        }
                        _ => debug!(%addr, "TCP connect failed"),
                    }
                });
            }
        },
    }
}

/// The `host:port` of a request's Request-URI when the host is an IP literal.
fn request_target(bytes: &[u8]) -> Option<SocketAddr> {
    let line_end = bytes.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = std::str::from_utf8(bytes.get(..line_end)?).ok()?;
    let mut parts = line.split(' ');
    let (_method, uri) = (parts.next()?, parts.next()?);
    sip_msg::Uri::parse(uri).ok()?.as_sip()?.socket_addr()
}

/// Decrements the count of accepted connections when dropped.
struct OpenGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn accept_tcp(listener: TcpListener, wake: mpsc::UnboundedSender<Wake>) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        if open.load(std::sync::atomic::Ordering::Relaxed) >= TCP_MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let guard = OpenGuard(Arc::clone(&open));
        let writer = serve_connection(stream, addr, wake.clone(), Some(guard));
        let _ = wake.send(Wake::TcpOpen { addr, writer });
    }
}

/// Reads framed messages from a connection and writes what the loop sends to it.
fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    wake: mpsc::UnboundedSender<Wake>,
    guard: Option<OpenGuard>,
) -> mpsc::Sender<Vec<u8>> {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    let pong = tx.clone();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        // Counts this accepted connection until its reader ends.
        let _guard = guard;
        let mut framer = StreamFramer::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match tokio::time::timeout(TCP_IDLE, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Err(_) => {
                    debug!(%addr, "idle TCP connection closed");
                    break;
                }
                Ok(Ok(n)) => n,
            };
            if framer.push(&buf[..n]).is_err() {
                debug!(%addr, "TCP buffer limit exceeded; closing");
                break;
            }
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(bytes))) => {
                        let _ = wake.send(Wake::Tcp { from: addr, bytes });
                    }
                    Ok(Some(Frame::Ping)) => {
                        // RFC 5626 §3.5.1: answer a CRLF CRLF ping with a CRLF pong.
                        let _ = pong.try_send(b"\r\n".to_vec());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(%addr, error = %e, "unframeable TCP stream; closing");
                        let _ = wake.send(Wake::TcpClosed { addr });
                        return;
                    }
                }
            }
        }
        let _ = wake.send(Wake::TcpClosed { addr });
    });
    tx
}

fn spawn_signals(wake: mpsc::UnboundedSender<Wake>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => { let _ = wake.send(Wake::Shutdown); }
                _ = int.recv() => { let _ = wake.send(Wake::Shutdown); }
                _ = hup.recv() => { let _ = wake.send(Wake::Reload); continue; }
            }
            return;
        }
    });
}

/// Seeds the core's RNG from the OS.
fn getrandom(out: &mut [u8; 32]) {
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom")
        && f.read_exact(out).is_ok()
    {
        return;
    }
    // Fall back to time and address entropy; only tags and branches depend on it.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for (i, b) in out.iter_mut().enumerate() {
        *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
    }
}
