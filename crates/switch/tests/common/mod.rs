//! Shared rig for the end-to-end tests: runs the real `centralino` binary on loopback with a
//! configuration derived from `dialplans/example.toml`, and real SIP peers against it.
#![allow(dead_code)] // each test binary uses a different part of the rig

pub mod baresip_caller;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The example dialplan shipped in the repository.
pub fn example_config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dialplans/example.toml"
    ))
    .expect("dialplans/example.toml is readable")
}

/// Directory of SIPp scenarios.
pub fn scenarios() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sipp"))
}

/// Third-party test data (`CENTRALINO_SHARED`, default `../shared` beside the repository).
pub fn shared() -> PathBuf {
    std::env::var_os("CENTRALINO_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// A block of 40 ports no other test in this process uses: `base..base+40`.
/// `salt` separates test binaries that run at the same time.
pub fn port_block(salt: u16) -> u16 {
    let n = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
    20_000 + salt * 2_000 + n * 40
}

/// A running switch, killed when dropped.
pub struct Switch {
    pub child: Child,
    pub sip: SocketAddr,
    pub metrics: SocketAddr,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

/// Rewrites `[switch]` settings of the example: `key = value` lines (value as TOML).
pub fn with_switch_settings(config: &str, settings: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut in_switch = false;
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_switch = trimmed == "[switch]";
            out.push_str(line);
            out.push('\n');
            if in_switch {
                for (k, v) in settings {
                    out.push_str(&format!("{k} = {v}\n"));
                }
            }
            continue;
        }
        if in_switch
            && settings.iter().any(|(k, _)| {
                trimmed.starts_with(&format!("{k} =")) || trimmed.starts_with(&format!("{k}="))
            })
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Switch {
    /// Starts the switch on `127.0.0.1:base`, metrics on `base+1`, RTP on `rtp..rtp+99`.
    pub fn start(name: &str, base: u16, rtp: u16, extra: &[(&str, String)]) -> Switch {
        let dir = std::env::temp_dir().join(format!(
            "centralino-test-{name}-{}-{base}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self::start_in(dir, base, rtp, extra)
    }

    /// Starts (or restarts) the switch with its files in `dir`.
    pub fn start_in(dir: PathBuf, base: u16, rtp: u16, extra: &[(&str, String)]) -> Switch {
        Self::launch(dir, "127.0.0.1", base, rtp, extra, &example_config())
    }

    /// Starts the switch on `host` (e.g. `[::1]`) with the configuration file `config_name`
    /// from `dir` (default: the example), its ports rewritten as in [`Switch::start`].
    pub fn start_listen(
        dir: PathBuf,
        host: &str,
        base: u16,
        rtp: u16,
        config_name: Option<&str>,
    ) -> Switch {
        let source = match config_name {
            Some(name) => std::fs::read_to_string(dir.join(name)).expect("test config"),
            None => example_config(),
        };
        Self::launch(dir, host, base, rtp, &[], &source)
    }

    fn launch(
        dir: PathBuf,
        host: &str,
        base: u16,
        rtp: u16,
        extra: &[(&str, String)],
        source: &str,
    ) -> Switch {
        let sip: SocketAddr = format!("{host}:{base}").parse().expect("address");
        let metrics: SocketAddr = format!("127.0.0.1:{}", base + 1).parse().expect("address");
        let mut settings = vec![
            ("metrics", format!("\"{metrics}\"")),
            ("rtp_ports", format!("\"{rtp}-{}\"", rtp + 99)),
            // The config is written elsewhere: name the repository's prompt set.
            (
                "prompts",
                format!("\"{}/../../prompts/it\"", env!("CARGO_MANIFEST_DIR")),
            ),
        ];
        // A test's own setting replaces the default one of the same key.
        settings.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        // `--start-time` is a flag, not a setting.
        let start_time = extra
            .iter()
            .find(|(k, _)| *k == "--start-time")
            .map(|(_, v)| v.clone());
        settings.extend(extra.iter().filter(|(k, _)| *k != "--start-time").cloned());
        let config = with_switch_settings(source, &settings);
        let config_path = dir.join("centralino.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.join("switch.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_centralino"))
            .args(["run", "--config"])
            .arg(&config_path)
            .args(["--listen", &sip.to_string(), "--data-dir"])
            .arg(dir.join("data"))
            .args(
                start_time
                    .iter()
                    .flat_map(|t| ["--start-time".to_owned(), t.clone()]),
            )
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn centralino");
        let switch = Switch {
            child,
            sip,
            metrics,
            data_dir: dir,
            config_path,
            log_path,
        };
        switch.wait_ready();
        switch
    }

    /// Sends OPTIONS until the switch answers 200 (10 s at most).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if options_ping(self.sip, Duration::from_millis(200)) {
                return;
            }
        }
        panic!(
            "switch did not answer OPTIONS within 10 s; log:\n{}",
            self.log()
        );
    }

    /// The switch's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("switch did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads the Prometheus text from the metrics port.
    pub fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.metrics, Duration::from_secs(2))
        else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Waits (3 s at most; metrics refresh every second) until a metric has `value`.
    pub fn wait_metric(&self, name: &str, value: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let v = self.metric(name);
            if v == Some(value) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One metric's value.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One OPTIONS over UDP; true if a 200 came back in time.
pub fn options_ping(to: SocketAddr, timeout: Duration) -> bool {
    let local = if to.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let Ok(sock) = UdpSocket::bind(local) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(timeout));
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    let host = if to.is_ipv6() { "[::1]" } else { "127.0.0.1" };
    let branch = format!(
        "z9hG4bKping{}{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let msg = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{port};branch={branch}\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\nTo: <sip:ping@{to}>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    if sock.send_to(msg.as_bytes(), to).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 200") && text.contains(&branch) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// Output of a finished SIPp run.
pub struct SippRun {
    pub success: bool,
    pub code: Option<i32>,
    pub output: String,
}

/// Runs SIPp with `args` (bounded by `-timeout` and our own kill after `limit`).
pub fn sipp(args: &[String], limit: Duration) -> SippRun {
    let dir = std::env::temp_dir().join(format!("centralino-sipp-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut child = Command::new("sipp")
        .args(args)
        .args(["-nostdin", "-trace_err", "-timeout_error"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp is installed (Debian package sip-tester); scripts/test installs it");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child
        .wait_with_output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    let mut errors = String::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with("_errors.log") {
                errors.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let code = status.and_then(|s| s.code());
    let successful = out
        .lines()
        .find(|l| l.contains("Successful call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let failed = out
        .lines()
        .find(|l| l.contains("Failed call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    SippRun {
        success: code == Some(0) || (successful > 0 && failed == 0),
        code,
        output: format!("{out}\n--- errors ---\n{errors}"),
    }
}

/// `sipp` arguments as owned strings.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Path of a SIPp scenario in `tests/sipp/`.
pub fn scenario(name: &str) -> String {
    scenarios().join(name).display().to_string()
}

/// Registers `ext` with `password` (SIPp, digest) from 127.0.0.1:`port`; the Contact names
/// `contact_port`, where a second SIPp can play the phone's UAS.
pub fn register(sw: &Switch, ext: &str, password: &str, port: u16, contact_port: u16) -> SippRun {
    register_via(sw, ext, password, port, contact_port, "127.0.0.1", &[])
}

/// [`register`] from `ip` (e.g. `::1`), with more SIPp arguments (e.g. `-t t1` for TCP).
pub fn register_via(
    sw: &Switch,
    ext: &str,
    password: &str,
    port: u16,
    contact_port: u16,
    ip: &str,
    extra: &[&str],
) -> SippRun {
    let (port, contact_port) = (port.to_string(), contact_port.to_string());
    let mut a = args(&[
        "-sf",
        &scenario("register.xml"),
        "-s",
        ext,
        "-au",
        ext,
        "-ap",
        password,
        "-key",
        "contact_port",
        &contact_port,
        "-key",
        "expires",
        "300",
        "-m",
        "1",
        "-p",
        &port,
        "-i",
        ip,
        "-timeout",
        "10",
    ]);
    a.extend(args(extra));
    a.push(sw.sip.to_string());
    sipp(&a, Duration::from_secs(15))
}
