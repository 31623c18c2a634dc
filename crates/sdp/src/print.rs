//! Printing a [`SessionDescription`] as SDP text with CRLF line ends.
//!
//! Lines come out in the RFC 8866 §5 order, so output is deterministic: the same model always
//! prints the same bytes.

use std::fmt::{self, Write};

use crate::model::{Attribute, Bandwidth, Connection, MediaDescription, SessionDescription};

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v={}\r\n", self.version)?;
        write!(
            f,
            "o={} {} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.network_type, o.address_type, o.address
        )?;
        // RFC 8866 §5.3: "s= " is the recommended spelling of an empty session name.
        let name = if self.session_name.is_empty() {
            " "
        } else {
            &self.session_name
        };
        write!(f, "s={name}\r\n")?;
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write_connection(f, c)?;
        }
        write_bandwidths(f, &self.bandwidths)?;
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.time_zones {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.encryption_key {
            write!(f, "k={k}\r\n")?;
        }
        write_attributes(f, &self.attributes)?;
        for m in &self.media {
            write_media(f, m)?;
        }
        Ok(())
    }
}

impl SessionDescription {
    /// The description as SDP bytes with CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

fn write_media(f: &mut impl Write, m: &MediaDescription) -> fmt::Result {
    write!(f, "m={} {}", m.media, m.port)?;
    if let Some(count) = m.port_count {
        write!(f, "/{count}")?;
    }
    write!(f, " {}", m.proto)?;
    for format in &m.formats {
        write!(f, " {format}")?;
    }
    f.write_str("\r\n")?;
    if let Some(i) = &m.information {
        write!(f, "i={i}\r\n")?;
    }
    if let Some(c) = &m.connection {
        write_connection(f, c)?;
    }
    write_bandwidths(f, &m.bandwidths)?;
    if let Some(k) = &m.encryption_key {
        write!(f, "k={k}\r\n")?;
    }
    write_attributes(f, &m.attributes)
}

fn write_connection(f: &mut impl Write, c: &Connection) -> fmt::Result {
    write!(
        f,
        "c={} {} {}\r\n",
        c.network_type, c.address_type, c.address
    )
}

fn write_bandwidths(f: &mut impl Write, bandwidths: &[Bandwidth]) -> fmt::Result {
    for b in bandwidths {
        write!(f, "b={}:{}\r\n", b.bandwidth_type, b.value)?;
    }
    Ok(())
}

fn write_attributes(f: &mut impl Write, attributes: &[Attribute]) -> fmt::Result {
    for a in attributes {
        match &a.value {
            Some(value) => write!(f, "a={}:{value}\r\n", a.name)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}
