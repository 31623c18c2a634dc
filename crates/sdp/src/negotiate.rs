//! RFC 3264 offer/answer for a back-to-back user agent that anchors media.
//!
//! The switch terminates RTP on its own address, so every description it sends names
//! [`MediaAddress`] and carries one audio stream using G.711 (or G.722) plus RFC 4733
//! telephone-event. Other streams are refused with port 0 (RFC 3264 §6), never dropped, so the
//! m-line count always matches the offer.
//!
//! Work is bounded: payload types are looked up in a 128-entry table built once per m-line.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::model::{
    Attribute, Connection, Direction, Fmtp, MediaDescription, Origin, RtpMap, SessionDescription,
    Timing,
};

/// The ptime we offer, and assume when an offer names none (RFC 3551 §4.5: 20 ms for G.711).
pub const DEFAULT_PTIME: u32 = 20;

/// The payload type we give telephone-event in our own offers (a common choice among phones).
pub const DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 101;

/// Events we offer for telephone-event: DTMF 0-9, *, #, A-D and flash (RFC 4733 §3.2).
const TELEPHONE_EVENTS_OFFERED: &str = "0-16";

/// Shortest and longest ptime we mirror; anything outside is treated as absent.
const PTIME_RANGE: std::ops::RangeInclusive<u32> = 10..=200;

/// A codec the switch can terminate or relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722, static payload type 9, with an 8000 Hz RTP clock (RFC 3551 §4.5.2).
    G722,
    /// RFC 4733 DTMF events at 8000 Hz, with a dynamic payload type.
    TelephoneEvent,
}

impl Codec {
    /// The encoding name written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::TelephoneEvent => "telephone-event",
        }
    }

    /// The RTP clock rate written in `a=rtpmap`.
    pub fn clock_rate(self) -> u32 {
        // RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock is 8000 Hz.
        8000
    }

    /// The static payload type from RFC 3551 table 4, if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::TelephoneEvent => None,
        }
    }

    /// The payload type we use for this codec in our own offers.
    pub fn default_payload_type(self) -> u8 {
        self.static_payload_type()
            .unwrap_or(DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE)
    }

    /// Whether this is telephone-event rather than an audio codec.
    pub fn is_telephone_event(self) -> bool {
        self == Codec::TelephoneEvent
    }

    fn from_rtpmap(map: &RtpMap) -> Option<Codec> {
        if map.clock_rate != 8000 || map.channels.is_some_and(|c| c != 1) {
            return None;
        }
        [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::TelephoneEvent]
            .into_iter()
            .find(|c| map.encoding.eq_ignore_ascii_case(c.encoding_name()))
    }

    fn from_static_payload_type(payload_type: u8) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma, Codec::G722]
            .into_iter()
            .find(|c| c.static_payload_type() == Some(payload_type))
    }

    fn rtpmap(self, payload_type: u8) -> RtpMap {
        RtpMap {
            payload_type,
            encoding: self.encoding_name().to_owned(),
            clock_rate: self.clock_rate(),
            channels: None,
        }
    }
}

/// The codecs the switch accepts, in its own order of preference for its own offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPolicy {
    audio: Vec<Codec>,
}

/// A [`CodecPolicy`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The list has no audio codec; telephone-event alone carries no speech.
    #[error("codec policy lists no audio codec")]
    NoAudioCodec,
}

impl CodecPolicy {
    /// Creates a policy from codecs in preference order; duplicates are dropped.
    pub fn new(audio: Vec<Codec>) -> Result<CodecPolicy, PolicyError> {
        let mut unique = Vec::with_capacity(audio.len());
        for codec in audio {
            if !unique.contains(&codec) {
                unique.push(codec);
            }
        }
        if unique.iter().all(|c| c.is_telephone_event()) {
            return Err(PolicyError::NoAudioCodec);
        }
        Ok(CodecPolicy { audio: unique })
    }

    /// The codecs in preference order.
    pub fn audio(&self) -> &[Codec] {
        &self.audio
    }

    /// Whether the policy allows a codec.
    pub fn allows(&self, codec: Codec) -> bool {
        self.audio.contains(&codec)
    }
}

impl Default for CodecPolicy {
    /// PCMU, PCMA and telephone-event: what every desk phone speaks.
    fn default() -> CodecPolicy {
        CodecPolicy {
            audio: vec![Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent],
        }
    }
}

/// Where the switch receives RTP for one leg (RTCP is on `rtp_port + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaAddress {
    /// The address written in our `c=` line.
    pub ip: IpAddr,
    /// The RTP port written in our `m=` line.
    pub rtp_port: u16,
}

/// A codec and the payload type it travels with on this leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// The RTP payload type.
    pub payload_type: u8,
    /// The codec.
    pub codec: Codec,
}

/// The outcome of an offer/answer exchange for the one audio stream the switch anchors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The index of the accepted m-line in the offer and answer.
    pub media_index: usize,
    /// Where to send RTP; `None` when the peer is held with `c=0.0.0.0`.
    pub remote: Option<SocketAddr>,
    /// Where to send RTCP: `a=rtcp` (RFC 3605) or RTP port + 1; `None` with `remote` unknown.
    pub remote_rtcp: Option<SocketAddr>,
    /// The audio codec to send and expect.
    pub codec: NegotiatedCodec,
    /// The telephone-event payload type, if both sides agreed on RFC 4733 DTMF.
    pub telephone_event_payload_type: Option<u8>,
    /// The packetization time in milliseconds.
    pub ptime: u32,
    /// The direction from the switch's side: `SendOnly` means we send but do not receive.
    pub direction: Direction,
    /// Whether the peer put the stream on hold (`c=0.0.0.0`, or it stopped receiving).
    pub remote_hold: bool,
}

/// Why an offer or answer cannot be used; the switch answers 488 to an offer it cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// No plain-RTP audio stream shares a codec with the policy (or our offer).
    #[error("no audio stream with a codec in common")]
    NoCommonCodec,
    /// An accepted stream has no `c=` line at either level.
    #[error("m-line {media_index} has no connection address")]
    MissingConnection {
        /// The m-line's index.
        media_index: usize,
    },
    /// A connection address is not an IP address (a host name needs DNS we do not do).
    #[error("m-line {media_index} has connection address {address:?}, which is not an IP address")]
    UnsupportedAddress {
        /// The m-line's index.
        media_index: usize,
        /// The address as written.
        address: String,
    },
    /// The answer has a different number of m-lines than our offer (RFC 3264 §6).
    #[error("answer has {answered} m-lines, offer had {offered}")]
    MediaCountMismatch {
        /// m-lines in our offer.
        offered: usize,
        /// m-lines in the answer.
        answered: usize,
    },
    /// An answer m-line has a different media type than the offered one (RFC 3264 §6).
    #[error("answer m-line {media_index} changes the media type")]
    MediaTypeMismatch {
        /// The m-line's index.
        media_index: usize,
    },
    /// The answer uses a format we did not offer (RFC 3264 §6.1).
    #[error("answer m-line {media_index} uses format {format:?}, which was not offered")]
    CodecNotOffered {
        /// The m-line's index.
        media_index: usize,
        /// The unexpected format.
        format: String,
    },
}

/// Answers an offer for the switch, which anchors media at `local` (RFC 3264 §6).
///
/// The first plain-RTP audio stream with a codec in common is accepted with one audio codec
/// (the offerer's most preferred one the policy allows, with the offerer's payload type) plus
/// telephone-event if both sides have it; every other m-line is refused with port 0. On
/// success the session version in `origin` is bumped (RFC 3264 §8); on error it is untouched.
pub fn answer(
    offer: &SessionDescription,
    policy: &CodecPolicy,
    local: MediaAddress,
    origin: &mut Origin,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let mut chosen: Option<(usize, &MediaDescription, Choice)> = None;
    let mut media = Vec::with_capacity(offer.media.len());
    for (media_index, offered) in offer.media.iter().enumerate() {
        let choice = if chosen.is_none() {
            choose(offered, policy)
        } else {
            None
        };
        match choice {
            Some(choice) => {
                let audio_codecs = std::slice::from_ref(&choice.audio);
                let direction = effective_direction(offer, offered).answer();
                media.push(audio_section(
                    local,
                    audio_codecs,
                    choice.telephone_event.as_ref(),
                    choice.ptime,
                    direction,
                ));
                chosen = Some((media_index, offered, choice));
            }
            None => media.push(refused_section(offered)),
        }
    }
    let (media_index, offered, choice) = chosen.ok_or(NegotiationError::NoCommonCodec)?;
    let (remote, remote_rtcp) = remote_addresses(offer, offered, media_index)?;
    let negotiated = Negotiated {
        media_index,
        remote,
        remote_rtcp,
        codec: choice.audio,
        telephone_event_payload_type: choice.telephone_event.as_ref().map(|(pt, _)| *pt),
        ptime: choice.ptime,
        direction: effective_direction(offer, offered).answer(),
        remote_hold: offer.is_hold(offered),
    };
    origin.next_version();
    Ok((session(origin, local, media), negotiated))
}

/// Builds the switch's own offer for a new leg: one audio stream with the policy's codecs.
///
/// Codecs keep their static payload types and telephone-event gets
/// [`DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE`]; the session version in `origin` is bumped.
pub fn offer(
    policy: &CodecPolicy,
    local: MediaAddress,
    origin: &mut Origin,
    direction: Direction,
) -> SessionDescription {
    let audio: Vec<NegotiatedCodec> = policy
        .audio
        .iter()
        .filter(|c| !c.is_telephone_event())
        .map(|&codec| NegotiatedCodec {
            payload_type: codec.default_payload_type(),
            codec,
        })
        .collect();
    let telephone_event = policy.allows(Codec::TelephoneEvent).then(|| {
        (
            DEFAULT_TELEPHONE_EVENT_PAYLOAD_TYPE,
            Some(TELEPHONE_EVENTS_OFFERED.to_owned()),
        )
    });
    origin.next_version();
    let section = audio_section(
        local,
        &audio,
        telephone_event.as_ref(),
        DEFAULT_PTIME,
        direction,
    );
    session(origin, local, vec![section])
}

/// Re-offers a description we sent before with a new direction, such as `SendOnly` for hold.
///
/// RFC 3264 §8: the m-lines, codecs and payload types stay as they were, the session version
/// in `origin` is bumped, and the direction of every accepted stream is replaced (refused
/// streams keep port 0 and get no direction). `origin` must be the one `previous` was made with.
pub fn reoffer(
    previous: &SessionDescription,
    origin: &mut Origin,
    direction: Direction,
) -> SessionDescription {
    let mut next = previous.clone();
    origin.next_version();
    next.origin = origin.clone();
    for media in next.media.iter_mut().filter(|m| m.port != 0) {
        media.set_direction(direction);
    }
    next
}

/// Re-offers a caller's codecs to the other leg with the switch's own address.
///
/// The offer has one audio stream: the caller's first usable one, with every codec the policy
/// allows in the caller's order and payload types, telephone-event if offered, the caller's
/// ptime and the caller's direction (so a hold is passed on). After the other leg answers, the
/// switch can answer the caller with a policy of just the codec that leg chose, avoiding
/// transcoding. The session version in `origin` is bumped on success.
pub fn offer_from(
    remote_offer: &SessionDescription,
    policy: &CodecPolicy,
    local: MediaAddress,
    origin: &mut Origin,
) -> Result<SessionDescription, NegotiationError> {
    let (media_index, offered, choice) = remote_offer
        .media
        .iter()
        .enumerate()
        .find_map(|(media_index, m)| choose(m, policy).map(|choice| (media_index, m, choice)))
        .ok_or(NegotiationError::NoCommonCodec)?;
    // Refuse now what `answer` would refuse later, before the other leg starts ringing.
    remote_addresses(remote_offer, offered, media_index)?;
    let direction = effective_direction(remote_offer, offered);
    origin.next_version();
    let section = audio_section(
        local,
        &choice.all_audio,
        choice.telephone_event.as_ref(),
        choice.ptime,
        direction,
    );
    Ok(session(origin, local, vec![section]))
}

/// Checks a peer's answer against the offer we sent and reads the outcome (RFC 3264 §6-7).
///
/// Being liberal, a dynamic payload type the answer renumbered is accepted when its `rtpmap`
/// names a codec we offered; we then send with the answer's number.
pub fn accept_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if our_offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offered: our_offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let mut accepted = None;
    for (media_index, (offered, answered)) in our_offer.media.iter().zip(&answer.media).enumerate()
    {
        if !offered.media.eq_ignore_ascii_case(&answered.media) {
            return Err(NegotiationError::MediaTypeMismatch { media_index });
        }
        if offered.port == 0 || answered.port == 0 {
            continue;
        }
        let offered_table = PayloadTable::new(offered);
        let answered_table = PayloadTable::new(answered);
        let offered_formats: HashSet<&str> = offered.formats.iter().map(String::as_str).collect();
        let offered_codecs: HashSet<Codec> = offered
            .payload_types()
            .filter_map(|pt| offered_table.codec(pt, None))
            .collect();
        for format in &answered.formats {
            if offered_formats.contains(format.as_str()) {
                continue;
            }
            // Liberal: RFC 3264 §6.1 says the answer SHOULD reuse our numbers; some renumber.
            let renumbered = format
                .parse::<u8>()
                .ok()
                .and_then(|pt| answered_table.rtpmap(pt))
                .and_then(Codec::from_rtpmap)
                .is_some_and(|codec| offered_codecs.contains(&codec));
            if !renumbered {
                // Liberal too: RFC 3264 §6.1 forbids formats we did not offer, yet phones
                // that answer with their whole list exist. Such formats are never chosen.
                tracing::debug!(
                    media_index,
                    format,
                    "answer lists a format we did not offer; ignored"
                );
                continue;
            }
            tracing::debug!(
                media_index,
                format,
                "answer renumbered an offered payload type"
            );
        }
        if accepted.is_some()
            || !answered.is_plain_rtp()
            || !answered.media.eq_ignore_ascii_case("audio")
        {
            continue;
        }
        let codec_of = |pt| answered_table.codec(pt, Some(&offered_table));
        let audio = answered.payload_types().find_map(|pt| {
            codec_of(pt)
                .filter(|c| !c.is_telephone_event() && offered_codecs.contains(c))
                .map(|codec| NegotiatedCodec {
                    payload_type: pt,
                    codec,
                })
        });
        let telephone_event = answered
            .payload_types()
            .find(|&pt| codec_of(pt) == Some(Codec::TelephoneEvent));
        if let Some(audio) = audio {
            accepted = Some((media_index, offered, answered, audio, telephone_event));
        }
    }
    let (media_index, offered, answered, codec, telephone_event_payload_type) =
        accepted.ok_or(NegotiationError::NoCommonCodec)?;
    let (remote, remote_rtcp) = remote_addresses(answer, answered, media_index)?;
    let ours = our_offer.direction_of(offered);
    let theirs = effective_direction(answer, answered);
    Ok(Negotiated {
        media_index,
        remote,
        remote_rtcp,
        codec,
        telephone_event_payload_type,
        ptime: sane_ptime(answered.ptime())
            .or(sane_ptime(offered.ptime()))
            .unwrap_or(DEFAULT_PTIME),
        // An answerer may only narrow the offered direction; intersect in case it widened it.
        direction: Direction::from_flags(
            ours.sends() && theirs.receives(),
            ours.receives() && theirs.sends(),
        ),
        remote_hold: answer.is_hold(answered),
    })
}

/// What we accept from one offered m-line.
struct Choice {
    /// The offerer's most preferred codec the policy allows.
    audio: NegotiatedCodec,
    /// Every allowed audio codec, in the offerer's order.
    all_audio: Vec<NegotiatedCodec>,
    /// The telephone-event payload type and its fmtp parameters.
    telephone_event: Option<(u8, Option<String>)>,
    ptime: u32,
}

/// Picks codecs from an offered m-line, or `None` if we refuse it.
fn choose(offered: &MediaDescription, policy: &CodecPolicy) -> Option<Choice> {
    if offered.port == 0 || !offered.media.eq_ignore_ascii_case("audio") || !offered.is_plain_rtp()
    {
        return None;
    }
    let table = PayloadTable::new(offered);
    let mut all_audio: Vec<NegotiatedCodec> = Vec::new();
    let mut telephone_event = None;
    for payload_type in offered.payload_types() {
        let Some(codec) = table
            .codec(payload_type, None)
            .filter(|&c| policy.allows(c))
        else {
            continue;
        };
        if codec.is_telephone_event() {
            if telephone_event.is_none() {
                let parameters = offered
                    .fmtp(&payload_type.to_string())
                    .map(|f| f.parameters);
                telephone_event = Some((payload_type, parameters));
            }
        } else if !all_audio.iter().any(|c| c.codec == codec) {
            all_audio.push(NegotiatedCodec {
                payload_type,
                codec,
            });
        }
    }
    let audio = *all_audio.first()?;
    Some(Choice {
        audio,
        all_audio,
        telephone_event,
        ptime: sane_ptime(offered.ptime()).unwrap_or(DEFAULT_PTIME),
    })
}

/// The `a=rtpmap`s of one m-line indexed by payload type; the first one for a number wins.
struct PayloadTable {
    rtpmaps: Vec<Option<RtpMap>>,
}

impl PayloadTable {
    fn new(media: &MediaDescription) -> PayloadTable {
        let mut rtpmaps = vec![None; 128];
        for map in media.rtpmaps() {
            if let Some(slot @ None) = rtpmaps.get_mut(usize::from(map.payload_type)) {
                *slot = Some(map);
            }
        }
        PayloadTable { rtpmaps }
    }

    fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps
            .get(usize::from(payload_type))
            .and_then(Option::as_ref)
    }

    /// The codec behind a payload type: this m-line's rtpmap, else `fallback`'s, else RFC 3551.
    fn codec(&self, payload_type: u8, fallback: Option<&PayloadTable>) -> Option<Codec> {
        match self
            .rtpmap(payload_type)
            .or_else(|| fallback.and_then(|f| f.rtpmap(payload_type)))
        {
            Some(map) => Codec::from_rtpmap(map),
            None => Codec::from_static_payload_type(payload_type),
        }
    }
}

fn sane_ptime(ptime: Option<u32>) -> Option<u32> {
    ptime.filter(|ms| PTIME_RANGE.contains(ms))
}

/// The direction a peer wrote, treating RFC 2543 hold (`c=0.0.0.0`) as "does not receive".
fn effective_direction(sdp: &SessionDescription, media: &MediaDescription) -> Direction {
    let direction = sdp.direction_of(media);
    if sdp
        .connection_of(media)
        .is_some_and(Connection::is_unspecified)
    {
        // RFC 3264 §8.4: c=0.0.0.0 means the writer wants no media sent to it.
        Direction::from_flags(direction.sends(), false)
    } else {
        direction
    }
}

/// Where to send RTP and RTCP for a peer's accepted m-line.
fn remote_addresses(
    sdp: &SessionDescription,
    media: &MediaDescription,
    media_index: usize,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), NegotiationError> {
    let connection = sdp
        .connection_of(media)
        .ok_or(NegotiationError::MissingConnection { media_index })?;
    let ip = connection
        .ip()
        .ok_or_else(|| NegotiationError::UnsupportedAddress {
            media_index,
            address: connection.address.clone(),
        })?;
    let usable = |ip: IpAddr, port: u16| {
        (!ip.is_unspecified() && port != 0).then(|| SocketAddr::new(ip, port))
    };
    let remote = usable(ip, media.port);
    let remote_rtcp = match media.rtcp() {
        // RFC 3605: an explicit RTCP port, and optionally address, override the defaults.
        Some(rtcp) => {
            let rtcp_ip = rtcp
                .connection
                .as_ref()
                .and_then(Connection::ip)
                .unwrap_or(ip);
            remote.and_then(|_| usable(rtcp_ip, rtcp.port))
        }
        // RFC 3550 §11: RTCP goes to the next port up.
        None => remote
            .and_then(|_| media.port.checked_add(1))
            .and_then(|port| usable(ip, port)),
    };
    Ok((remote, remote_rtcp))
}

/// Our audio m-line: the listed codecs, telephone-event, ptime and direction.
fn audio_section(
    local: MediaAddress,
    audio: &[NegotiatedCodec],
    telephone_event: Option<&(u8, Option<String>)>,
    ptime: u32,
    direction: Direction,
) -> MediaDescription {
    let mut formats: Vec<String> = audio.iter().map(|c| c.payload_type.to_string()).collect();
    let mut attributes: Vec<Attribute> = audio
        .iter()
        .map(|c| Attribute::new("rtpmap", c.codec.rtpmap(c.payload_type).to_value()))
        .collect();
    if let Some((payload_type, parameters)) = telephone_event {
        formats.push(payload_type.to_string());
        attributes.push(Attribute::new(
            "rtpmap",
            Codec::TelephoneEvent.rtpmap(*payload_type).to_value(),
        ));
        if let Some(parameters) = parameters {
            let fmtp = Fmtp {
                format: payload_type.to_string(),
                parameters: parameters.clone(),
            };
            attributes.push(Attribute::new("fmtp", fmtp.to_value()));
        }
    }
    attributes.push(Attribute::new("ptime", ptime.to_string()));
    attributes.push(Attribute::flag(direction.as_str()));
    let mut section = MediaDescription::new("audio", local.rtp_port, "RTP/AVP", formats);
    section.attributes = attributes;
    section
}

/// An m-line refusing an offered stream: port 0, the offered proto and formats (RFC 3264 §6).
fn refused_section(offered: &MediaDescription) -> MediaDescription {
    MediaDescription::new(
        offered.media.clone(),
        0,
        offered.proto.clone(),
        offered.formats.clone(),
    )
}

/// A whole description from us: our origin, our address, the given media.
fn session(
    origin: &Origin,
    local: MediaAddress,
    media: Vec<MediaDescription>,
) -> SessionDescription {
    SessionDescription {
        version: 0,
        origin: origin.clone(),
        session_name: "-".to_owned(),
        information: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(Connection::new(local.ip)),
        bandwidths: Vec::new(),
        timings: vec![Timing::default()],
        time_zones: None,
        encryption_key: None,
        attributes: Vec::new(),
        media,
    }
}
