//! baresip (Debian's `baresip-core` 1.0) as a caller from the trunk: it places a call from
//! 127.0.0.2 without registering, and after the answer presses DTMF keys, sent in band by
//! RFC 4733 (`telephone-event`, payload type 101 in baresip's offer).
//!
//! # How it is driven
//!
//! Through the `ctrl_tcp` module: a TCP socket on 127.0.0.1 carrying netstrings
//! (`<len>:<json>,`). We send commands `{"command":"dial","params":"<uri>","token":..}`,
//! `sndcode` (the digits; baresip sends each key and its release, i.e. an RFC 4733 event with
//! the end bit) and `hangup`, and read baresip's events back (`CALL_RINGING`,
//! `CALL_ESTABLISHED`, `CALL_CLOSED`, ...). This is chosen over `-e` commands (run at start-up,
//! before any call is answered, so DTMF cannot be timed to the answer) and over stdin (key
//! presses to the `menu`/`stdio` console, which depend on the console's mode and give no
//! feedback): with events the test waits for the answer instead of sleeping, and sees why a
//! call closed.
//!
//! # Configuration
//!
//! An own directory (`config`, `accounts`, `tone.wav`, `heard.wav`, `baresip.log`):
//! - `sip_listen 127.0.0.2:<sip>` and `-n 127.0.0.2` so that the SIP source, Via, Contact and
//!   the SDP `c=` line are the trunk's address 127.0.0.2. Caveat: baresip binds its RTP socket
//!   to the wildcard address, so RTP towards 127.0.0.1 leaves from 127.0.0.1:<its rtp port>
//!   (the kernel's choice), not from 127.0.0.2;
//! - `rtp_ports <sip+2>-<sip+11>`;
//! - modules `g711` (PCMU 0 and PCMA 8 offered, in that order), `aufile` (source: a 1 kHz tone
//!   WAV; player: a WAV file, so no sound card is needed), `account`, `menu` (it provides the
//!   `dial`/`sndcode`/`hangup` commands) and `ctrl_tcp` (`ctrl_tcp_listen 127.0.0.1:<sip+1>`);
//! - one account `<sip:trunk@127.0.0.2;transport=udp>;regint=0`: no REGISTER, no auth.
//!
//! baresip also quits by itself after `lifetime` (`-t`), and is killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running baresip caller; killed when dropped.
pub struct BaresipCaller {
    child: Child,
    ctrl: TcpStream,
    /// Everything received on the control socket, one JSON message per entry.
    messages: Vec<String>,
    /// Index in `messages` up to which [`BaresipCaller::wait_event`] has looked.
    seen: usize,
    pending: Vec<u8>,
    token: u32,
    pub dir: PathBuf,
    pub log_path: PathBuf,
    /// SIP port on 127.0.0.2.
    pub sip_port: u16,
}

/// A 16-bit mono 8 kHz WAV with a 1 kHz tone (baresip's audio source).
pub fn tone_wav(seconds: u32) -> Vec<u8> {
    let pcm: Vec<i16> = (0..8000 * seconds)
        .map(|i| {
            ((f64::from(i) * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0).sin() * 8000.0) as i16
        })
        .collect();
    media::wav_bytes(&pcm)
}

impl BaresipCaller {
    /// Starts baresip in `dir` (created) with SIP on 127.0.0.2:`ports`, its control socket on
    /// 127.0.0.1:`ports+1` and RTP in `ports+2..=ports+11`; it quits by itself after
    /// `lifetime`. Waits (5 s at most) until the control socket accepts.
    pub fn start(dir: &Path, ports: u16, lifetime: Duration) -> BaresipCaller {
        std::fs::create_dir_all(dir).expect("baresip dir");
        let tone = dir.join("tone.wav");
        std::fs::write(&tone, tone_wav(lifetime.as_secs().max(1) as u32 + 2)).expect("tone");
        let ctrl_port = ports + 1;
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method epoll\n\
                 sip_listen 127.0.0.2:{ports}\n\
                 rtp_ports {}-{}\n\
                 audio_player aufile,{}\n\
                 audio_source aufile,{}\n\
                 audio_alert aufile,/dev/null\n\
                 ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
                 module_path /usr/lib/baresip/modules\n\
                 module g711.so\n\
                 module aufile.so\n\
                 module_app account.so\n\
                 module_app menu.so\n\
                 module_app ctrl_tcp.so\n",
                ports + 2,
                ports + 11,
                dir.join("heard.wav").display(),
                tone.display(),
            ),
        )
        .expect("baresip config");
        std::fs::write(
            dir.join("accounts"),
            "<sip:trunk@127.0.0.2;transport=udp>;regint=0\n",
        )
        .expect("baresip accounts");
        let log_path = dir.join("baresip.log");
        let log = std::fs::File::create(&log_path).expect("baresip log");
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .args(["-n", "127.0.0.2", "-t"])
            .arg(lifetime.as_secs().max(1).to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("baresip is installed (Debian package baresip); scripts/test installs it");
        let deadline = Instant::now() + Duration::from_secs(5);
        let ctrl = loop {
            match TcpStream::connect_timeout(
                &([127, 0, 0, 1], ctrl_port).into(),
                Duration::from_millis(200),
            ) {
                Ok(s) => break s,
                Err(e) => {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "baresip's ctrl_tcp did not listen on {ctrl_port}: {e}\n{}",
                            std::fs::read_to_string(&log_path).unwrap_or_default()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        ctrl.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        BaresipCaller {
            child,
            ctrl,
            messages: Vec::new(),
            seen: 0,
            pending: Vec::new(),
            token: 0,
            dir: dir.to_path_buf(),
            log_path,
            sip_port: ports,
        }
    }

    /// baresip's console output so far (with `Call established`, `send DTMF digit`, ...).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// All control messages (events and command responses) received so far, as JSON text.
    pub fn messages(&mut self) -> &[String] {
        self.pump(Duration::ZERO);
        &self.messages
    }

    /// Sends one command (`dial`, `sndcode`, `hangup`, ...) with `params`.
    pub fn command(&mut self, command: &str, params: &str) {
        self.token += 1;
        let json = format!(
            "{{\"command\":\"{}\",\"params\":\"{}\",\"token\":\"t{}\"}}",
            escape(command),
            escape(params),
            self.token
        );
        let frame = format!("{}:{json},", json.len());
        self.ctrl
            .write_all(frame.as_bytes())
            .expect("write to baresip's ctrl_tcp");
    }

    /// Dials `uri` (e.g. `sip:800840840@127.0.0.1:5060`) from the account, no registration.
    pub fn dial(&mut self, uri: &str) {
        self.command("dial", uri);
    }

    /// Sends `digits` on the current call as RFC 4733 events (each with its end packets).
    pub fn send_dtmf(&mut self, digits: &str) {
        self.command("sndcode", digits);
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) {
        self.command("hangup", "");
    }

    /// Waits for the next event of `kind` (e.g. `CALL_ESTABLISHED`, `CALL_CLOSED`) not yet
    /// returned, and returns its JSON. A `CALL_CLOSED` while waiting for something else ends the
    /// wait with an error (the call failed); so does the timeout. The error carries the events
    /// and baresip's log.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let wanted = format!("\"type\":\"{kind}\"");
        loop {
            while self.seen < self.messages.len() {
                let m = self.messages[self.seen].clone();
                self.seen += 1;
                if !m.contains("\"event\":true") {
                    continue;
                }
                if m.contains(&wanted) {
                    return Ok(m);
                }
                if m.contains("\"type\":\"CALL_CLOSED\"") {
                    return Err(self.failure(&format!("call closed while waiting for {kind}")));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(&format!("no {kind} within {timeout:?}")));
            }
            self.pump(deadline - now);
        }
    }

    /// Dials `uri`, waits (`answer_within`) for the answer, waits `before_dtmf`, sends
    /// `digits`, keeps the call for `hold`, hangs up and waits for the call to close.
    pub fn call_and_press(
        &mut self,
        uri: &str,
        answer_within: Duration,
        before_dtmf: Duration,
        digits: &str,
        hold: Duration,
    ) -> Result<(), String> {
        self.dial(uri);
        self.wait_event("CALL_ESTABLISHED", answer_within)?;
        self.sleep_pumping(before_dtmf);
        self.send_dtmf(digits);
        self.sleep_pumping(hold);
        self.hangup();
        self.wait_event("CALL_CLOSED", Duration::from_secs(5))
            .map(|_| ())
    }

    /// Sleeps `d` while reading control messages. An early `CALL_CLOSED` is left for
    /// [`BaresipCaller::wait_event`] to see.
    pub fn sleep_pumping(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.pump(deadline.saturating_duration_since(Instant::now()));
        }
    }

    fn failure(&mut self, what: &str) -> String {
        format!(
            "baresip caller: {what}\n--- control messages ---\n{}\n--- baresip log ---\n{}",
            self.messages.join("\n"),
            self.log()
        )
    }

    /// Reads from the control socket until something arrives or `max` has passed (at least
    /// one read of up to 100 ms).
    fn pump(&mut self, max: Duration) {
        let deadline = Instant::now() + max;
        let mut buf = [0u8; 4096];
        loop {
            match self.ctrl.read(&mut buf) {
                Ok(0) => return, // baresip has gone
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.split_netstrings();
                    return;
                }
                Err(_) if Instant::now() >= deadline => return,
                Err(_) => {}
            }
        }
    }

    fn split_netstrings(&mut self) {
        loop {
            let Some(colon) = self.pending.iter().position(|&b| b == b':') else {
                return;
            };
            let Some(len) = std::str::from_utf8(&self.pending[..colon])
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
            else {
                // Not a netstring: drop it rather than stall.
                self.pending.clear();
                return;
            };
            if self.pending.len() < colon + 1 + len + 1 {
                return;
            }
            let body =
                String::from_utf8_lossy(&self.pending[colon + 1..colon + 1 + len]).into_owned();
            self.pending.drain(..colon + 1 + len + 1);
            self.messages.push(body);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Drop for BaresipCaller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
