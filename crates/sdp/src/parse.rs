//! Parsing SDP bytes into a [`SessionDescription`].
//!
//! Liberal where real phones err: LF or CRLF line ends, trailing whitespace, blank lines, an
//! empty `s=`, lines in a non-RFC order within a level, non-UTF-8 text (replaced), unknown line
//! types (skipped). Strict where the description would be meaningless: `v=`, `o=`, `s=` and
//! `t=` must be present, and `o=`, `c=`, `m=`, `b=` and `t=` must be well formed. Work is linear
//! in the input length and nothing here can panic.

use crate::error::{SdpError, SdpErrorKind};
use crate::model::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription, Timing,
};

/// Parses a session description; see the module docs for what is tolerated.
pub(crate) fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    let mut session = SessionBuilder::default();
    let mut media: Vec<MediaDescription> = Vec::new();

    for (idx, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line_number = idx.saturating_add(1);
        let text = String::from_utf8_lossy(raw);
        // Tolerate CRLF, trailing spaces and tabs, and a UTF-8 byte order mark on line 1.
        let text = text.trim_end_matches(['\r', ' ', '\t']);
        let text = if idx == 0 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() {
            continue;
        }
        let err = |kind| SdpError::new(Some(line_number), kind);
        let mut chars = text.chars();
        let (Some(letter), Some('=')) = (chars.next(), chars.next()) else {
            return Err(err(SdpErrorKind::NotATypeLine));
        };
        let value = chars.as_str();

        if letter == 'm' {
            media.push(parse_media_line(value).map_err(err)?);
            continue;
        }
        if let Some(section) = media.last_mut() {
            parse_media_level(section, letter, value).map_err(err)?;
        } else {
            session.line(letter, value).map_err(err)?;
        }
    }
    session.finish(media)
}

#[derive(Default)]
struct SessionBuilder {
    version: Option<u32>,
    origin: Option<Origin>,
    session_name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    time_zones: Option<String>,
    encryption_key: Option<String>,
    attributes: Vec<Attribute>,
}

impl SessionBuilder {
    fn line(&mut self, letter: char, value: &str) -> Result<(), SdpErrorKind> {
        match letter {
            'v' => {
                let version = value
                    .trim()
                    .parse()
                    .map_err(|_| malformed('v', "version is not a number"))?;
                set_once(&mut self.version, version, 'v')
            }
            'o' => set_once(&mut self.origin, parse_origin(value)?, 'o'),
            // RFC 8866 §5.3 wants one non-empty name; phones send `s=` and `s= `, so allow empty.
            's' => set_once(&mut self.session_name, value.trim().to_owned(), 's'),
            'i' => set_once(&mut self.information, value.to_owned(), 'i'),
            'u' => set_once(&mut self.uri, value.to_owned(), 'u'),
            'e' => {
                self.emails.push(value.to_owned());
                Ok(())
            }
            'p' => {
                self.phones.push(value.to_owned());
                Ok(())
            }
            'c' => set_once(&mut self.connection, parse_connection(value)?, 'c'),
            'b' => {
                self.bandwidths.push(parse_bandwidth(value)?);
                Ok(())
            }
            't' => {
                self.timings.push(parse_timing(value)?);
                Ok(())
            }
            'r' => match self.timings.last_mut() {
                Some(timing) => {
                    timing.repeats.push(value.to_owned());
                    Ok(())
                }
                None => Err(SdpErrorKind::Misplaced {
                    line_type: 'r',
                    reason: "r= before any t=",
                }),
            },
            'z' => set_once(&mut self.time_zones, value.to_owned(), 'z'),
            'k' => set_once(&mut self.encryption_key, value.to_owned(), 'k'),
            'a' => {
                self.attributes.push(parse_attribute(value)?);
                Ok(())
            }
            other => {
                // DEVIATION(RFC 8866 §5): a parser MUST ignore a whole description with an
                // unknown type letter; phones send vendor lines (e.g. `y=`), so skip the line.
                tracing::debug!(line_type = %other, "skipping unknown SDP line type");
                Ok(())
            }
        }
    }

    fn finish(self, media: Vec<MediaDescription>) -> Result<SessionDescription, SdpError> {
        let missing = |letter| SdpError::new(None, SdpErrorKind::Missing { line_type: letter });
        // Report the first missing line in RFC 8866 order: v, o, s, t.
        let version = self.version.ok_or_else(|| missing('v'))?;
        let origin = self.origin.ok_or_else(|| missing('o'))?;
        let session_name = self.session_name.ok_or_else(|| missing('s'))?;
        if self.timings.is_empty() {
            return Err(missing('t'));
        }
        Ok(SessionDescription {
            version,
            origin,
            session_name,
            information: self.information,
            uri: self.uri,
            emails: self.emails,
            phones: self.phones,
            connection: self.connection,
            bandwidths: self.bandwidths,
            timings: self.timings,
            time_zones: self.time_zones,
            encryption_key: self.encryption_key,
            attributes: self.attributes,
            media,
        })
    }
}

fn parse_media_level(
    section: &mut MediaDescription,
    letter: char,
    value: &str,
) -> Result<(), SdpErrorKind> {
    match letter {
        'i' => set_once(&mut section.information, value.to_owned(), 'i'),
        'c' => {
            let connection = parse_connection(value)?;
            if section.connection.is_none() {
                section.connection = Some(connection);
            } else {
                // DEVIATION(RFC 8866 §5.7): several c= lines are for layered multicast, which
                // a switch never relays; keep the first.
                tracing::debug!("ignoring extra media-level c= line");
            }
            Ok(())
        }
        'b' => {
            section.bandwidths.push(parse_bandwidth(value)?);
            Ok(())
        }
        'k' => set_once(&mut section.encryption_key, value.to_owned(), 'k'),
        'a' => {
            section.attributes.push(parse_attribute(value)?);
            Ok(())
        }
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => Err(SdpErrorKind::Misplaced {
            line_type: letter,
            reason: "session-level line after m=",
        }),
        other => {
            tracing::debug!(line_type = %other, "skipping unknown SDP media line type");
            Ok(())
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, letter: char) -> Result<(), SdpErrorKind> {
    if slot.is_some() {
        return Err(SdpErrorKind::Duplicate { line_type: letter });
    }
    *slot = Some(value);
    Ok(())
}

fn malformed(letter: char, reason: &'static str) -> SdpErrorKind {
    SdpErrorKind::Malformed {
        line_type: letter,
        reason,
    }
}

fn parse_origin(value: &str) -> Result<Origin, SdpErrorKind> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let [
        username,
        session_id,
        session_version,
        network_type,
        address_type,
        address,
    ] = words[..]
    else {
        return Err(malformed('o', "expected 6 fields"));
    };
    // RFC 3264 §5: sess-id and sess-version must be representable as 64-bit integers.
    let session_id = session_id
        .parse()
        .map_err(|_| malformed('o', "sess-id is not a 64-bit number"))?;
    let session_version = session_version
        .parse()
        .map_err(|_| malformed('o', "sess-version is not a 64-bit number"))?;
    Ok(Origin {
        username: username.to_owned(),
        session_id,
        session_version,
        network_type: network_type.to_owned(),
        address_type: address_type.to_owned(),
        address: address.to_owned(),
    })
}

fn parse_connection(value: &str) -> Result<Connection, SdpErrorKind> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let [network_type, address_type, address] = words[..] else {
        return Err(malformed('c', "expected 3 fields"));
    };
    Ok(Connection {
        network_type: network_type.to_owned(),
        address_type: address_type.to_owned(),
        address: address.to_owned(),
    })
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, SdpErrorKind> {
    let (bandwidth_type, number) = value
        .split_once(':')
        .ok_or(malformed('b', "expected type:value"))?;
    let bandwidth_type = bandwidth_type.trim();
    if bandwidth_type.is_empty() || bandwidth_type.contains(char::is_whitespace) {
        return Err(malformed('b', "bad bandwidth type"));
    }
    let value = number
        .trim()
        .parse()
        .map_err(|_| malformed('b', "value is not a number"))?;
    Ok(Bandwidth {
        bandwidth_type: bandwidth_type.to_owned(),
        value,
    })
}

fn parse_timing(value: &str) -> Result<Timing, SdpErrorKind> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let [start, stop] = words[..] else {
        return Err(malformed('t', "expected start and stop times"));
    };
    let start = start
        .parse()
        .map_err(|_| malformed('t', "start time is not a number"))?;
    let stop = stop
        .parse()
        .map_err(|_| malformed('t', "stop time is not a number"))?;
    Ok(Timing {
        start,
        stop,
        repeats: Vec::new(),
    })
}

fn parse_attribute(value: &str) -> Result<Attribute, SdpErrorKind> {
    let (name, value) = match value.split_once(':') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (value, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(malformed('a', "bad attribute name"));
    }
    Ok(Attribute {
        name: name.to_owned(),
        value,
    })
}

fn parse_media_line(value: &str) -> Result<MediaDescription, SdpErrorKind> {
    let mut words = value.split_whitespace();
    let (Some(media), Some(port), Some(proto)) = (words.next(), words.next(), words.next()) else {
        return Err(malformed('m', "expected media, port and proto"));
    };
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => {
            let count = count
                .parse()
                .map_err(|_| malformed('m', "port count is not a number"))?;
            (port, Some(count))
        }
        None => (port, None),
    };
    let port = port
        .parse()
        .map_err(|_| malformed('m', "port is not a number up to 65535"))?;
    // DEVIATION(RFC 8866 §5.14): an m= line needs at least one format; a rejected stream
    // from a sloppy phone may list none, and refusing it would fail the whole call.
    let formats = words.map(str::to_owned).collect();
    let mut section = MediaDescription::new(media, port, proto, formats);
    section.port_count = port_count;
    Ok(section)
}
