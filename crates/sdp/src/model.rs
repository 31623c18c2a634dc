//! The SDP data model (RFC 8866, which obsoletes RFC 4566) and typed attribute helpers.
//!
//! Every field is plain owned data. Lines the model has no typed field for are kept as
//! [`Attribute`]s in their original order, so a parsed description prints back as it came.

use std::net::IpAddr;
use std::str::FromStr;

/// A whole session description: the session-level lines and the media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `v=`: the protocol version, always 0 in practice.
    pub version: u32,
    /// `o=`: who created the session and its version.
    pub origin: Origin,
    /// `s=`: the session name, possibly empty (phones send `s=` or `s= `).
    pub session_name: String,
    /// `i=`: free-text session information.
    pub information: Option<String>,
    /// `u=`: a URI with more information.
    pub uri: Option<String>,
    /// `e=` lines: contact e-mail addresses.
    pub emails: Vec<String>,
    /// `p=` lines: contact phone numbers.
    pub phones: Vec<String>,
    /// `c=` at session level: the default connection for media sections without their own.
    pub connection: Option<Connection>,
    /// `b=` lines at session level.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` repeat lines; at least one in a parsed description.
    pub timings: Vec<Timing>,
    /// `z=`: time zone adjustments, kept verbatim.
    pub time_zones: Option<String>,
    /// `k=`: the obsolete encryption key line, kept verbatim.
    pub encryption_key: Option<String>,
    /// `a=` lines at session level, in order.
    pub attributes: Vec<Attribute>,
    /// `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

/// The `o=` line: originator and session identifier plus version (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The originator's login, or `-`.
    pub username: String,
    /// The session id; RFC 3264 §5 requires it to fit in a 64-bit integer.
    pub session_id: u64,
    /// The session version; it grows whenever the description changes (RFC 3264 §8).
    pub session_version: u64,
    /// The network type, `IN` for the Internet.
    pub network_type: String,
    /// The address type, `IP4` or `IP6`.
    pub address_type: String,
    /// The originator's address or host name, as written.
    pub address: String,
}

impl Origin {
    /// Creates the origin of a session we own, starting at version 0 before the first send.
    pub fn new(session_id: u64, address: IpAddr) -> Origin {
        Origin {
            username: "-".to_owned(),
            session_id,
            session_version: 0,
            network_type: "IN".to_owned(),
            address_type: address_type_of(address).to_owned(),
            address: address.to_string(),
        }
    }

    /// Whether a peer's new description repeats this one's origin and version, so nothing changed.
    ///
    /// RFC 3264 §8: a re-offer with the same version as the previous description is identical
    /// to it (a session refresh); the switch then resends its previous answer unchanged rather
    /// than calling [`answer`](crate::answer), which would bump our version.
    pub fn is_unchanged_from(&self, previous: &Origin) -> bool {
        self == previous
    }

    /// Bumps the session version for a new offer or answer we send and returns it (RFC 3264 §8).
    pub fn next_version(&mut self) -> u64 {
        // Wrapping is fine: 2^64 versions will not be sent in one session.
        self.session_version = self.session_version.wrapping_add(1);
        self.session_version
    }
}

/// A `c=` line: where media is sent (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The network type, `IN` for the Internet.
    pub network_type: String,
    /// The address type, `IP4` or `IP6`.
    pub address_type: String,
    /// The connection address as written, possibly with a multicast `/ttl/count` suffix.
    pub address: String,
}

impl Connection {
    /// Creates an `IN IP4` or `IN IP6` connection for a unicast address.
    pub fn new(address: IpAddr) -> Connection {
        Connection {
            network_type: "IN".to_owned(),
            address_type: address_type_of(address).to_owned(),
            address: address.to_string(),
        }
    }

    /// The address as an IP, without a multicast suffix; `None` for host names.
    pub fn ip(&self) -> Option<IpAddr> {
        let bare = self.address.split('/').next().unwrap_or_default();
        IpAddr::from_str(bare).ok()
    }

    /// Whether this is the RFC 2543 hold address `0.0.0.0` (or its IPv6 twin `::`).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// A `b=` line, such as `b=AS:64` (RFC 8866 §5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// The bandwidth type: `AS`, `CT`, `TIAS`, `RR`, `RS` or an extension.
    pub bandwidth_type: String,
    /// The value, in kilobits per second for `AS`/`CT`, bits per second for `TIAS`.
    pub value: u64,
}

/// A `t=` line and the `r=` lines that follow it (RFC 8866 §5.9-5.10).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timing {
    /// The start time in NTP seconds, 0 for unbounded.
    pub start: u64,
    /// The stop time in NTP seconds, 0 for unbounded.
    pub stop: u64,
    /// The `r=` lines, kept verbatim.
    pub repeats: Vec<String>,
}

/// An `a=` line: a name and an optional value after the first colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute name, such as `rtpmap` or `sendonly`.
    pub name: String,
    /// The text after the first `:`, or `None` for a flag attribute.
    pub value: Option<String>,
}

impl Attribute {
    /// Creates a flag attribute such as `a=sendrecv`.
    pub fn flag(name: impl Into<String>) -> Attribute {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    /// Creates a valued attribute such as `a=ptime:20`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// An `m=` section with its own lines (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The media type: `audio`, `video`, `image`, `application`, ...
    pub media: String,
    /// The transport port; 0 marks a rejected or disabled stream (RFC 3264 §5.1).
    pub port: u16,
    /// The `/count` after the port, for layered encodings.
    pub port_count: Option<u16>,
    /// The transport protocol: `RTP/AVP`, `RTP/SAVP`, `udptl`, ...
    pub proto: String,
    /// The formats: RTP payload type numbers as text, or other tokens for non-RTP protocols.
    pub formats: Vec<String>,
    /// `i=`: the media title.
    pub information: Option<String>,
    /// `c=`: this section's connection, overriding the session-level one.
    pub connection: Option<Connection>,
    /// `b=` lines of this section.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=`: the obsolete encryption key line, kept verbatim.
    pub encryption_key: Option<String>,
    /// `a=` lines of this section, in order.
    pub attributes: Vec<Attribute>,
}

/// A stream's direction attribute (RFC 3264 §5.1, RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`: both ways; the default when no direction is given.
    #[default]
    SendRecv,
    /// `a=sendonly`: the writer of the description sends but does not receive.
    SendOnly,
    /// `a=recvonly`: the writer receives but does not send.
    RecvOnly,
    /// `a=inactive`: no media either way.
    Inactive,
}

impl Direction {
    /// The attribute name, such as `sendonly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name; `None` if it is not a direction.
    pub fn from_attribute_name(name: &str) -> Option<Direction> {
        match name.to_ascii_lowercase().as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Builds a direction from whether the writer sends and whether it receives.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer of the description sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer of the description receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: sendonly becomes recvonly and back.
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The direction an answerer that is willing to do anything answers (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        // RFC 3264 §6.1: sendonly → recvonly, recvonly → sendonly, inactive → inactive,
        // sendrecv → sendrecv (the answerer may narrow it, we never do).
        self.reversed()
    }

    /// Whether this direction, written by a peer, puts us on hold (it stopped receiving).
    pub fn is_hold(self) -> bool {
        !self.receives()
    }
}

/// An `a=rtpmap:` value: payload type to encoding (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The RTP payload type.
    pub payload_type: u8,
    /// The encoding name as written, such as `PCMU` or `telephone-event`.
    pub encoding: String,
    /// The RTP clock rate in Hz.
    pub clock_rate: u32,
    /// The channel count for audio, when given.
    pub channels: Option<u16>,
}

impl RtpMap {
    /// Parses the value of an `a=rtpmap:` attribute; `None` if malformed.
    pub fn parse(value: &str) -> Option<RtpMap> {
        let (pt, rest) = value.trim().split_once([' ', '\t'])?;
        let payload_type = pt.parse().ok()?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next()?.trim();
        if encoding.is_empty() {
            return None;
        }
        let clock_rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => Some(c.trim().parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(RtpMap {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }

    /// The attribute value, such as `0 PCMU/8000`.
    pub fn to_value(&self) -> String {
        match self.channels {
            Some(ch) => format!(
                "{} {}/{}/{}",
                self.payload_type, self.encoding, self.clock_rate, ch
            ),
            None => format!(
                "{} {}/{}",
                self.payload_type, self.encoding, self.clock_rate
            ),
        }
    }
}

/// An `a=fmtp:` value: format parameters for one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The format (payload type) the parameters apply to.
    pub format: String,
    /// The parameters, verbatim, such as `0-16`.
    pub parameters: String,
}

impl Fmtp {
    /// Parses the value of an `a=fmtp:` attribute; `None` if it has no format.
    pub fn parse(value: &str) -> Option<Fmtp> {
        let value = value.trim();
        let (format, parameters) = match value.split_once([' ', '\t']) {
            Some((f, p)) => (f, p.trim()),
            None => (value, ""),
        };
        if format.is_empty() {
            return None;
        }
        Some(Fmtp {
            format: format.to_owned(),
            parameters: parameters.to_owned(),
        })
    }

    /// The attribute value, such as `101 0-16`.
    pub fn to_value(&self) -> String {
        format!("{} {}", self.format, self.parameters)
    }
}

/// An `a=rtcp:` value: where RTCP goes when it is not RTP port + 1 (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when it differs from the media connection.
    pub connection: Option<Connection>,
}

impl Rtcp {
    /// Parses the value of an `a=rtcp:` attribute; `None` if malformed.
    pub fn parse(value: &str) -> Option<Rtcp> {
        let mut words = value.split_whitespace();
        let port = words.next()?.parse().ok()?;
        let connection = match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some(n), Some(a), Some(addr)) => Some(Connection {
                network_type: n.to_owned(),
                address_type: a.to_owned(),
                address: addr.to_owned(),
            }),
            _ => return None,
        };
        if words.next().is_some() {
            return None;
        }
        Some(Rtcp { port, connection })
    }
}

impl MediaDescription {
    /// Creates a section with no attributes, connection or bandwidth.
    pub fn new(
        media: impl Into<String>,
        port: u16,
        proto: impl Into<String>,
        formats: Vec<String>,
    ) -> Self {
        MediaDescription {
            media: media.into(),
            port,
            port_count: None,
            proto: proto.into(),
            formats,
            information: None,
            connection: None,
            bandwidths: Vec::new(),
            encryption_key: None,
            attributes: Vec::new(),
        }
    }

    /// The values of all attributes with this name (case-insensitive), in order.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        attribute_values(&self.attributes, name)
    }

    /// Every well-formed `a=rtpmap`, in order.
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.attribute_values("rtpmap").filter_map(RtpMap::parse)
    }

    /// The `a=rtpmap` for one payload type, if present.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.rtpmaps().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp` parameters for one format, if present.
    pub fn fmtp(&self, format: &str) -> Option<Fmtp> {
        self.attribute_values("fmtp")
            .filter_map(Fmtp::parse)
            .find(|f| f.format == format)
    }

    /// The `a=ptime` value in milliseconds, if present and well formed.
    pub fn ptime(&self) -> Option<u32> {
        // Some phones write `a=ptime:20.0`; take the integer part.
        let value = self.attribute_values("ptime").next()?;
        let integer = value.trim().split('.').next()?;
        integer.parse().ok().filter(|&ms| ms > 0)
    }

    /// The direction attribute of this section, if it has one.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// Replaces any direction attribute of this section with `direction`.
    pub fn set_direction(&mut self, direction: Direction) {
        self.attributes
            .retain(|a| Direction::from_attribute_name(&a.name).is_none());
        self.attributes.push(Attribute::flag(direction.as_str()));
    }

    /// The `a=rtcp` attribute (RFC 3605), if present and well formed.
    pub fn rtcp(&self) -> Option<Rtcp> {
        self.attribute_values("rtcp").next().and_then(Rtcp::parse)
    }

    /// The payload type of the first `telephone-event` format listed on the m-line (RFC 4733).
    pub fn telephone_event_payload_type(&self) -> Option<u8> {
        let mut events = [false; 128];
        for map in self
            .rtpmaps()
            .filter(|m| m.encoding.eq_ignore_ascii_case("telephone-event"))
        {
            if let Some(slot) = events.get_mut(usize::from(map.payload_type)) {
                *slot = true;
            }
        }
        self.payload_types()
            .find(|&pt| events.get(usize::from(pt)).copied().unwrap_or(false))
    }

    /// The formats that are valid RTP payload type numbers, in m-line order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|&pt| pt < 128)
    }

    /// Whether the transport is plain RTP (`RTP/AVP`), the only one we relay.
    pub fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP")
    }
}

impl SessionDescription {
    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// The direction in force for a media section: its own, else the session's, else sendrecv.
    pub fn direction_of(&self, media: &MediaDescription) -> Direction {
        // RFC 8866 §6.7: a session-level direction is the default for every media section.
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or_default()
    }

    /// The connection in force for a media section: its own, else the session's.
    pub fn connection_of<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// Whether a media section is on hold: `c=0.0.0.0`, or its peer stopped receiving.
    pub fn is_hold(&self, media: &MediaDescription) -> bool {
        // RFC 3264 §8.4: sendonly/inactive is hold; RFC 2543 phones still send c=0.0.0.0.
        self.connection_of(media)
            .is_some_and(Connection::is_unspecified)
            || self.direction_of(media).is_hold()
    }
}

/// The `IP4`/`IP6` token for an address.
pub(crate) fn address_type_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn attribute_values<'a>(
    attributes: &'a [Attribute],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    attributes
        .iter()
        .filter(move |a| a.name.eq_ignore_ascii_case(name))
        .filter_map(|a| a.value.as_deref())
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    // A flag only: `a=sendonly:foo` is not a direction. The last one wins if a phone repeats it.
    attributes
        .iter()
        .rev()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attribute_name(&a.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_answer_follows_rfc3264_section_6_1() {
        assert_eq!(Direction::SendRecv.answer(), Direction::SendRecv);
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.answer(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        for d in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            assert_eq!(Direction::from_attribute_name(d.as_str()), Some(d));
            assert_eq!(d.reversed().reversed(), d);
        }
        assert!(Direction::SendOnly.is_hold() && Direction::Inactive.is_hold());
        assert!(!Direction::RecvOnly.is_hold() && !Direction::SendRecv.is_hold());
    }

    #[test]
    fn origin_versions_increase_by_one() {
        let mut origin = Origin::new(42, "192.0.2.1".parse().unwrap());
        assert_eq!(origin.session_version, 0);
        assert_eq!(origin.next_version(), 1);
        assert_eq!(origin.next_version(), 2);
        assert_eq!(origin.session_id, 42);
        assert_eq!(origin.address_type, "IP4");
        let previous = origin.clone();
        assert!(origin.is_unchanged_from(&previous));
        origin.next_version();
        assert!(!origin.is_unchanged_from(&previous));
        let v6 = Origin::new(1, "2001:db8::1".parse().unwrap());
        assert_eq!(
            (v6.address_type.as_str(), v6.address.as_str()),
            ("IP6", "2001:db8::1")
        );
    }

    #[test]
    fn typed_attribute_values() {
        assert_eq!(
            RtpMap::parse("101 telephone-event/8000"),
            Some(RtpMap {
                payload_type: 101,
                encoding: "telephone-event".into(),
                clock_rate: 8000,
                channels: None
            })
        );
        assert_eq!(
            RtpMap::parse("111 opus/48000/2").and_then(|m| m.channels),
            Some(2)
        );
        assert_eq!(RtpMap::parse("0 PCMU"), None);
        assert_eq!(RtpMap::parse("300 PCMU/8000"), None);
        assert_eq!(
            Rtcp::parse("53021 IN IP4 126.16.64.4"),
            Some(Rtcp {
                port: 53021,
                connection: Some(Connection::new("126.16.64.4".parse().unwrap()))
            })
        );
        assert_eq!(
            Rtcp::parse("53021"),
            Some(Rtcp {
                port: 53021,
                connection: None
            })
        );
        assert_eq!(Rtcp::parse("53021 IN"), None);
        assert_eq!(
            Fmtp::parse("101 0-16").map(|f| f.parameters),
            Some("0-16".into())
        );
    }
}
