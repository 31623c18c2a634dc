//! A virtual-time rig for whole-switch scenarios: one [`Switchboard`], a clock moved by hand,
//! and scripted peers that are only addresses plus helpers that write SIP as text.
//!
//! No sockets, no sleeping. Every message the switch transmits is routed to the inbox of the
//! peer at its destination; the script takes what it expects from there. Every message either
//! way is written to the SIP ladder, which is printed whenever a scenario panics (see the
//! `Drop` impl), so a failing assertion shows the whole exchange with virtual timestamps.
//! `RIG_LADDER=1 cargo test -p b2bua --test scenarios NAME -- --nocapture` prints it always.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the rig"
)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use b2bua::{CallKey, Config, Input, LegSide, Now, Output, Switchboard, SwitchboardConfig};
use sip_core::{Peer, TimerConfig, Transport};
use sip_msg::{Framing, HeaderName, Message, Method, NameAddr, Request, Response};

/// The switch's advertised address (Via, Contact, SDP).
pub const SWITCH_IP: &str = "192.0.2.10";
/// The switch's SIP port.
pub const SWITCH_PORT: u16 = 5060;
/// RFC 3261 T1 as configured in the rig.
pub const T1: Duration = Duration::from_millis(500);
/// 64*T1 + 5 s: long enough for every transaction (Timers B, F, H, J, K, L, M) to end.
pub const SETTLE: Duration = Duration::from_millis(64 * 500 + 5_000);
/// The trunk of `dialplans/example.toml`.
pub const TRUNK: &str = "127.0.0.2:5060";
/// The example's RTP port range.
pub const RTP_PORTS: std::ops::RangeInclusive<u16> = 20000..=29999;
/// The prompts of the example dialplan.
pub const PROMPTS: &[&str] = &[
    "welcome",
    "main-menu",
    "invalid-choice",
    "option-info",
    "option-spesa",
    "option-assistenza",
    "option-salute",
    "option-ascolto",
    "info",
    "please-wait",
    "closed",
];

/// Fixed wall time: Monday 2 March 2026, 10:00 in Europe/Rome (office open).
pub const WALL_START: &str = "2026-03-02T09:00:00Z";
/// Most timeouts handled in one `advance` before the rig calls it a livelock.
const MAX_STEPS: usize = 100_000;
/// No scenario runs longer than this in virtual time: a script stuck in a loop fails fast.
const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a socket address written as text.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test addresses are valid")
}

/// A message a peer received from the switch.
#[derive(Clone, Debug)]
pub struct Received {
    /// Virtual time of arrival.
    pub at: Duration,
    /// The message.
    pub msg: Message,
    /// Taken by the script already.
    pub consumed: bool,
}

/// Loses messages the switch sends: the next `remaining` whose first line starts with `prefix`
/// (and whose CSeq method is `cseq_method`, when given) towards `to`.
#[derive(Clone, Debug)]
struct DropRule {
    to: SocketAddr,
    prefix: String,
    cseq_method: Option<Method>,
    remaining: usize,
}

/// One media output of the switch, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Which call.
    pub call: CallKey,
    /// Which leg.
    pub leg: LegSide,
    /// Where RTP goes.
    pub rtp: Option<SocketAddr>,
}

/// The switch plus a virtual clock and the peers' inboxes.
pub struct Rig {
    /// The switch under test.
    pub sb: Switchboard,
    t0: Instant,
    /// Virtual time since the start.
    pub elapsed: Duration,
    wall0: jiff::Timestamp,
    names: HashMap<SocketAddr, String>,
    /// The SIP ladder so far.
    pub ladder: Vec<String>,
    inbox: HashMap<SocketAddr, Vec<Received>>,
    drops: Vec<DropRule>,
    /// Calls for which `OpenMedia` was output, in order.
    pub opened: Vec<(CallKey, u16, u16)>,
    /// Calls for which `CloseMedia` was output, in order.
    pub closed: Vec<CallKey>,
    /// Every `MediaRemote`, in order.
    pub remotes: Vec<Remote>,
    /// Every `SaveBinding`.
    pub saved: Vec<b2bua::BindingRecord>,
    /// Every `DeleteBinding`.
    pub deleted: Vec<b2bua::BindingRecord>,
    /// Every `MediaHold` (call, on_hold).
    pub holds: Vec<(CallKey, bool)>,
    /// Keep the ladder (off for long soak runs, which keep only the last lines).
    pub ladder_limit: Option<usize>,
    counter: u64,
    tcp_peers: Vec<SocketAddr>,
    sent_transports: Vec<(SocketAddr, Transport)>,
    /// Random loss: per-mille probability and the state of a seeded LCG (both directions).
    pub loss: Option<(u64, u64)>,
    /// Messages lost to random loss so far.
    pub n_lost: u64,
    /// Every `Play` (call, id, prompt names), in order.
    pub plays: Vec<(CallKey, u32, Vec<String>)>,
    /// Media outputs of the IVR besides `Play`, as short strings (`ivr 1 Pcmu`, `loop 1
    /// ringback`, `stop 1`, `record 1 general`, `stop-record 1`, `bridge 1`).
    pub ivr_media: Vec<String>,
}

impl Rig {
    /// A switch running `dialplans/example.toml` with a fixed seed.
    pub fn new() -> Rig {
        Rig::with_seed(7)
    }

    /// The text of `dialplans/example.toml`.
    pub fn example_text() -> &'static str {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../dialplans/example.toml"
        ))
    }

    /// A switch running the example dialplan with a seed made from `seed`.
    pub fn with_seed(seed: u8) -> Rig {
        Rig::with_config(Rig::example_text(), seed)
    }

    /// A switch running the configuration `text`.
    pub fn with_config(text: &str, seed: u8) -> Rig {
        let (mut config, _warnings) = match Config::compile("example.toml", text) {
            Ok(c) => c,
            Err(errors) => panic!("example dialplan does not compile: {errors:?}"),
        };
        // Prompts as the loader would decode them: a 1 s tone each (the audio is not looked at
        // here; the media side plays it).
        for name in PROMPTS {
            config.prompts.insert(
                (*name).to_owned(),
                Arc::new(media::Prompt::from_pcm(
                    name,
                    media::prompt::tone(440.0, 1000, -20.0).pcm().to_vec(),
                )),
            );
        }
        let settings = SwitchboardConfig {
            advertised_ip: SWITCH_IP.parse().expect("constant"),
            sip_port: SWITCH_PORT,
            rng_seed: [seed; 32],
            timers: TimerConfig {
                t1: T1,
                t2: Duration::from_secs(4),
                t4: Duration::from_secs(5),
            },
        };
        let mut names = HashMap::new();
        names.insert(addr(TRUNK), "trunk".to_owned());
        Rig {
            sb: Switchboard::new(settings, Arc::new(config)),
            t0: Instant::now(),
            elapsed: Duration::ZERO,
            wall0: WALL_START.parse().expect("constant timestamp"),
            names,
            ladder: Vec::new(),
            inbox: HashMap::new(),
            drops: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
            remotes: Vec::new(),
            saved: Vec::new(),
            deleted: Vec::new(),
            holds: Vec::new(),
            ladder_limit: None,
            counter: 0,
            tcp_peers: Vec::new(),
            sent_transports: Vec::new(),
            loss: None,
            n_lost: 0,
            plays: Vec::new(),
            ivr_media: Vec::new(),
        }
    }

    /// Names a peer in the ladder.
    pub fn name(&mut self, at: SocketAddr, name: &str) {
        self.names.insert(at, name.to_owned());
    }

    fn who(&self, at: SocketAddr) -> String {
        self.names
            .get(&at)
            .cloned()
            .unwrap_or_else(|| at.to_string())
    }

    /// A fresh number for tags, branches and Call-IDs written by peers.
    pub fn unique(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Both clocks now.
    pub fn now(&self) -> Now {
        let wall = self
            .wall0
            .checked_add(jiff::SignedDuration::try_from(self.elapsed).expect("virtual time fits"))
            .expect("virtual time stays in jiff's range");
        Now {
            instant: self.t0 + self.elapsed,
            wall,
        }
    }

    fn log(&mut self, line: String) {
        self.ladder
            .push(format!("{:>10.3}  {line}", self.elapsed.as_secs_f64()));
        if let Some(limit) = self.ladder_limit
            && self.ladder.len() > 2 * limit
        {
            self.ladder.drain(..self.ladder.len() - limit);
        }
    }

    /// Compares the ladder with `tests/ladders/<name>.txt`; `UPDATE_EXPECT=1` rewrites the file.
    pub fn check_ladder(&self, name: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/ladders")
            .join(format!("{name}.txt"));
        let actual = format!("{}\n", self.ladder_text());
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::create_dir_all(path.parent().expect("has a parent"))
                .expect("create tests/ladders");
            std::fs::write(&path, &actual).expect("write golden ladder");
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_EXPECT=1 to create it)",
                path.display()
            )
        });
        if expected != actual {
            let (e, a): (Vec<&str>, Vec<&str>) =
                (expected.lines().collect(), actual.lines().collect());
            let diff = line_diff(&e, &a);
            panic!(
                "ladder differs from {} (UPDATE_EXPECT=1 to accept):\n{diff}",
                path.display()
            );
        }
    }

    /// The ladder as one string.
    pub fn ladder_text(&self) -> String {
        self.ladder.join("\n")
    }

    /// Loses each datagram, either way, with probability `per_mille`/1000 (seeded, so a run
    /// is reproducible).
    pub fn set_loss(&mut self, per_mille: u64, seed: u64) {
        self.loss = Some((per_mille, seed));
    }

    fn roll_loss(&mut self) -> bool {
        let Some((p, state)) = &mut self.loss else {
            return false;
        };
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let lost = (*state >> 33) % 1000 < *p;
        if lost {
            self.n_lost += 1;
        }
        lost
    }

    /// A peer sends `bytes` to the switch over UDP, or over TCP if the peer was marked so.
    pub fn send(&mut self, from: SocketAddr, bytes: impl AsRef<[u8]>) {
        let transport = if self.tcp_peers.contains(&from) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let bytes = bytes.as_ref();
        let line = summary_bytes(bytes);
        let name = self.who(from);
        let tcp = if transport == Transport::Tcp {
            " (tcp)"
        } else {
            ""
        };
        if transport == Transport::Udp && self.roll_loss() {
            self.log(format!("{name:>8} -> switch    {line}   ** LOST **"));
            return;
        }
        self.log(format!("{name:>8} -> switch    {line}{tcp}"));
        let now = self.now();
        self.sb.handle(
            Input::Message {
                from: Peer {
                    transport,
                    addr: from,
                },
                bytes,
            },
            now,
        );
        self.drain();
    }

    /// From now on `peer` talks to the switch over TCP (one connection, identified by `peer`).
    pub fn use_tcp(&mut self, peer: SocketAddr) {
        self.tcp_peers.push(peer);
    }

    /// Transports of every message sent to `at`, in order.
    pub fn transports_to(&self, at: SocketAddr) -> Vec<Transport> {
        self.sent_transports
            .iter()
            .filter(|(a, _)| *a == at)
            .map(|(_, t)| *t)
            .collect()
    }

    /// Feeds any other input (media timeout, media failure).
    pub fn input(&mut self, input: Input<'_>) {
        self.log(format!("   (input)           {input:?}"));
        let now = self.now();
        self.sb.handle(input, now);
        self.drain();
    }

    /// Loses the next `n` messages towards `to` whose first line starts with `prefix`.
    pub fn drop_next(&mut self, to: SocketAddr, prefix: &str, n: usize) {
        self.drops.push(DropRule {
            to,
            prefix: prefix.to_owned(),
            cseq_method: None,
            remaining: n,
        });
    }

    /// Loses the next `n` responses with `status` to a `method` request towards `to`.
    pub fn drop_responses(&mut self, to: SocketAddr, status: u16, method: Method, n: usize) {
        self.drops.push(DropRule {
            to,
            prefix: format!("SIP/2.0 {status} "),
            cseq_method: Some(method),
            remaining: n,
        });
    }

    fn drain(&mut self) {
        while let Some(o) = self.sb.poll_output() {
            match o {
                Output::Transmit { to, bytes } => {
                    let msg = match sip_msg::parse(&bytes, Framing::Datagram) {
                        Ok(m) => m,
                        Err(e) => panic!(
                            "the switch sent an unparseable message to {}: {e:?}\n{}",
                            to.addr,
                            String::from_utf8_lossy(&bytes)
                        ),
                    };
                    let line = summary(&msg);
                    let lost = self.drops.iter_mut().any(|d| {
                        let hit = d.remaining > 0
                            && d.to == to.addr
                            && line.starts_with(&d.prefix)
                            && d.cseq_method
                                .as_ref()
                                .is_none_or(|m| cseq_method(&msg).as_ref() == Some(m));
                        if hit {
                            d.remaining -= 1;
                        }
                        hit
                    }) || (to.transport == Transport::Udp && self.roll_loss());
                    let name = self.who(to.addr);
                    let tcp = if to.transport == Transport::Tcp {
                        " (tcp)"
                    } else {
                        ""
                    };
                    self.log(format!(
                        "  switch -> {name:<8}  {line}{tcp}{}",
                        if lost { "   ** LOST **" } else { "" }
                    ));
                    if self.ladder_limit.is_none() {
                        self.sent_transports.push((to.addr, to.transport));
                    }
                    if !lost {
                        let at = self.elapsed;
                        self.inbox.entry(to.addr).or_default().push(Received {
                            at,
                            msg,
                            consumed: false,
                        });
                    }
                }
                Output::OpenMedia {
                    call,
                    a_port,
                    b_port,
                    ..
                } => {
                    self.log(format!(
                        "   (media)           open call {} a={a_port} b={b_port}",
                        call.0
                    ));
                    self.opened.push((call, a_port, b_port));
                }
                Output::CloseMedia { call } => {
                    self.log(format!("   (media)           close call {}", call.0));
                    self.closed.push(call);
                }
                Output::MediaRemote { call, leg, rtp, .. } => {
                    self.log(format!(
                        "   (media)           remote call {} {leg:?} {rtp:?}",
                        call.0
                    ));
                    self.remotes.push(Remote { call, leg, rtp });
                }
                Output::SaveBinding(b) => {
                    self.log(format!(
                        "   (binding)         save {} {}",
                        b.aor, b.contact_uri
                    ));
                    self.saved.push(b);
                }
                Output::DeleteBinding(b) => {
                    self.log(format!(
                        "   (binding)         delete {} {}",
                        b.aor, b.contact_uri
                    ));
                    self.deleted.push(b);
                }
                Output::MediaHold { call, on_hold } => {
                    self.log(format!(
                        "   (media)           hold call {} {on_hold}",
                        call.0
                    ));
                    self.holds.push((call, on_hold));
                }
                Output::Play { call, id, prompts } => {
                    let names: Vec<String> = prompts.iter().map(|p| p.name().to_owned()).collect();
                    self.log(format!(
                        "   (media)           play call {} #{id} {}",
                        call.0,
                        names.join(" + ")
                    ));
                    self.plays.push((call, id, names));
                }
                Output::MediaIvr { call, encoding, .. } => {
                    self.log(format!(
                        "   (media)           ivr call {} {encoding:?}",
                        call.0
                    ));
                    self.ivr_media.push(format!("ivr {} {encoding:?}", call.0));
                }
                Output::PlayLoop { call, music, .. } => {
                    self.log(format!(
                        "   (media)           loop call {} {}",
                        call.0,
                        music.name()
                    ));
                    self.ivr_media
                        .push(format!("loop {} {}", call.0, music.name()));
                }
                Output::StopPlayback { call } => {
                    self.log(format!("   (media)           stop call {}", call.0));
                    self.ivr_media.push(format!("stop {}", call.0));
                }
                Output::Record { call, mailbox, .. } => {
                    self.log(format!(
                        "   (media)           record call {} {mailbox}",
                        call.0
                    ));
                    self.ivr_media.push(format!("record {} {mailbox}", call.0));
                }
                Output::StopRecording { call } => {
                    self.log(format!("   (media)           stop-record call {}", call.0));
                    self.ivr_media.push(format!("stop-record {}", call.0));
                }
                Output::MediaBridge { call } => {
                    self.log(format!("   (media)           bridge call {}", call.0));
                    self.ivr_media.push(format!("bridge {}", call.0));
                }
                // Outputs added after these tests were written: logged, never lost.
                #[allow(
                    unreachable_patterns,
                    reason = "keeps the rig compiling while Output grows"
                )]
                other => self.log(format!("   (output)          {other:?}")),
            }
        }
    }

    /// Ends the latest playback of `call` (the media side would, after its last frame).
    pub fn finish_play(&mut self, call: CallKey) {
        let id = self
            .plays
            .iter()
            .rev()
            .find(|(c, _, _)| *c == call)
            .map(|(_, id, _)| *id)
            .expect("a playback to finish");
        self.input(Input::PlaybackFinished { call, id });
    }

    /// The prompt names of the latest playback of `call`.
    pub fn last_play(&self, call: CallKey) -> Vec<String> {
        self.plays
            .iter()
            .rev()
            .find(|(c, _, _)| *c == call)
            .map(|(_, _, n)| n.clone())
            .unwrap_or_default()
    }

    /// Moves virtual time forward by `d`, firing every switch timeout on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.elapsed + d;
        self.advance_to(target);
    }

    /// Moves virtual time to `target` (since the start), firing every timeout on the way.
    /// Panics after `MAX_STEPS` timeouts: a deadline that never moves on is a livelock.
    pub fn advance_to(&mut self, target: Duration) {
        assert!(
            target < MAX_VIRTUAL_TIME,
            "the scenario ran past {MAX_VIRTUAL_TIME:?} of virtual time: a script loop?"
        );
        for _ in 0..MAX_STEPS {
            match self.sb.poll_timeout() {
                Some(t) if t <= self.t0 + target => {
                    let at = t.saturating_duration_since(self.t0);
                    if at > self.elapsed {
                        self.elapsed = at;
                    }
                    let now = self.now();
                    self.sb.handle(Input::Timeout, now);
                    self.drain();
                }
                _ => {
                    if target > self.elapsed {
                        self.elapsed = target;
                    }
                    return;
                }
            }
        }
        panic!(
            "livelock: more than {MAX_STEPS} timeouts before {target:?} (next {:?})",
            self.sb.poll_timeout()
        );
    }

    /// Advances timeout by timeout, at most `limit`, until a message `pred` accepts reaches
    /// `at`; takes it. The clock stops at that message, so the script answers at once.
    pub fn wait_for(
        &mut self,
        at: SocketAddr,
        limit: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let end = self.elapsed + limit;
        assert!(
            end < MAX_VIRTUAL_TIME,
            "the scenario ran past {MAX_VIRTUAL_TIME:?} of virtual time: a script loop?"
        );
        for _ in 0..MAX_STEPS {
            if let Some(m) = self.take(at, &pred) {
                return Some(m);
            }
            match self.sb.poll_timeout() {
                Some(t) if t <= self.t0 + end => {
                    let next = t.saturating_duration_since(self.t0);
                    if next > self.elapsed {
                        self.elapsed = next;
                    }
                    let now = self.now();
                    self.sb.handle(Input::Timeout, now);
                    self.drain();
                }
                _ => {
                    self.elapsed = self.elapsed.max(end);
                    return self.take(at, &pred);
                }
            }
        }
        panic!("livelock: more than {MAX_STEPS} timeouts while waiting");
    }

    /// Like [`Rig::wait_for`] for a request with `method`; panics if none comes in `limit`.
    pub fn wait_for_request(&mut self, at: SocketAddr, method: Method, limit: Duration) -> Request {
        match self.wait_for(at, limit, |m| is_request(m, &method)) {
            Some(Message::Request(r)) => r,
            _ => panic!(
                "{} expected a {method} within {limit:?}, until {:.3}s; pending: {:?}",
                self.who(at),
                self.elapsed.as_secs_f64(),
                self.pending(at)
            ),
        }
    }

    /// Messages for `at` not yet taken by the script.
    pub fn pending(&self, at: SocketAddr) -> Vec<String> {
        self.inbox.get(&at).map_or_else(Vec::new, |v| {
            v.iter()
                .filter(|r| !r.consumed)
                .map(|r| summary(&r.msg))
                .collect()
        })
    }

    /// Takes the first message for `at` that `pred` accepts.
    pub fn take(&mut self, at: SocketAddr, pred: impl Fn(&Message) -> bool) -> Option<Message> {
        let slot = self
            .inbox
            .get_mut(&at)?
            .iter_mut()
            .find(|r| !r.consumed && pred(&r.msg))?;
        slot.consumed = true;
        Some(slot.msg.clone())
    }

    /// Takes every message for `at` that `pred` accepts.
    pub fn take_all(&mut self, at: SocketAddr, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut out = Vec::new();
        if let Some(v) = self.inbox.get_mut(&at) {
            for r in v.iter_mut().filter(|r| !r.consumed && pred(&r.msg)) {
                r.consumed = true;
                out.push(r.msg.clone());
            }
        }
        out
    }

    /// Every message `at` ever received (taken or not) that `pred` accepts.
    pub fn received(&self, at: SocketAddr, pred: impl Fn(&Message) -> bool) -> Vec<Received> {
        self.inbox.get(&at).map_or_else(Vec::new, |v| {
            v.iter().filter(|r| pred(&r.msg)).cloned().collect()
        })
    }

    /// Forgets everything peers received (soak runs).
    pub fn clear_inboxes(&mut self) {
        self.inbox.clear();
    }

    /// Takes the first request with `method` for `at`; panics (with the ladder) if none.
    pub fn expect_request(&mut self, at: SocketAddr, method: Method) -> Request {
        match self.take(
            at,
            |m| matches!(m, Message::Request(r) if r.method == method),
        ) {
            Some(Message::Request(r)) => r,
            _ => panic!(
                "{} expected a {method} request from the switch at {:.3}s; pending: {:?}",
                self.who(at),
                self.elapsed.as_secs_f64(),
                self.pending(at)
            ),
        }
    }

    /// Takes the first response with `status` to a `method` request for `at`; panics if none.
    pub fn expect_response(&mut self, at: SocketAddr, status: u16, method: Method) -> Response {
        match self.take(at, |m| is_response(m, status, &method)) {
            Some(Message::Response(r)) => r,
            _ => panic!(
                "{} expected {status} ({method}) from the switch at {:.3}s; pending: {:?}",
                self.who(at),
                self.elapsed.as_secs_f64(),
                self.pending(at)
            ),
        }
    }

    /// Takes the first final (>= 200) response to `method` for `at`; panics if none.
    pub fn expect_final(&mut self, at: SocketAddr, method: Method) -> Response {
        match self.take(at, |m| matches!(m, Message::Response(r) if r.status >= 200 && cseq_method(m).as_ref() == Some(&method))) {
            Some(Message::Response(r)) => r,
            _ => panic!(
                "{} expected a final response ({method}) at {:.3}s; pending: {:?}",
                self.who(at),
                self.elapsed.as_secs_f64(),
                self.pending(at)
            ),
        }
    }

    /// Asserts that nothing reached `at` that the script has not taken, other than what
    /// `ignore` accepts.
    pub fn assert_quiet(&mut self, at: SocketAddr, ignore: impl Fn(&Message) -> bool) {
        let left: Vec<String> = self.inbox.get(&at).map_or_else(Vec::new, |v| {
            v.iter()
                .filter(|r| !r.consumed && !ignore(&r.msg))
                .map(|r| format!("{:.3}s {}", r.at.as_secs_f64(), summary(&r.msg)))
                .collect()
        });
        assert!(
            left.is_empty(),
            "{} got unexpected messages: {left:#?}",
            self.who(at)
        );
    }

    /// Waits `SETTLE` and checks that nothing is left: no calls, no transactions, no media
    /// ports, and every `OpenMedia` closed exactly once.
    pub fn assert_no_leaks(&mut self) {
        self.advance(SETTLE);
        assert_eq!(self.sb.n_calls(), 0, "calls left after every dialog ended");
        assert_eq!(
            self.sb.n_transactions(),
            0,
            "transactions left after {SETTLE:?}"
        );
        assert_eq!(self.sb.media_ports_in_use(), 0, "media ports left in use");
        let mut opened: Vec<CallKey> = self.opened.iter().map(|o| o.0).collect();
        let mut closed = self.closed.clone();
        opened.sort();
        closed.sort();
        assert_eq!(
            opened, closed,
            "every OpenMedia needs exactly one CloseMedia"
        );
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("RIG_LADDER").is_some() {
            eprintln!(
                "\n===== SIP ladder (virtual seconds) =====\n{}\n========================================",
                self.ladder_text()
            );
        }
    }
}

/// A minimal line diff (longest common subsequence): `-` expected only, `+` actual only.
fn line_diff(e: &[&str], a: &[&str]) -> String {
    let (n, m) = (e.len(), a.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && e[i] == a[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  + {}\n", a[j]));
            j += 1;
        } else {
            out.push_str(&format!("  - {}\n", e[i]));
            i += 1;
        }
    }
    out
}

/// The CSeq method of a message.
pub fn cseq_method(m: &Message) -> Option<Method> {
    match m {
        Message::Request(r) => r.cseq().map(|c| c.method),
        Message::Response(r) => r.cseq().map(|c| c.method),
    }
}

/// True for a response with `status` to a `method` request.
pub fn is_response(m: &Message, status: u16, method: &Method) -> bool {
    matches!(m, Message::Response(r) if r.status == status && r.cseq().is_some_and(|c| &c.method == method))
}

/// True for a request with `method`.
pub fn is_request(m: &Message, method: &Method) -> bool {
    matches!(m, Message::Request(r) if &r.method == method)
}

/// The first line of a message, plus the CSeq method for responses.
pub fn summary(m: &Message) -> String {
    match m {
        Message::Request(r) => {
            let cseq = r.headers.get(&HeaderName::CSeq).unwrap_or("?");
            let sdp = if r.body.is_empty() { "" } else { " +SDP" };
            format!("{} {}  [{cseq}]{sdp}", r.method, r.uri_raw)
        }
        Message::Response(r) => {
            let cseq = r.headers.get(&HeaderName::CSeq).unwrap_or("?");
            let sdp = if r.body.is_empty() { "" } else { " +SDP" };
            format!("SIP/2.0 {} {}  [{cseq}]{sdp}", r.status, r.reason)
        }
    }
}

fn summary_bytes(bytes: &[u8]) -> String {
    match sip_msg::parse(bytes, Framing::Datagram) {
        Ok(m) => summary(&m),
        Err(_) => format!(
            "(unparseable) {}",
            String::from_utf8_lossy(bytes).lines().next().unwrap_or("")
        ),
    }
}

/// Builds a message from a start line, headers and an optional SDP body.
pub fn message(start: &str, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut s = format!("{start}\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
    {
        s.push_str("Content-Type: application/sdp\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

/// An SDP offer or answer from `ip:port` with PCMU, PCMA and telephone-event.
pub fn sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=peer 1000 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={direction}\r\n"
    )
}

/// The connection address, first audio port and direction of an SDP body.
pub fn sdp_summary(body: &[u8]) -> (Option<IpAddr>, u16, Option<String>) {
    let sd = sdp::SessionDescription::parse(body).expect("the switch sends valid SDP");
    let m = sd.media.first().expect("one audio stream");
    let ip = m
        .connection
        .as_ref()
        .or(sd.connection.as_ref())
        .and_then(|c| c.ip());
    let dir = m
        .attributes
        .iter()
        .chain(sd.attributes.iter())
        .find(|a| sdp::Direction::from_attribute_name(&a.name).is_some())
        .map(|a| a.name.clone());
    (ip, m.port, dir)
}

/// The tag of a message's To header.
pub fn to_tag(headers: &sip_msg::Headers) -> Option<String> {
    NameAddr::parse(headers.get(&HeaderName::To)?)
        .ok()?
        .tag()
        .map(str::to_owned)
}

/// The URI of the first Contact.
pub fn contact_uri(headers: &sip_msg::Headers) -> Option<String> {
    let v = headers.values(&HeaderName::Contact)?;
    Some(NameAddr::parse(v.first()?).ok()?.uri.to_string())
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// A caller: the trunk, or any unauthenticated source. Plays UAC for the calls it places.
pub struct Caller {
    /// Where it sends from.
    pub addr: SocketAddr,
    /// User part of its From.
    pub user: String,
}

/// One call placed by a [`Caller`].
#[derive(Clone, Debug)]
pub struct Placed {
    /// The INVITE as sent.
    pub invite: Request,
    /// Dialog state once answered.
    pub to_tag: Option<String>,
    /// Where in-dialog requests go (the switch's Contact).
    pub remote_target: Option<String>,
    /// Last CSeq used.
    pub cseq: u32,
    /// The RTP port offered.
    pub rtp_port: u16,
}

impl Caller {
    /// The trunk of the example dialplan, calling from `0612345678`.
    pub fn trunk(rig: &mut Rig) -> Caller {
        rig.name(addr(TRUNK), "trunk");
        Caller {
            addr: addr(TRUNK),
            user: "0612345678".into(),
        }
    }

    /// A caller at `at`.
    pub fn at(rig: &mut Rig, at: &str, name: &str) -> Caller {
        rig.name(addr(at), name);
        Caller {
            addr: addr(at),
            user: "0699999999".into(),
        }
    }

    fn via(&self, rig: &mut Rig) -> String {
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK-{}-{};rport",
            self.addr,
            self.addr.ip(),
            rig.unique()
        )
    }

    /// Sends an INVITE with an SDP offer to `dialled`, with `extra` headers.
    pub fn invite(&self, rig: &mut Rig, dialled: &str, extra: &[(&str, &str)]) -> Placed {
        let placed = self.prepare_invite(rig, dialled, extra);
        rig.send(self.addr, placed.invite.to_bytes());
        placed
    }

    /// Builds the INVITE `invite` would send, without sending it.
    pub fn prepare_invite(&self, rig: &mut Rig, dialled: &str, extra: &[(&str, &str)]) -> Placed {
        let n = rig.unique();
        let rtp_port = 40000 + 2 * (n % 1000) as u16;
        let ip = self.addr.ip().to_string();
        let mut headers = vec![
            ("Via", self.via(rig)),
            ("Max-Forwards", "70".to_owned()),
            (
                "From",
                format!("\"Mario Rossi\" <sip:{}@{ip}>;tag=from-{n}", self.user),
            ),
            ("To", format!("<sip:{dialled}@{SWITCH_IP}>")),
            ("Call-ID", format!("call-{n}@{ip}")),
            ("CSeq", "1 INVITE".to_owned()),
            ("Contact", format!("<sip:{}@{}>", self.user, self.addr)),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS".to_owned()),
        ];
        for (k, v) in extra {
            headers.push((*k, (*v).to_owned()));
        }
        let bytes = message(
            &format!("INVITE sip:{dialled}@{SWITCH_IP}:{SWITCH_PORT} SIP/2.0"),
            &headers,
            &sdp(&ip, rtp_port, "sendrecv"),
        );
        let invite = parse_request(&bytes);
        Placed {
            invite,
            to_tag: None,
            remote_target: None,
            cseq: 1,
            rtp_port,
        }
    }

    /// Learns the dialog from a 2xx and ACKs it (a new transaction, RFC 3261 §13.2.2.4).
    pub fn ack(&self, rig: &mut Rig, call: &mut Placed, ok: &Response) {
        call.to_tag = to_tag(&ok.headers);
        call.remote_target = contact_uri(&ok.headers);
        let seq = ok.cseq().map_or(1, |c| c.seq);
        let req = self.in_dialog(rig, call, Method::Ack, seq, &[], "");
        rig.send(self.addr, req.to_bytes());
    }

    /// ACKs a 3xx-6xx to the INVITE (same branch, RFC 3261 §17.1.1.3).
    pub fn ack_failure(&self, rig: &mut Rig, call: &Placed, resp: &Response) {
        let ack = sip_core::build_ack_for_non_2xx(&call.invite, resp);
        rig.send(self.addr, ack.to_bytes());
    }

    /// CANCELs the INVITE.
    pub fn cancel(&self, rig: &mut Rig, call: &Placed) {
        let cancel = sip_core::build_cancel(&call.invite);
        rig.send(self.addr, cancel.to_bytes());
    }

    /// Builds a request in the call's dialog (not sent).
    pub fn in_dialog(
        &self,
        rig: &mut Rig,
        call: &Placed,
        method: Method,
        seq: u32,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Request {
        let target = call
            .remote_target
            .clone()
            .unwrap_or_else(|| call.invite.uri_raw.clone());
        let to = call
            .invite
            .headers
            .get(&HeaderName::To)
            .unwrap_or_default()
            .to_owned();
        let to = match &call.to_tag {
            Some(t) => format!("{to};tag={t}"),
            None => to,
        };
        let mut headers = vec![
            ("Via", self.via(rig)),
            ("Max-Forwards", "70".to_owned()),
            (
                "From",
                call.invite
                    .headers
                    .get(&HeaderName::From)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            ("To", to),
            (
                "Call-ID",
                call.invite.call_id().unwrap_or_default().to_owned(),
            ),
            ("CSeq", format!("{seq} {method}")),
        ];
        if method == Method::Invite {
            headers.push(("Contact", format!("<sip:{}@{}>", self.user, self.addr)));
        }
        for (k, v) in extra {
            headers.push((*k, (*v).to_owned()));
        }
        parse_request(&message(
            &format!("{method} {target} SIP/2.0"),
            &headers,
            body,
        ))
    }

    /// Sends BYE in the dialog; returns it.
    pub fn bye(&self, rig: &mut Rig, call: &mut Placed) -> Request {
        call.cseq += 1;
        let req = self.in_dialog(rig, call, Method::Bye, call.cseq, &[], "");
        rig.send(self.addr, req.to_bytes());
        req
    }

    /// Sends a re-INVITE with an offer in `direction` and `extra` headers; returns it.
    pub fn reinvite(
        &self,
        rig: &mut Rig,
        call: &mut Placed,
        direction: &str,
        extra: &[(&str, &str)],
    ) -> Request {
        call.cseq += 1;
        let body = sdp(&self.addr.ip().to_string(), call.rtp_port, direction)
            .replace("o=peer 1000 1", &format!("o=peer 1000 {}", call.cseq));
        let req = self.in_dialog(rig, call, Method::Invite, call.cseq, extra, &body);
        rig.send(self.addr, req.to_bytes());
        req
    }

    /// ACKs the 2xx of a re-INVITE.
    pub fn ack_reinvite(&self, rig: &mut Rig, call: &Placed) {
        let req = self.in_dialog(rig, call, Method::Ack, call.cseq, &[], "");
        rig.send(self.addr, req.to_bytes());
    }

    /// Answers the switch's re-INVITE or UPDATE with 200: Contact, and an SDP answer if the
    /// request carried an offer.
    pub fn answer_refresh(&self, rig: &mut Rig, call: &Placed, req: &Request) {
        let mut resp = req.make_response(200, "OK", None);
        resp.headers.push(
            HeaderName::Contact,
            format!("<sip:{}@{}>", self.user, self.addr),
        );
        if let Some(se) = req.headers.get(&HeaderName::SessionExpires) {
            resp.headers.push(HeaderName::SessionExpires, se.to_owned());
            resp.headers.push(HeaderName::Require, "timer");
        }
        if !req.body.is_empty() {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = sdp(&self.addr.ip().to_string(), call.rtp_port, "sendrecv").into_bytes();
        }
        rig.send(self.addr, resp.to_bytes());
    }

    /// Answers a request the switch sent (BYE, re-INVITE ...).
    pub fn respond(&self, rig: &mut Rig, req: &Request, status: u16) {
        let resp = req.make_response(status, reason(status), None);
        rig.send(self.addr, resp.to_bytes());
    }
}

/// A desk phone registered to an extension. Plays UAS for the switch's INVITEs.
pub struct Phone {
    /// Where it sends from and listens.
    pub addr: SocketAddr,
    /// Extension number.
    pub ext: String,
    /// Digest password.
    pub password: String,
    reg_call_id: String,
    reg_cseq: u32,
    /// The host:port put in Contact (a NATed phone names its private address); `addr` if `None`.
    pub contact: Option<String>,
    /// `UDP` or `TCP` in Via and Contact.
    pub transport: &'static str,
}

/// A phone's side of an INVITE from the switch.
#[derive(Clone, Debug)]
pub struct Leg {
    /// The INVITE as received.
    pub invite: Request,
    /// Our To tag.
    pub tag: String,
    /// Last CSeq we used in the dialog.
    pub cseq: u32,
    /// Our RTP port.
    pub rtp_port: u16,
}

impl Phone {
    /// Phone for extension `ext` (password `pw<ext>`, as in the example) at `at`.
    pub fn new(rig: &mut Rig, ext: &str, at: &str, name: &str) -> Phone {
        rig.name(addr(at), name);
        Phone {
            addr: addr(at),
            ext: ext.to_owned(),
            password: format!("pw{ext}"),
            reg_call_id: format!("reg-{ext}-{}", addr(at).port()),
            reg_cseq: 0,
            contact: None,
            transport: "UDP",
        }
    }

    fn register_bytes(
        &mut self,
        rig: &mut Rig,
        expires: u32,
        authorization: Option<String>,
    ) -> Vec<u8> {
        self.reg_cseq += 1;
        let ext = &self.ext;
        let mut headers = vec![
            (
                "Via",
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK-reg-{};rport",
                    self.transport,
                    self.addr,
                    rig.unique()
                ),
            ),
            ("Max-Forwards", "70".to_owned()),
            (
                "From",
                format!(
                    "<sip:{ext}@centralino.example>;tag=reg-{}",
                    self.addr.port()
                ),
            ),
            ("To", format!("<sip:{ext}@centralino.example>")),
            ("Call-ID", self.reg_call_id.clone()),
            ("CSeq", format!("{} REGISTER", self.reg_cseq)),
            ("Contact", self.contact_value()),
            ("Expires", expires.to_string()),
            ("User-Agent", "rig-phone".to_owned()),
        ];
        if let Some(a) = authorization {
            headers.push(("Authorization", a));
        }
        message("REGISTER sip:centralino.example SIP/2.0", &headers, "")
    }

    /// This phone's Contact header value.
    pub fn contact_value(&self) -> String {
        let hostport = self
            .contact
            .clone()
            .unwrap_or_else(|| self.addr.to_string());
        let transport = if self.transport == "TCP" {
            ";transport=tcp"
        } else {
            ""
        };
        format!("<sip:{}@{hostport}{transport}>", self.ext)
    }

    /// Sends REGISTER without credentials, answers the 401 with an MD5 digest, and returns
    /// the final response (200, or 423, ...).
    pub fn try_register(&mut self, rig: &mut Rig, expires: u32) -> Response {
        let first = self.register_bytes(rig, expires, None);
        rig.send(self.addr, first);
        let challenge = rig.expect_response(self.addr, 401, Method::Register);
        let auth = self.authorization(
            &challenge,
            &HeaderName::WwwAuthenticate,
            "REGISTER",
            "sip:centralino.example",
        );
        let second = self.register_bytes(rig, expires, Some(auth));
        rig.send(self.addr, second);
        rig.expect_final(self.addr, Method::Register)
    }

    /// Registers for `expires` seconds; panics unless the switch answers 200.
    pub fn register(&mut self, rig: &mut Rig, expires: u32) -> Response {
        let r = self.try_register(rig, expires);
        assert_eq!(r.status, 200, "REGISTER of {} refused", self.ext);
        r
    }

    /// An `Authorization` value answering the MD5 challenge in `resp`.
    pub fn authorization(
        &self,
        resp: &Response,
        header: &HeaderName,
        method: &str,
        uri: &str,
    ) -> String {
        let challenge = resp
            .headers
            .get_all(header)
            .find(|c| c.contains("algorithm=MD5"))
            .unwrap_or_else(|| panic!("no MD5 challenge in {header:?}"));
        let p = |name: &str| digest_param(challenge, name);
        let realm = p("realm").expect("realm");
        let nonce = p("nonce").expect("nonce");
        let ha1 = registrar::ha1_md5(&self.ext, &realm, &self.password);
        let cnonce = "0a4f113b";
        let response = registrar::compute_response(
            registrar::Algorithm::Md5,
            &ha1,
            &nonce,
            method,
            uri,
            Some(registrar::QopAuth {
                nc: "00000001",
                cnonce,
            }),
        );
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"",
            self.ext
        );
        if let Some(o) = p("opaque") {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }

    /// Takes the switch's next INVITE to this phone and makes a leg for it.
    pub fn expect_invite(&self, rig: &mut Rig) -> Leg {
        let invite = rig.expect_request(self.addr, Method::Invite);
        let n = rig.unique();
        Leg {
            invite,
            tag: format!("ph-{n}"),
            cseq: 0,
            rtp_port: 30000 + 2 * (n % 1000) as u16,
        }
    }

    /// Answers the leg's INVITE with `status` (with SDP on 2xx).
    pub fn answer(&self, rig: &mut Rig, leg: &Leg, status: u16) {
        let bytes = self.answer_bytes(leg, status);
        rig.send(self.addr, bytes);
    }

    /// The bytes of [`Phone::answer`].
    pub fn answer_bytes(&self, leg: &Leg, status: u16) -> Vec<u8> {
        let mut resp = leg
            .invite
            .make_response(status, reason(status), Some(&leg.tag));
        if status < 300 && status > 100 {
            resp.headers.push(HeaderName::Contact, self.contact_value());
        }
        if (200..300).contains(&status) {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = sdp(&self.addr.ip().to_string(), leg.rtp_port, "sendrecv").into_bytes();
        }
        resp.to_bytes()
    }

    /// Answers the leg's INVITE with `status` and an SDP answer (early media on 183).
    pub fn answer_with_sdp(&self, rig: &mut Rig, leg: &Leg, status: u16) {
        let mut resp = leg
            .invite
            .make_response(status, reason(status), Some(&leg.tag));
        resp.headers.push(
            HeaderName::Contact,
            format!("<sip:{}@{}>", self.ext, self.addr),
        );
        resp.headers
            .push(HeaderName::ContentType, "application/sdp");
        resp.body = sdp(&self.addr.ip().to_string(), leg.rtp_port, "sendrecv").into_bytes();
        rig.send(self.addr, resp.to_bytes());
    }

    /// Answers a request the switch sent (BYE, CANCEL ...).
    pub fn respond(&self, rig: &mut Rig, req: &Request, status: u16) {
        let resp = req.make_response(status, reason(status), None);
        rig.send(self.addr, resp.to_bytes());
    }

    /// Hangs up the leg (BYE to the switch's Contact).
    pub fn bye(&self, rig: &mut Rig, leg: &mut Leg) -> Request {
        leg.cseq += 1;
        let inv = &leg.invite;
        let target = contact_uri(&inv.headers).expect("the switch's INVITE has a Contact");
        let from = format!(
            "{};tag={}",
            inv.headers.get(&HeaderName::To).unwrap_or_default(),
            leg.tag
        );
        let headers = vec![
            (
                "Via",
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK-ph-{};rport",
                    self.transport,
                    self.addr,
                    rig.unique()
                ),
            ),
            ("Max-Forwards", "70".to_owned()),
            ("From", from),
            (
                "To",
                inv.headers
                    .get(&HeaderName::From)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            ("Call-ID", inv.call_id().unwrap_or_default().to_owned()),
            ("CSeq", format!("{} BYE", leg.cseq)),
        ];
        let bytes = message(&format!("BYE {target} SIP/2.0"), &headers, "");
        let req = parse_request(&bytes);
        rig.send(self.addr, bytes);
        req
    }
}

/// A quoted or token parameter of a digest challenge.
pub fn digest_param(challenge: &str, name: &str) -> Option<String> {
    let rest = challenge.trim().strip_prefix("Digest")?;
    for part in rest.split(',') {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            return Some(v.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// Parses bytes the rig wrote itself.
pub fn parse_request(bytes: &[u8]) -> Request {
    match sip_msg::parse(bytes, Framing::Datagram) {
        Ok(Message::Request(r)) => r,
        other => panic!(
            "rig wrote a bad request: {other:?}\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// Reason phrase for a status the peers send.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        603 => "Decline",
        _ => "Whatever",
    }
}
