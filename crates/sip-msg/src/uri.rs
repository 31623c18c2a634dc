//! URIs: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) and any other scheme kept opaque, so
//! a request with an unknown scheme can be answered 416 rather than 400 (RFC 4475 §3.3.2).

use std::fmt;

use crate::syntax::{Param, find_byte, find_param, split_once_byte, write_params};

/// A parsed URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other scheme, kept as received.
    Other {
        /// The scheme, lower-cased.
        scheme: String,
        /// Everything after the colon.
        rest: String,
    },
}

/// A `sip:` or `sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    /// True for `sips:`.
    pub secure: bool,
    /// User part, still %-escaped as received.
    pub user: Option<String>,
    /// Password part (deprecated by RFC 3261 but legal), escaped.
    pub password: Option<String>,
    /// Host: a name, an IPv4 address, or an IPv6 reference in brackets.
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Vec<Param>,
    /// Header part after `?`, escaped, never turned into real headers (RFC 4475 §3.1.2.11).
    pub headers: Option<String>,
}

/// A `tel:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelUri {
    /// The number, global (`+39...`) or local, with visual separators as received.
    pub number: String,
    /// Parameters such as `phone-context`.
    pub params: Vec<Param>,
}

/// Why a URI failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad URI: {0}")]
pub struct UriError(pub &'static str);

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Checks %-escapes and that every other byte is in `allowed`.
fn check_escaped(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if is_unreserved(b[i]) || allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn parse_uri_params(s: &str) -> Result<Vec<Param>, UriError> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(';') {
        if part.is_empty() {
            return Err(UriError("empty URI parameter"));
        }
        let ok = |b: u8| matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$' | b'=');
        if !check_escaped(part, ok) {
            return Err(UriError("invalid character in URI parameter"));
        }
        match split_once_byte(part, b'=') {
            Some((n, v)) => out.push(Param::new(n, Some(v))),
            None => out.push(Param::new(part, None::<String>)),
        }
    }
    Ok(out)
}

/// Parses `host[:port]`; IPv6 references must be bracketed (RFC 5118 §4.2).
pub fn parse_hostport(s: &str) -> Result<(String, Option<u16>), UriError> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or(UriError("unterminated IPv6 reference"))?;
        let addr = &rest[..end];
        // DEVIATION(RFC 5118 §4.10): tolerate the 3-colon form the RFC 3261 ABNF allowed,
        // so only the character set is checked here.
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            || !addr.contains(':')
        {
            return Err(UriError("bad IPv6 reference"));
        }
        let host = format!("[{addr}]");
        let after = &rest[end + 1..];
        if after.is_empty() {
            return Ok((host, None));
        }
        let port = after
            .strip_prefix(':')
            .ok_or(UriError("junk after IPv6 reference"))?;
        return Ok((host, Some(parse_port(port)?)));
    }
    let (host, port) = match split_once_byte(s, b':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(UriError("bad host"));
    }
    Ok((host.to_owned(), port))
}

fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError("bad port"));
    }
    p.parse().map_err(|_| UriError("port out of range"))
}

impl Uri {
    /// Parses a URI with no surrounding white space or angle brackets.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let (scheme, rest) = split_once_byte(s, b':').ok_or(UriError("no scheme"))?;
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(UriError("bad scheme"));
        }
        if rest.is_empty()
            || rest
                .bytes()
                .any(|b| b <= b' ' || matches!(b, b'<' | b'>' | b'"' | 0x7f))
        {
            return Err(UriError("empty URI or forbidden character"));
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return Ok(Uri::Sip(SipUri::parse_after_scheme(
                scheme.len() == 4,
                rest,
            )?));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "tel" => {
                let (number, params) = match rest.split_once(';') {
                    Some((n, p)) => (n, parse_uri_params(p)?),
                    None => (rest, Vec::new()),
                };
                if number.is_empty()
                    || !number.bytes().all(|b| {
                        b.is_ascii_hexdigit()
                            || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
                    })
                {
                    return Err(UriError("bad telephone number"));
                }
                Ok(Uri::Tel(TelUri {
                    number: number.to_owned(),
                    params,
                }))
            }
            lower => Ok(Uri::Other {
                scheme: lower.to_owned(),
                rest: rest.to_owned(),
            }),
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI, unescaped where plain.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other { .. } => None,
        }
    }
}

impl SipUri {
    /// A plain `sip:user@host:port` URI.
    pub fn new(user: Option<&str>, host: &str, port: Option<u16>) -> Self {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host: host.to_owned(),
            port,
            params: Vec::new(),
            headers: None,
        }
    }

    fn parse_after_scheme(secure: bool, rest: &str) -> Result<SipUri, UriError> {
        // RFC 3261 §25.1: `user` may contain `?`, `;` and `/` (RFC 4475 §3.1.1.2), while no
        // part after the host may contain an unescaped `@`; so the first `@` ends the userinfo.
        // If that reading fails, fall back to splitting the `?headers` off first, which is
        // what senders of unescaped `@` in header values (`?Replaces=id@host`) mean.
        if let Some(at) = find_byte(rest, b'@')
            && let Ok(uri) = Self::parse_parts(secure, Some(&rest[..at]), &rest[at + 1..])
        {
            return Ok(uri);
        }
        let (main, headers) = match rest.split_once('?') {
            Some((m, h)) => (m, Some(h)),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match main.rfind('@') {
            Some(i) => (Some(&main[..i]), &main[i + 1..]),
            None => (None, main),
        };
        let mut uri = Self::parse_parts(secure, userinfo, hostpart)?;
        if let Some(h) = headers {
            uri.headers = Some(h.to_owned());
        }
        Ok(uri)
    }

    /// Parses `userinfo` (without `@`) and `host[:port][;params][?headers]`.
    fn parse_parts(
        secure: bool,
        userinfo: Option<&str>,
        hostpart: &str,
    ) -> Result<SipUri, UriError> {
        let (hostpart, headers) = match split_once_byte(hostpart, b'?') {
            Some((m, h)) => (m, Some(h.to_owned())),
            None => (hostpart, None),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match split_once_byte(ui, b':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                let user_ok =
                    |b: u8| matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/');
                if u.is_empty() || !check_escaped(u, user_ok) {
                    return Err(UriError("bad user part"));
                }
                if let Some(p) = p
                    && !check_escaped(p, |b| matches!(b, b'&' | b'=' | b'+' | b'$' | b','))
                {
                    return Err(UriError("bad password part"));
                }
                (Some(u.to_owned()), p.map(str::to_owned))
            }
        };
        let (hostport, params) = match split_once_byte(hostpart, b';') {
            Some((h, p)) => (h, parse_uri_params(p)?),
            None => (hostpart, Vec::new()),
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The address a request to this URI goes to when its host is an IP literal (port 5060
    /// when none is given); `None` for host names, which need DNS (RFC 3263).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let ip: std::net::IpAddr = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        Some(std::net::SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }

    /// Finds a URI parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(48);
        s.push_str(if self.secure { "sips:" } else { "sip:" });
        if let Some(u) = &self.user {
            s.push_str(u);
            if let Some(p) = &self.password {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        write_params(&mut s, &self.params);
        if let Some(h) = &self.headers {
            s.push('?');
            s.push_str(h);
        }
        f.write_str(&s)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(t) => {
                let mut s = format!("tel:{}", t.number);
                write_params(&mut s, &t.params);
                f.write_str(&s)
            }
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        let got = match Uri::parse(input) {
            Ok(u) => format!("ok {u}"),
            Err(e) => format!("err {}", e.0),
        };
        assert_eq!(got, expect, "input {input}");
    }

    #[test]
    fn user_parts_with_reserved_characters() {
        // regression: RFC 4475 intmeth: `?` and `;` belong to the user part before `@`
        check(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
            "ok sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        let u = Uri::parse("sip:a?b@c").unwrap();
        assert_eq!(
            (u.user(), u.as_sip().map(|s| s.headers.clone())),
            (Some("a?b"), Some(None))
        );
        // an unescaped `@` in a header value (`?Replaces=id@host`) still parses as headers
        let u = Uri::parse("sip:bob@biloxi.example.com?Replaces=12345@192.0.2.3").unwrap();
        let sip = u.as_sip().unwrap();
        assert_eq!(
            (sip.user.as_deref(), sip.host.as_str()),
            (Some("bob"), "biloxi.example.com")
        );
        assert_eq!(sip.headers.as_deref(), Some("Replaces=12345@192.0.2.3"));
        check("sip:a@b@c", "err bad user part");
    }

    #[test]
    fn uris() {
        check("sip:alice@example.com", "ok sip:alice@example.com");
        check(
            "SIP:alice@example.com:5070;transport=tcp;lr",
            "ok sip:alice@example.com:5070;transport=tcp;lr",
        );
        check("sips:[2001:db8::10]:5070", "ok sips:[2001:db8::10]:5070");
        check("sip:[2001:db8::10:5070]", "ok sip:[2001:db8::10:5070]");
        check("sip:2001:db8::10", "err bad port");
        check(
            "sip:user;par=u%40example.net@example.com",
            "ok sip:user;par=u%40example.net@example.com",
        );
        check(
            "sip:sips%3Auser%40example.com@example.net",
            "ok sip:sips%3Auser%40example.com@example.net",
        );
        check("tel:+39-800-840-840", "ok tel:+39-800-840-840");
        check(
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "ok nobodyknowsthisscheme:totallyopaquecontent",
        );
        check("<sip:user@example.com>", "err bad scheme");
        check("sip:user@example.com;;lr", "err empty URI parameter");
        check(
            "sip:us er@example.com",
            "err empty URI or forbidden character",
        );
        check(
            "sip:alice@example.com?Route=%3Csip:x%3E",
            "ok sip:alice@example.com?Route=%3Csip:x%3E",
        );
    }
}
