//! Header names (with RFC 3261 §7.3.3 compact forms), the header list, and typed values:
//! name-addr (`From`, `To`, `Contact`, `Route`), `Via` and `CSeq`.

use std::fmt;

use crate::method::Method;
use crate::syntax::{
    Param, collapse_lws, find_byte, find_param, is_token, parse_params, split_once_byte,
    split_top_level, write_params,
};
use crate::uri::{Uri, parse_hostport};

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header name; known names are normalised (compact forms expanded), others kept.
        /// Names compare (and hash) case-insensitively, as RFC 3261 §7.3.1 requires, also
        /// for `Other` names: `Other("allow-events") == Other("Allow-Events")`.
        #[derive(Clone, Debug)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// Any other header, with its name as received.
            Other(String),
        }

        impl HeaderName {
            /// Maps a received name (any case, compact or long) to a header name.
            pub fn parse(name: &str) -> HeaderName {
                $(
                    if name.eq_ignore_ascii_case($canon) $(|| name.eq_ignore_ascii_case($compact))? {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(name.to_owned())
            }

            /// The canonical long form of the name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    Contact => "Contact", "m";
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Allow => "Allow";
    Supported => "Supported", "k";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Accept => "Accept";
    Subject => "Subject", "s";
    Event => "Event", "o";
    ReferTo => "Refer-To", "r";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
    UserAgent => "User-Agent";
    Server => "Server";
    Warning => "Warning";
    Date => "Date";
    Timestamp => "Timestamp";
    Reason => "Reason";
    RSeq => "RSeq";
    RAck => "RAck";
    RetryAfter => "Retry-After";
}

impl PartialEq for HeaderName {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HeaderName::Other(a), b) | (b, HeaderName::Other(a)) => {
                a.eq_ignore_ascii_case(b.as_str())
            }
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: equal names have equal lower-case spellings.
        for b in self.as_str().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line: its name and its unfolded, trimmed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Normalised name.
    pub name: HeaderName,
    /// Value with folding removed and outer white space trimmed.
    pub value: String,
}

/// The ordered list of headers of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of a header.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every header line with that name, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated value across all lines of a multi-value header. Returns `None`
    /// on an unterminated quoted string.
    pub fn values(&self, name: &HeaderName) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        for line in self
            .0
            .iter()
            .filter(|h| &h.name == name)
            .map(|h| h.value.as_str())
        {
            for v in split_top_level(line, b',')? {
                let v = v.trim();
                if !v.is_empty() {
                    out.push(v);
                }
            }
        }
        Some(out)
    }

    /// The first value of the first Via line, parsed (the top Via).
    pub fn top_via(&self) -> Option<Via> {
        let line = self.get(&HeaderName::Via)?;
        let first = split_top_level(line, b',')?.into_iter().next()?;
        Via::parse(first).ok()
    }

    /// The CSeq, parsed.
    pub fn cseq(&self) -> Option<CSeq> {
        CSeq::parse(self.get(&HeaderName::CSeq)?).ok()
    }

    /// A single-valued name-addr header (From, To), parsed.
    pub fn name_addr(&self, name: &HeaderName) -> Option<NameAddr> {
        NameAddr::parse(self.get(name)?).ok()
    }

    /// Number of lines with that name.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    /// Appends a header line.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a header line before all others.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Removes every line with that name.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Replaces all lines with that name by one line.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        if let Some(pos) = self.0.iter().position(|h| h.name == name) {
            self.0[pos].value = value;
            let mut seen = false;
            self.0.retain(|h| {
                if h.name != name {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            });
        } else {
            self.push(name, value);
        }
    }
}

/// Why a typed header value failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad {header} header: {why}")]
pub struct HeaderError {
    /// Which header.
    pub header: &'static str,
    /// What is wrong.
    pub why: &'static str,
}

fn herr(header: &'static str, why: &'static str) -> HeaderError {
    HeaderError { header, why }
}

/// A name-addr or addr-spec with header parameters (`From`, `To`, `Contact`, `Route`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name: unquoted token words, or the content of the quoted string.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (`;tag=`, `;expires=`).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A name-addr around a URI with no display name or parameters.
    pub fn new(uri: Uri) -> Self {
        NameAddr {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    /// Parses one name-addr / addr-spec value (RFC 3261 §20.10 rules on `<>`).
    pub fn parse(s: &str) -> Result<NameAddr, HeaderError> {
        const H: &str = "address";
        let s = s.trim();
        let (display, rest) = if let Some(q) = s.strip_prefix('"') {
            // quoted display name with backslash escapes
            let b = q.as_bytes();
            let mut i = 0;
            let mut name = String::new();
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' => {
                        let c = q
                            .get(i + 1..)
                            .and_then(|r| r.chars().next())
                            .ok_or(herr(H, "bad escape"))?;
                        name.push(c);
                        i += 1 + c.len_utf8();
                    }
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => {
                        let c = q[i..].chars().next().ok_or(herr(H, "bad display name"))?;
                        name.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(herr(H, "unterminated quoted display name"));
            }
            let rest = q[i..].trim_start();
            if !rest.starts_with('<') {
                return Err(herr(H, "quoted display name not followed by <URI>"));
            }
            (Some(name), rest)
        } else if let Some(lt) = find_byte(s, b'<') {
            let name = s[..lt].trim();
            // RFC 4475 §3.1.2.15: liberal about non-token characters in unquoted names.
            (
                if name.is_empty() {
                    None
                } else {
                    Some(collapse_lws(name))
                },
                &s[lt..],
            )
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = find_byte(inner, b'>').ok_or(herr(H, "missing >"))?;
            // RFC 4475 §3.1.2.14: liberal about spaces inside the angle brackets.
            let uri = Uri::parse(inner[..gt].trim()).map_err(|e| herr(H, e.0))?;
            let params = parse_params(&inner[gt + 1..]).ok_or(herr(H, "bad parameters"))?;
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: parameters belong to the header; a URI with `?`, `,` or `;` parameters
            // of its own would need <> (RFC 3261 §20.10), so the first `;` ends the URI.
            let (u, p) = match split_once_byte(rest, b';') {
                Some((u, p)) => (u.trim(), p),
                None => (rest.trim(), ""),
            };
            if u.contains('?') || u.contains(',') || u.contains(char::is_whitespace) {
                return Err(herr(H, "URI with ? or , must be enclosed in <>"));
            }
            let uri = Uri::parse(u).map_err(|e| herr(H, e.0))?;
            let params = parse_params(p).ok_or(herr(H, "bad parameters"))?;
            Ok(NameAddr {
                display: None,
                uri,
                params,
            })
        }
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    /// A header parameter's value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).and_then(|p| p.value.as_deref())
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
        self.params.push(Param::new(name, value));
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        if let Some(d) = &self.display {
            s.push('"');
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push_str("\" ");
        }
        s.push('<');
        s.push_str(&self.uri.to_string());
        s.push('>');
        write_params(&mut s, &self.params);
        f.write_str(&s)
    }
}

/// One `Via` value (RFC 3261 §20.42).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper-cased (`UDP`, `TCP`, or anything else).
    pub transport: String,
    /// sent-by host.
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, ...).
    pub params: Vec<Param>,
}

/// RFC 3261 §8.1.1.7 magic cookie that starts every compliant branch.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

impl Via {
    /// Parses one Via value, tolerating LWS around `/`, `;` and `=` (RFC 4475 §3.1.1.1).
    pub fn parse(s: &str) -> Result<Via, HeaderError> {
        const H: &str = "Via";
        // Most Via values have no LWS to collapse; only those pay for the copy.
        let s = s.trim_ascii();
        let plain = !s.bytes().any(|b| matches!(b, b'\t' | b'\r' | b'\n')) && !s.contains("  ");
        let s = if plain {
            std::borrow::Cow::Borrowed(s)
        } else {
            std::borrow::Cow::Owned(collapse_lws(s))
        };
        let (sent, params) = match split_once_byte(&s, b';') {
            Some((a, b)) => (a, b),
            None => (&*s, ""),
        };
        let (proto, after) = split_once_byte(sent, b'/').ok_or(herr(H, "missing protocol"))?;
        let (ver, rest) = split_once_byte(after, b'/').ok_or(herr(H, "missing protocol"))?;
        let (proto, ver, rest) = (proto.trim_ascii(), ver.trim_ascii(), rest.trim_ascii());
        if !proto.eq_ignore_ascii_case("SIP") || ver != "2.0" {
            return Err(herr(H, "protocol is not SIP/2.0"));
        }
        let (transport, hostport) =
            split_once_byte(rest, b' ').ok_or(herr(H, "missing sent-by"))?;
        if !is_token(transport) {
            return Err(herr(H, "bad transport"));
        }
        // LWS is allowed around the `:` of sent-by (RFC 3261 §20.42 uses COLON).
        let hostport = if hostport.contains(' ') {
            std::borrow::Cow::Owned(hostport.replace(' ', ""))
        } else {
            std::borrow::Cow::Borrowed(hostport)
        };
        let (host, port) = parse_hostport(&hostport).map_err(|e| herr(H, e.0))?;
        let params = parse_params(params).ok_or(herr(H, "bad parameters"))?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// A parameter value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).and_then(|p| p.value.as_deref())
    }

    /// True if the named parameter is present (with or without a value).
    pub fn has_param(&self, name: &str) -> bool {
        find_param(&self.params, name).is_some()
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        if let Some(p) = self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value.map(str::to_owned);
        } else {
            self.params.push(Param::new(name, value));
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        write_params(&mut s, &self.params);
        f.write_str(&s)
    }
}

/// A `CSeq` value (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `NUMBER METHOD`.
    pub fn parse(s: &str) -> Result<CSeq, HeaderError> {
        const H: &str = "CSeq";
        let mut it = s.split_whitespace();
        let (n, m) = match (it.next(), it.next(), it.next()) {
            (Some(n), Some(m), None) => (n, m),
            _ => return Err(herr(H, "expected number and method")),
        };
        if n.is_empty() || n.len() > 10 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(herr(H, "bad sequence number"));
        }
        let seq: u64 = n.parse().map_err(|_| herr(H, "bad sequence number"))?;
        if seq >= 1 << 31 {
            return Err(herr(H, "sequence number not below 2**31"));
        }
        let method = Method::from_token(m).ok_or(herr(H, "bad method"))?;
        Ok(CSeq {
            seq: seq as u32,
            method,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses an unsigned decimal header value of at most `max`.
pub fn parse_u32(s: &str, max: u64) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    if v > max {
        return None;
    }
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws() {
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas;received=[2001:db8::9:255];rport",
        )
        .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.param("received"), Some("[2001:db8::9:255]"));
        assert!(v.has_param("rport"));
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse("\"caller\"<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display.as_deref(), Some("caller"));
        assert_eq!(a.tag(), Some("323"));
        let a = NameAddr::parse("sip:200@10.0.0.1;tag=abc").unwrap();
        assert_eq!(a.tag(), Some("abc"));
        assert!(NameAddr::parse("\"Mr J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        let a = NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").unwrap();
        assert_eq!(a.display.as_deref(), Some("Bell, Alexander"));
        assert_eq!(
            a.to_string(),
            "\"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=43"
        );
    }

    #[test]
    fn header_names_ignore_case() {
        // regression: unknown header names compared case-sensitively, so a lookup of
        // `Allow-Events` missed `allow-events` (Cisco IOS 15.5 capture)
        let mut h = Headers::default();
        h.push(HeaderName::parse("allow-events"), "telephone-event");
        assert_eq!(
            h.get(&HeaderName::Other("Allow-Events".into())),
            Some("telephone-event")
        );
        assert_eq!(HeaderName::Other("VIA".into()), HeaderName::Via);
        assert_ne!(HeaderName::Other("v".into()), HeaderName::Via);
        let set: std::collections::HashSet<HeaderName> = [
            HeaderName::parse("X-Foo"),
            HeaderName::parse("x-foo"),
            HeaderName::Other("Via".into()),
            HeaderName::Via,
        ]
        .into();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(CSeq::parse("8 INVITE").unwrap().seq, 8);
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
