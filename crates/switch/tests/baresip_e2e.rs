//! baresip (Debian) as a real desk phone: it registers to the switch with digest and answers a
//! call from the trunk (SIPp bound to 127.0.0.2), with audio flowing from its file source.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::baresip_caller::tone_wav;
use common::{Switch, args, port_block, sipp};

const SALT: u16 = 1;

/// A guard that kills baresip when the test ends.
struct Baresip(std::process::Child);

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn baresip_registers_as_a_desk_phone_and_answers_a_trunk_call() {
    let base = port_block(SALT);
    let sw = Switch::start("baresip", base, base + 10_000, &[]);
    let dir = sw.data_dir.join("baresip");
    std::fs::create_dir_all(&dir).expect("baresip dir");
    std::fs::write(dir.join("tone.wav"), tone_wav(10)).expect("tone");
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\naudio_player aufile,{}\naudio_source aufile,{}\naudio_alert aufile,/dev/null\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n",
            base + 2,
            dir.join("heard.wav").display(),
            dir.join("tone.wav").display(),
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:205@{};transport=udp>;auth_pass=pw205;answermode=auto;regint=60\n",
            sw.sip
        ),
    )
    .expect("accounts");
    let log_path = dir.join("baresip.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let _phone = Baresip(
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-n", "127.0.0.1", "-t", "30"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("baresip is installed (Debian package baresip); scripts/test installs it"),
    );
    let baresip_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let deadline = Instant::now() + Duration::from_secs(10);
    while sw.metric("centralino_registrations_active") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "baresip did not register:\n{}\n--- switch ---\n{}",
            baresip_log(),
            sw.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let call = sipp(
        &args(&[
            "-sn",
            "uac",
            "-d",
            "1500",
            "-s",
            "205",
            "-i",
            "127.0.0.2",
            "-p",
            &(base + 3).to_string(),
            "-mp",
            &(base + 20).to_string(),
            "-m",
            "1",
            "-timeout",
            "15",
            &sw.sip.to_string(),
        ]),
        Duration::from_secs(20),
    );
    assert!(
        call.success,
        "trunk call to baresip failed:\n{}\n--- baresip ---\n{}\n--- switch ---\n{}",
        call.output,
        baresip_log(),
        sw.log()
    );
    let log = baresip_log();
    assert!(
        log.contains("Call established"),
        "baresip never established the call:\n{log}"
    );
    assert!(
        log.contains("terminated"),
        "baresip never saw the hang-up:\n{log}"
    );
}
