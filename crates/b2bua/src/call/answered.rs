//! Calls the switch answers itself (issue 5): the IVR's menus, played messages, voicemail,
//! and the transfer of an answered caller to a hunt group.
//!
//! The caller gets our 200 with an SDP answer limited to G.711 (+ telephone-event), so every
//! prompt, already encoded in both G.711 laws and G.722 at load, is sent as is. [`ivr::Ivr`] decides; this
//! module turns its actions into outputs ([`Output::Play`], [`Output::Record`] …) and feeds
//! it the caller's keys (RFC 4733 and in-band from the media side, SIP INFO from `call.rs`)
//! and the ends of playbacks. A transfer rings the target's phones with an offer limited to
//! the codec agreed with the caller (so the relay never transcodes) while the caller hears a
//! ringback tone; the first phone to answer is bridged, and when nobody answers the group's
//! `no_answer` target takes the call.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use router::Target;
use sdp::{Codec, CodecPolicy, MediaAddress, SessionDescription};
use tracing::{debug, info, warn};

use super::{Call, CallState, ForkState, RING_TIMEOUT, RingPlan, set_ring_deadline};
use crate::config::Config;
use crate::switchboard::{CallKey, LegSide, Now, Output, Switchboard, unix};

/// Most targets one call may be handed to (IVR transfers, no-answer hops): a guard against
/// plans whose fall-backs loop.
const MAX_HOPS: u32 = 16;
/// How long past a box's `max_message` a recording may run before the switch stops it
/// itself (the media side ends it on time whenever audio arrives).
const RECORD_SLACK: Duration = Duration::from_secs(3);
/// How long past its length a playback may go unreported before the switch goes on without
/// its end (a lost report must not leave the caller waiting).
const PLAY_SLACK: Duration = Duration::from_secs(5);

/// What happens when the current playback ends.
#[derive(Debug)]
enum AfterPlay {
    /// Tell the IVR.
    Ivr,
    /// Hang up.
    Hangup,
    /// Start recording a voicemail message.
    Record { mailbox: String, max: Duration },
}

/// A playback the switch waits for: its id, what follows it, and when it must have ended
/// (its length and a margin) even if its end is never reported.
#[derive(Debug)]
struct Playback {
    id: u32,
    after: AfterPlay,
    deadline: Instant,
}

/// The switch-answered part of a call.
#[derive(Debug)]
pub(crate) struct Answered {
    ivr: Option<ivr::Ivr>,
    /// The audio codec agreed with the caller.
    codec: Codec,
    telephone_event: Option<u8>,
    next_play: u32,
    /// The playback in progress that the switch waits for (none during a looped tone).
    playback: Option<Playback>,
    recording: bool,
    /// When a recording must have ended even if the caller sends no audio at all (the
    /// recorder counts received samples).
    record_deadline: Option<Instant>,
    /// Phones ring for this call now (after a transfer).
    ringing: bool,
    /// When the member (or group) ringing now has rung long enough.
    pub(super) ring_deadline: Option<Instant>,
    hops: u32,
    /// The IVR's steps (menu entered, digit, choice, timeout …), kept for the call's ticket.
    pub(super) events: Vec<ivr::IvrEvent>,
}

/// Most IVR events kept per call (a caller pressing keys for ever cannot grow it).
const MAX_EVENTS: usize = 256;

impl Answered {
    /// Records the telephone-event payload type agreed by a new offer/answer; true if it
    /// changed (the media side must then listen for the new one).
    pub(super) fn set_telephone_event(&mut self, pt: Option<u8>) -> bool {
        let changed = self.telephone_event != pt;
        self.telephone_event = pt;
        changed
    }

    /// The codecs this caller may use from now on: the one its prompts are encoded in, and
    /// telephone-event if agreed (a re-INVITE must not switch the law under the player).
    pub(super) fn policy(&self) -> CodecPolicy {
        let mut codecs = vec![self.codec];
        if self.telephone_event.is_some() {
            codecs.push(Codec::TelephoneEvent);
        }
        CodecPolicy::new(codecs).unwrap_or_default()
    }

    /// The earliest instant this part of the call needs attention.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let ivr = self.ivr.as_ref().and_then(ivr::Ivr::poll_timeout);
        [
            ivr,
            self.ring_deadline,
            self.record_deadline,
            self.playback.as_ref().map(|p| p.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The Italian ringback tone (425 Hz, 1 s on, 4 s off), played while the phones ring.
fn ringback() -> Arc<media::Prompt> {
    static RINGBACK: OnceLock<Arc<media::Prompt>> = OnceLock::new();
    Arc::clone(RINGBACK.get_or_init(|| {
        let mut pcm = media::prompt::tone(425.0, 1000, -13.0).pcm().to_vec();
        pcm.resize(pcm.len() + 4 * 8000, 0);
        Arc::new(media::Prompt::from_pcm("ringback", pcm))
    }))
}

/// The beep before a voicemail recording, unless the prompt set has its own `beep`.
fn beep(config: &Config) -> Arc<media::Prompt> {
    static BEEP: OnceLock<Arc<media::Prompt>> = OnceLock::new();
    config.prompts.get("beep").cloned().unwrap_or_else(|| {
        Arc::clone(BEEP.get_or_init(|| Arc::new(media::prompt::tone(1000.0, 400, -10.0))))
    })
}

/// The decoded prompts for these names; a name without a prompt is skipped (loading the
/// configuration refuses plans that name missing prompts, so this is only a safety net).
fn resolve(config: &Config, names: &[String]) -> Vec<Arc<media::Prompt>> {
    names
        .iter()
        .filter_map(|n| {
            let p = config.prompts.get(n).cloned();
            if p.is_none() {
                warn!(prompt = %n, "prompt not loaded; skipped");
            }
            p
        })
        .collect()
}

impl Switchboard {
    /// Answers the caller ourselves and starts the IVR at `target`. False if the call ended.
    pub(super) fn answer_with_ivr(&mut self, call: &mut Call, target: Target, now: Now) -> bool {
        // A caller that already heard early media keeps the codec of that answer (RFC 6337
        // §3.1: the 200 repeats it), if prompts can be sent in it.
        let earlier = call
            .a_answer
            .as_deref()
            .and_then(|b| SessionDescription::parse(b).ok())
            .and_then(|sd| sd.media.first().and_then(|m| m.formats.first().cloned()));
        // G.711 when the caller offers it (every desk phone takes it after a transfer), else
        // G.722; the offerer's order decides within each.
        let choices: Vec<Vec<Codec>> = match earlier.as_deref() {
            Some("0") => vec![vec![Codec::Pcmu, Codec::TelephoneEvent]],
            Some("8") => vec![vec![Codec::Pcma, Codec::TelephoneEvent]],
            Some("9") => vec![vec![Codec::G722, Codec::TelephoneEvent]],
            _ => vec![
                vec![Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent],
                vec![Codec::G722, Codec::TelephoneEvent],
            ],
        };
        let local = MediaAddress {
            ip: self.settings.advertised_ip,
            rtp_port: call.a_ports.rtp(),
        };
        let negotiated = choices.into_iter().find_map(|codecs| {
            let policy = CodecPolicy::new(codecs).ok()?;
            sdp::answer(&call.a_offer, &policy, local, &mut call.a_origin).ok()
        });
        let Some((answer, neg)) = negotiated else {
            debug!("no G.711 or G.722 in the caller's offer: the IVR cannot answer");
            self.fail_a(call, 488, now);
            return false;
        };
        let encoding = match neg.codec.codec {
            Codec::Pcmu => media::Encoding::Pcmu,
            Codec::Pcma => media::Encoding::Pcma,
            _ => media::Encoding::G722,
        };
        let body = answer.to_bytes();
        call.a_answer = Some(body.clone());
        // MediaIvr first: the player must exist to learn the caller's address.
        self.out.push_back(Output::MediaIvr {
            call: call.key,
            encoding,
            payload_type: neg.codec.payload_type,
            telephone_event: neg.telephone_event_payload_type,
        });
        self.out.push_back(Output::MediaRemote {
            call: call.key,
            leg: LegSide::A,
            rtp: neg.remote,
            rtcp: neg.remote_rtcp,
        });
        // While the switch serves the caller, silence from it is normal (a trunk with voice
        // activity detection sends nothing while its caller listens): the media timeout waits,
        // as on hold. Every state here is bounded anyway (menu timeouts, ring and recording
        // deadlines, the session timer); bridging a phone turns the timeout back on.
        self.out.push_back(Output::MediaHold {
            call: call.key,
            on_hold: true,
        });
        let ok = self.ok_for_a(call, Some(body));
        self.tx.send_response(call.a_tx, ok, now.instant);
        call.a_final_sent = true;
        call.state = CallState::Answered;
        self.stats.calls_answered += 1;
        self.stats.calls_ivr += 1;
        self.arm_session_timer(call, now);
        info!(entry = %target, ?encoding, telephone_event = ?neg.telephone_event_payload_type, "answered by the switch");
        call.answered = Some(Box::new(Answered {
            ivr: None,
            codec: neg.codec.codec,
            telephone_event: neg.telephone_event_payload_type,
            next_play: 1,
            playback: None,
            recording: false,
            record_deadline: None,
            ringing: false,
            ring_deadline: None,
            hops: 0,
            events: Vec::new(),
        }));
        self.enter_target(call, target, now)
    }

    /// Hands the answered caller to `target`. False if the call ended.
    fn enter_target(&mut self, call: &mut Call, target: Target, now: Now) -> bool {
        let Some(a) = call.answered.as_mut() else {
            return true;
        };
        a.hops += 1;
        if a.hops > MAX_HOPS {
            warn!(%target, "too many hand-overs for one call; hanging up");
            return self.hangup_answered(call, now);
        }
        debug!(%target, "call goes to");
        match target {
            Target::Menu(_) | Target::Message(_) | Target::Hangup(_) => {
                let plan = Arc::clone(&call.config.plan);
                match ivr::Ivr::new(plan, target, ivr::IvrConfig::default(), now.instant) {
                    Ok(machine) => {
                        a.ivr = Some(machine);
                        self.drive_ivr(call, now)
                    }
                    Err(e) => {
                        warn!(error = %e, "the IVR cannot start; hanging up");
                        self.hangup_answered(call, now)
                    }
                }
            }
            Target::Voicemail(name) => {
                let config = Arc::clone(&call.config);
                let (greeting, max) = match config.plan.voicemail_box(&name) {
                    Some(b) => (
                        b.prompt.clone(),
                        Duration::from_secs(u64::from(b.max_message_secs.max(1))),
                    ),
                    None => (None, Duration::from_secs(180)),
                };
                let mut prompts = resolve(&config, greeting.as_slice());
                prompts.push(beep(&config));
                self.play(call, prompts, AfterPlay::Record { mailbox: name, max }, now);
                true
            }
            Target::Group(_) | Target::Extension(_) | Target::Queue(_) => {
                let config = Arc::clone(&call.config);
                let facts = router::CallFacts {
                    dialled: call.dialled.clone(),
                    caller: Some(call.caller_user.clone()),
                    members: self.member_facts(&config, now),
                    ..router::CallFacts::default()
                };
                let decision = router::route_target(
                    &config.plan,
                    &target,
                    &facts,
                    now.wall,
                    &mut self.strategy,
                );
                debug!(target_ = %decision.target, ring = ?decision.ring, reasons = ?decision.reasons, "transfer decision");
                let registered = decision
                    .ring
                    .iter()
                    .any(|e| self.registrar.lookup(e, now.instant).next().is_some());
                if registered {
                    let mut plan = RingPlan::from_decision(&decision);
                    if matches!(decision.target, Target::Extension(_)) {
                        plan.member_timeout = RING_TIMEOUT;
                        plan.group_timeout = RING_TIMEOUT;
                    }
                    return self.ring_answered(call, plan, decision.no_answer.clone(), now);
                }
                match decision.no_answer.clone() {
                    Some(next) if decision.target == target => self.enter_target(call, next, now),
                    _ if decision.target != target => {
                        self.enter_target(call, decision.target.clone(), now)
                    }
                    _ => self.fallback(call, Some(&target), now),
                }
            }
            Target::External(_) => self.fallback(call, Some(&target), now),
        }
    }

    /// A target the switch cannot serve yet (the second site needs outbound trunk calls, a
    /// later issue) or nobody can take (`None`: a group without `no_answer`): the caller is
    /// not dropped but reaches the plan's first voicemail box, if it has one.
    // DEVIATION(issue 5): `external:` targets (overflow to the second site) are not dialled
    // yet; the caller leaves a message instead.
    fn fallback(&mut self, call: &mut Call, target: Option<&Target>, now: Now) -> bool {
        let mailbox = call.config.plan.voicemail_names().next().map(str::to_owned);
        match mailbox {
            Some(m) if !matches!(target, Some(Target::Voicemail(_))) => {
                warn!(target = ?target, mailbox = %m, "target not reachable; the caller goes to voicemail");
                self.enter_target(call, Target::Voicemail(m), now)
            }
            _ => {
                warn!(target = ?target, "target not reachable and no voicemail; hanging up");
                self.hangup_answered(call, now)
            }
        }
    }

    /// Rings `plan` for a caller we answered, with ringback meanwhile.
    fn ring_answered(
        &mut self,
        call: &mut Call,
        plan: RingPlan,
        no_answer: Option<Target>,
        now: Now,
    ) -> bool {
        let Some(a) = call.answered.as_mut() else {
            return true;
        };
        // The phones get the codec the caller already uses: the relay needs no transcoding.
        let policy = a.policy();
        a.ringing = true;
        a.playback = None;
        call.no_answer = no_answer;
        let local = MediaAddress {
            ip: self.settings.advertised_ip,
            rtp_port: call.b_ports.rtp(),
        };
        if let Ok(offer) = sdp::offer_from(&call.a_offer, &policy, local, &mut call.b_origin) {
            call.b_offer = offer;
        }
        self.out.push_back(Output::PlayLoop {
            call: call.key,
            music: ringback(),
            announcement: None,
            every: Duration::from_secs(3600),
        });
        call.ring_all = plan.ring_all;
        call.member_timeout = plan.member_timeout;
        call.group_deadline = now.instant + plan.group_timeout;
        call.hunt.clear();
        if plan.ring_all {
            if self.ring_members(call, &plan.extensions, now) == 0 {
                return self.nobody_answered(call, now);
            }
            set_ring_deadline(
                call,
                now.instant + plan.member_timeout.min(plan.group_timeout),
            );
            true
        } else {
            call.hunt = plan.extensions.into_iter().collect();
            if self.hunt_next(call, now) {
                true
            } else {
                self.nobody_answered(call, now)
            }
        }
    }

    /// A phone answered the transfer of a caller we answered: bridge them.
    pub(super) fn transfer_answered(
        &mut self,
        call: &mut Call,
        idx: usize,
        b_sdp: &[u8],
        now: Now,
    ) -> bool {
        let ringing = call.answered.as_ref().is_some_and(|a| a.ringing);
        let neg = SessionDescription::parse(b_sdp)
            .ok()
            .and_then(|b| sdp::accept_answer(&call.b_offer, &b).ok());
        let Some(neg) = neg.filter(|_| ringing) else {
            // Too late (the caller moved on), or no usable answer: hang this phone up.
            self.send_bye_fork(call, idx, now);
            call.forks[idx].final_status = Some(488);
            if ringing
                && call.forks.iter().all(|f| f.state == ForkState::Done)
                && !self.hunt_on(call, now)
            {
                return self.nobody_answered(call, now);
            }
            return true;
        };
        if let Some(a) = call.answered.as_mut() {
            a.ringing = false;
            a.ring_deadline = None;
            a.playback = None;
        }
        call.hunt.clear();
        call.no_answer = None;
        self.out.push_back(Output::MediaBridge { call: call.key });
        self.out.push_back(Output::MediaHold {
            call: call.key,
            on_hold: false,
        });
        self.out.push_back(Output::MediaRemote {
            call: call.key,
            leg: LegSide::B,
            rtp: neg.remote,
            rtcp: neg.remote_rtcp,
        });
        call.winner = Some(idx);
        let extension = call.forks[idx].extension.clone();
        *self.busy.entry(extension.clone()).or_default() += 1;
        call.busy_extension = Some(extension.clone());
        for other in 0..call.forks.len() {
            if other != idx {
                self.cancel_fork(call, other, now);
            }
        }
        info!(%extension, "transferred call answered: bridged");
        true
    }

    /// Nobody answered the transfer: the group's `no_answer` target takes the call.
    pub(super) fn nobody_answered(&mut self, call: &mut Call, now: Now) -> bool {
        let Some(a) = call.answered.as_mut() else {
            return true;
        };
        if !a.ringing {
            return true;
        }
        a.ringing = false;
        a.ring_deadline = None;
        let next = call.no_answer.take();
        call.hunt.clear();
        for idx in 0..call.forks.len() {
            self.cancel_fork(call, idx, now);
        }
        debug!(next = ?next, "nobody answered the transfer");
        match next {
            Some(t) => self.enter_target(call, t, now),
            None => self.fallback(call, None, now),
        }
    }

    /// A deadline of a call we answered: the IVR's, the ringing's, or the session timer's.
    pub(super) fn answered_timer(&mut self, key: CallKey, now: Now) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        let mut keep = true;
        let ivr_due = call
            .answered
            .as_ref()
            .and_then(|a| a.ivr.as_ref())
            .and_then(ivr::Ivr::poll_timeout)
            .is_some_and(|t| t <= now.instant);
        if ivr_due {
            if let Some(machine) = call.answered.as_mut().and_then(|a| a.ivr.as_mut()) {
                machine.handle_timeout(now.instant);
            }
            keep = self.drive_ivr(&mut call, now);
        }
        let play_due = call
            .answered
            .as_ref()
            .and_then(|a| a.playback.as_ref())
            .filter(|p| p.deadline <= now.instant)
            .map(|p| p.id);
        if keep && let Some(id) = play_due {
            warn!(
                id,
                "no end of playback reported in time; going on without it"
            );
            keep = self.playback_ended(&mut call, id, now);
        }
        let ring_due = call
            .answered
            .as_ref()
            .and_then(|a| a.ring_deadline)
            .is_some_and(|t| t <= now.instant);
        if keep && ring_due {
            if let Some(a) = call.answered.as_mut() {
                a.ring_deadline = None;
            }
            for idx in 0..call.forks.len() {
                self.cancel_fork(&mut call, idx, now);
            }
            let hunting =
                !call.ring_all && !call.hunt.is_empty() && now.instant < call.group_deadline;
            if !(hunting && self.hunt_next(&mut call, now)) {
                keep = self.nobody_answered(&mut call, now);
            }
        }
        if keep
            && let Some(a) = call.answered.as_mut()
            && a.record_deadline.is_some_and(|t| t <= now.instant)
        {
            // No audio came to end the recording: stop it; the media side stores what it has.
            a.record_deadline = None;
            self.out.push_back(Output::StopRecording { call: call.key });
        }
        if keep && call.refresh_at.is_some_and(|t| t <= now.instant) {
            call.refresh_at = None;
            self.send_refresh(&mut call, now);
        }
        if keep && call.session_expiry.is_some_and(|t| t <= now.instant) {
            self.calls.insert(key, call);
            self.end_call(key, "session timer expired: no refresh (RFC 4028)", now);
            return;
        }
        self.put_back(call, keep);
    }

    /// Turns the IVR's actions into outputs until it has none. False if the call ended.
    fn drive_ivr(&mut self, call: &mut Call, now: Now) -> bool {
        loop {
            let Some(action) = call
                .answered
                .as_mut()
                .and_then(|a| a.ivr.as_mut())
                .and_then(ivr::Ivr::poll_action)
            else {
                return true;
            };
            match action {
                ivr::IvrAction::Event(e) => {
                    debug!(event = ?e.kind, "ivr");
                    if let Some(a) = call.answered.as_mut()
                        && a.events.len() < MAX_EVENTS
                    {
                        a.events.push(e);
                    }
                }
                ivr::IvrAction::Play { prompts, .. } => {
                    let list = resolve(&call.config, &prompts);
                    if list.is_empty() {
                        if let Some(machine) = call.answered.as_mut().and_then(|a| a.ivr.as_mut()) {
                            machine.handle(ivr::IvrInput::PlaybackFinished, now.instant);
                        }
                    } else {
                        self.play(call, list, AfterPlay::Ivr, now);
                    }
                }
                ivr::IvrAction::StopPlayback => {
                    if let Some(a) = call.answered.as_mut() {
                        a.playback = None;
                    }
                    self.out.push_back(Output::StopPlayback { call: call.key });
                }
                ivr::IvrAction::Transfer(target) => {
                    if let Some(a) = call.answered.as_mut() {
                        a.ivr = None;
                    }
                    return self.enter_target(call, target, now);
                }
                ivr::IvrAction::Hangup { prompts } => {
                    if let Some(a) = call.answered.as_mut() {
                        a.ivr = None;
                    }
                    let list = resolve(&call.config, &prompts);
                    if list.is_empty() {
                        return self.hangup_answered(call, now);
                    }
                    self.play(call, list, AfterPlay::Hangup, now);
                    return true;
                }
            }
        }
    }

    fn play(
        &mut self,
        call: &mut Call,
        prompts: Vec<Arc<media::Prompt>>,
        after: AfterPlay,
        now: Now,
    ) {
        let Some(a) = call.answered.as_mut() else {
            return;
        };
        let id = a.next_play;
        a.next_play = a.next_play.wrapping_add(1);
        // A lost end of playback never leaves the caller waiting: past the prompts' length
        // and a margin, the switch goes on as if it had ended.
        let length: Duration = prompts.iter().map(|p| p.duration()).sum();
        a.playback = Some(Playback {
            id,
            after,
            deadline: now.instant + length + PLAY_SLACK,
        });
        self.out.push_back(Output::Play {
            call: call.key,
            id,
            prompts,
        });
    }

    /// We hang up on a caller we answered. False if the call can be released now.
    fn hangup_answered(&mut self, call: &mut Call, now: Now) -> bool {
        if let Some(a) = call.answered.as_mut() {
            a.ivr = None;
            a.ringing = false;
            a.ring_deadline = None;
        }
        for idx in 0..call.forks.len() {
            self.cancel_fork(call, idx, now);
        }
        if call.state == CallState::Answered {
            // RFC 3261 §15: no BYE before the caller's ACK for our 200; `on_ack` sends it.
            call.bye_a_pending = true;
            return true;
        }
        self.send_bye_a(call, now);
        if let Some(w) = call.winner
            && call.forks[w].state == ForkState::Answered
        {
            self.send_bye_fork(call, w, now);
        }
        false
    }

    /// A key the caller pressed, whatever carried it. False if the call ended.
    pub(super) fn answered_digit(&mut self, call: &mut Call, digit: char, now: Now) -> bool {
        let Some(a) = call.answered.as_mut() else {
            return true;
        };
        debug!(%digit, "caller pressed");
        self.stats.ivr_digits += 1;
        if a.recording {
            if digit == '#' {
                self.out.push_back(Output::StopRecording { call: call.key });
            }
            return true;
        }
        match a.ivr.as_mut() {
            Some(machine) => {
                machine.handle(ivr::IvrInput::Digit(digit), now.instant);
                self.drive_ivr(call, now)
            }
            None => true,
        }
    }

    pub(crate) fn on_digit(&mut self, key: CallKey, digit: char, now: Now) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        let keep = self.answered_digit(&mut call, digit, now);
        self.put_back(call, keep);
    }

    pub(crate) fn on_playback_finished(&mut self, key: CallKey, id: u32, now: Now) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        let keep = self.playback_ended(&mut call, id, now);
        self.put_back(call, keep);
    }

    /// The playback `id` ended (or its deadline passed). False if the call ended.
    fn playback_ended(&mut self, call: &mut Call, id: u32, now: Now) -> bool {
        // An end that is not the awaited playback's (stopped, replaced) is dropped.
        let Some(after) = call
            .answered
            .as_mut()
            .filter(|a| a.playback.as_ref().is_some_and(|p| p.id == id))
            .and_then(|a| a.playback.take())
            .map(|p| p.after)
        else {
            return true;
        };
        match after {
            AfterPlay::Ivr => {
                if let Some(machine) = call.answered.as_mut().and_then(|a| a.ivr.as_mut()) {
                    machine.handle(ivr::IvrInput::PlaybackFinished, now.instant);
                }
                self.drive_ivr(call, now)
            }
            AfterPlay::Hangup => self.hangup_answered(call, now),
            AfterPlay::Record { mailbox, max } => {
                if let Some(a) = call.answered.as_mut() {
                    a.recording = true;
                    a.record_deadline = Some(now.instant + max + RECORD_SLACK);
                }
                info!(%mailbox, "recording a voicemail message");
                self.out.push_back(Output::Record {
                    call: call.key,
                    mailbox,
                    caller: call.caller_user.clone(),
                    dialled: call.dialled.clone(),
                    call_id: call.a_dialog.call_id.clone(),
                    max,
                    started_unix: unix(now),
                });
                true
            }
        }
    }

    pub(crate) fn on_recording_done(&mut self, key: CallKey, stored: bool, now: Now) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        let recording = call.answered.as_ref().is_some_and(|a| a.recording);
        if !recording {
            self.put_back(call, true);
            return;
        }
        if let Some(a) = call.answered.as_mut() {
            a.recording = false;
            a.record_deadline = None;
        }
        info!(stored, "voicemail message done; hanging up");
        if stored {
            self.stats.voicemails += 1;
        }
        let keep = self.hangup_answered(&mut call, now);
        self.put_back(call, keep);
    }

    /// Registration and busy state of every extension, for the router.
    pub(super) fn member_facts(
        &self,
        config: &Config,
        now: Now,
    ) -> std::collections::BTreeMap<String, router::MemberState> {
        config
            .extensions
            .keys()
            .map(|ext| {
                let registered = self.registrar.lookup(ext, now.instant).next().is_some();
                let busy = self.busy.get(ext).is_some_and(|n| *n > 0);
                (ext.clone(), router::MemberState { registered, busy })
            })
            .collect()
    }
}
