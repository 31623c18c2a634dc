//! Requests and responses: parsing from bytes (datagram or one framed stream message),
//! semantic validation, printing, and building responses (RFC 3261 §7, §8.2.6).

use crate::header::{CSeq, Header, HeaderError, HeaderName, Headers, NameAddr, Via, parse_u32};
use crate::method::Method;
use crate::syntax::{is_token, split_once_byte, split_top_level};
use crate::uri::Uri;

/// Largest message we accept on any transport. A datagram is at most 64 KiB anyway.
pub const MAX_MESSAGE_SIZE: usize = 65_535;
/// Most header lines we accept in one message.
pub const MAX_HEADERS: usize = 256;

/// A SIP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Method from the request line.
    pub method: Method,
    /// Request-URI as received (parsed lazily by [`Request::uri`]).
    pub uri_raw: String,
    /// Protocol version string, normally `SIP/2.0`.
    pub version: String,
    /// Header lines.
    pub headers: Headers,
    /// Message body.
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (may be empty, may be UTF-8).
    pub reason: String,
    /// Header lines.
    pub headers: Headers,
    /// Message body.
    pub body: Vec<u8>,
}

/// Either kind of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// What kind of syntax problem stopped a parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Larger than [`MAX_MESSAGE_SIZE`] or more than [`MAX_HEADERS`] lines.
    TooLarge,
    /// No complete header section.
    Incomplete,
    /// The start line is neither a request line nor a status line.
    BadStartLine,
    /// A header line has no colon or a bad name.
    BadHeaderLine,
    /// Content-Length is not a number, is repeated, or exceeds the bytes present.
    BadContentLength,
}

/// A message that could not be parsed. `partial` holds what was read when the start line and
/// headers were fine, so a request can still be answered 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// Category.
    pub kind: ParseErrorKind,
    /// Human-readable reason, suitable for a `Warning` header or a log line.
    pub reason: &'static str,
    /// The message as far as it could be read, if the headers were intact.
    pub partial: Option<Box<Message>>,
}

fn perr(kind: ParseErrorKind, reason: &'static str) -> ParseError {
    ParseError {
        kind,
        reason,
        partial: None,
    }
}

/// A semantic problem found by [`Request::validate`]: the status to answer and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct Invalid {
    /// Status code to answer (400, 416, 505 ...).
    pub status: u16,
    /// Reason text for the Warning header and logs.
    pub reason: String,
}

impl From<HeaderError> for Invalid {
    fn from(e: HeaderError) -> Self {
        Invalid {
            status: 400,
            reason: e.to_string(),
        }
    }
}

fn invalid(status: u16, reason: impl Into<String>) -> Invalid {
    Invalid {
        status,
        reason: reason.into(),
    }
}

/// How the bytes arrived: this decides what a missing or too-large Content-Length means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One UDP datagram: a missing Content-Length means "the rest", extra bytes are ignored.
    Datagram,
    /// One message already framed by [`crate::StreamFramer`].
    Stream,
}

/// Splits `bytes` into lines ending in LF (CR before LF removed). Returns the lines of the
/// header section and the offset of the body, or `None` if no empty line was found.
fn header_lines(bytes: &[u8]) -> Option<(Vec<&[u8]>, usize)> {
    let mut lines = Vec::with_capacity(16);
    let mut pos = 0;
    while pos < bytes.len() {
        let nl = bytes[pos..].iter().position(|&b| b == b'\n')?;
        let mut line = &bytes[pos..pos + nl];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        pos += nl + 1;
        if line.is_empty() {
            return Some((lines, pos));
        }
        lines.push(line);
    }
    None
}

/// Every line of `bytes`, which ends in LF and holds no empty line (see [`header_lines`]).
fn header_lines_to_end(bytes: &[u8]) -> Vec<&[u8]> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect()
}

/// Parses one message. Leading CRLFs (keep-alives, RFC 3261 §7.5) are skipped.
pub fn parse(bytes: &[u8], framing: Framing) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(perr(ParseErrorKind::TooLarge, "message too large"));
    }
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    let (lines, body_at) = match (header_lines(bytes), framing) {
        (Some(found), _) => found,
        // DEVIATION(RFC 3261 §7): a datagram is complete by definition, so a header section that
        // runs to the end of the datagram (last line ended, no empty line, as in RFC 4475
        // baddn.dat) is read as headers without a body rather than dropped unanswered.
        (None, Framing::Datagram) if bytes.ends_with(b"\n") => {
            (header_lines_to_end(bytes), bytes.len())
        }
        (None, _) => return Err(perr(ParseErrorKind::Incomplete, "no end of header section")),
    };
    let (first, rest) = lines
        .split_first()
        .ok_or(perr(ParseErrorKind::Incomplete, "empty message"))?;
    if rest.len() > MAX_HEADERS {
        return Err(perr(ParseErrorKind::TooLarge, "too many header lines"));
    }
    // A reason phrase in Latin-1 (seen from older gateways) must not make us drop a final
    // response, so the start line is read leniently: non-UTF-8 bytes become U+FFFD (never
    // valid in a URI, so such a Request-URI fails `validate` with a 400 that can be sent).
    let first = match std::str::from_utf8(first) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(first),
    };
    let first = first.as_ref();

    // Unfold continuation lines (RFC 3261 §7.3.1) and split name from value. Each value is
    // built once, already trimmed, and continuation lines join it with a single SP.
    let mut headers = Headers(Vec::with_capacity(rest.len()));
    let mut current: Option<(HeaderName, String)> = None;
    // UTF-8 is the norm: check the header section once; only a section with other bytes pays
    // for a check (and, where needed, a lossy conversion) per line.
    let head_text = std::str::from_utf8(bytes.get(..body_at).unwrap_or(bytes)).ok();
    for line in rest {
        // `line` is a sub-slice of `bytes` bounded by ASCII CR/LF, so its offsets are char
        // boundaries of `head_text`.
        let offset = line.as_ptr() as usize - bytes.as_ptr() as usize;
        let text = match head_text.and_then(|t| t.get(offset..offset + line.len())) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(lossy_same_size(line)),
        };
        if text.starts_with([' ', '\t']) {
            let (_, v) = current.as_mut().ok_or(perr(
                ParseErrorKind::BadHeaderLine,
                "continuation line before any header",
            ))?;
            let more = text.trim_ascii();
            if !more.is_empty() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(more);
            }
            continue;
        }
        if let Some((n, v)) = current.take() {
            headers.0.push(Header { name: n, value: v });
        }
        let (name, value) = split_once_byte(&text, b':').ok_or(perr(
            ParseErrorKind::BadHeaderLine,
            "header line without colon",
        ))?;
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(perr(ParseErrorKind::BadHeaderLine, "bad header name"));
        }
        current = Some((HeaderName::parse(name), value.trim_ascii().to_owned()));
    }
    if let Some((n, v)) = current.take() {
        headers.0.push(Header { name: n, value: v });
    }

    // RFC 3261 §7.1: "SIP" is case-insensitive. Like the request line (below), the status line
    // tolerates runs of SP/HT between its elements.
    let status_line = first
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    let mut msg = if let Some(after) = first.get(4..).filter(|_| status_line) {
        let (ver, rest) = after.split_once([' ', '\t']).unwrap_or((after, ""));
        let rest = rest.trim_start_matches([' ', '\t']);
        let (code, reason) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        if ver != "2.0" {
            return Err(perr(
                ParseErrorKind::BadStartLine,
                "unsupported SIP version in status line",
            ));
        }
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(perr(ParseErrorKind::BadStartLine, "bad status code"));
        }
        // three ASCII digits, so the parse cannot fail
        let status: u16 = code.parse().unwrap_or(0);
        if !(100..=699).contains(&status) {
            return Err(perr(
                ParseErrorKind::BadStartLine,
                "status code out of range",
            ));
        }
        Message::Response(Response {
            status,
            reason: reason.trim().to_owned(),
            headers,
            body: Vec::new(),
        })
    } else {
        // DEVIATION(RFC 3261 §25.1): several SP between elements and trailing SP are tolerated
        // (RFC 4475 §3.1.2.9/10 allow it); we never re-emit the request line as received.
        // The Request-URI is everything between the method and the version, so a URI with
        // embedded LWS (RFC 4475 §3.1.2.8) still parses here and is refused with 400 by
        // `Request::validate`, which has the headers needed to answer.
        let trimmed = first.trim_matches([' ', '\t']);
        let (method, rest) = trimmed.split_once([' ', '\t']).unwrap_or((trimmed, ""));
        let (uri, version) = rest.rsplit_once([' ', '\t']).unwrap_or(("", rest));
        let uri = uri.trim_matches([' ', '\t']);
        if uri.is_empty() {
            return Err(perr(
                ParseErrorKind::BadStartLine,
                "request line must be METHOD URI VERSION",
            ));
        }
        let method =
            Method::from_token(method).ok_or(perr(ParseErrorKind::BadStartLine, "bad method"))?;
        if !version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
        {
            return Err(perr(
                ParseErrorKind::BadStartLine,
                "bad version in request line",
            ));
        }
        // RFC 3261 §7.1: "SIP/2.0" in any case is version 2.0; store it in the case we print.
        let version = if version.eq_ignore_ascii_case("SIP/2.0") {
            "SIP/2.0"
        } else {
            version
        };
        Message::Request(Request {
            method,
            uri_raw: uri.to_owned(),
            version: version.to_owned(),
            headers,
            body: Vec::new(),
        })
    };

    let available = &bytes[body_at..];
    let headers = msg.headers();
    let body_len = match headers.count(&HeaderName::ContentLength) {
        0 => match framing {
            Framing::Datagram => available.len(),
            Framing::Stream => 0,
        },
        1 => match headers
            .get(&HeaderName::ContentLength)
            .and_then(|v| parse_u32(v, MAX_MESSAGE_SIZE as u64))
        {
            Some(n) => n as usize,
            None => return Err(with_partial(msg, "bad Content-Length")),
        },
        _ => return Err(with_partial(msg, "more than one Content-Length")),
    };
    if body_len > available.len() {
        return Err(with_partial(msg, "Content-Length larger than the message"));
    }
    *msg.body_mut() = available[..body_len].to_vec();
    Ok(msg)
}

fn with_partial(msg: Message, reason: &'static str) -> ParseError {
    ParseError {
        kind: ParseErrorKind::BadContentLength,
        reason,
        partial: Some(Box::new(msg)),
    }
}

fn validate_common(h: &Headers) -> Result<(), Invalid> {
    // One pass counts every header that is mandatory or may appear only once.
    const COUNTED: [HeaderName; 8] = [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::Via,
        HeaderName::MaxForwards,
        HeaderName::ContentType,
        HeaderName::Expires,
    ];
    let mut counts = [0usize; COUNTED.len()];
    for header in &h.0 {
        // `parse` always maps these names to their variants, never to `Other`.
        let i = match header.name {
            HeaderName::From => 0,
            HeaderName::To => 1,
            HeaderName::CallId => 2,
            HeaderName::CSeq => 3,
            HeaderName::Via => 4,
            HeaderName::MaxForwards => 5,
            HeaderName::ContentType => 6,
            HeaderName::Expires => 7,
            _ => continue,
        };
        counts[i] += 1;
    }
    // RFC 3261 §8.1.1: From, To, Call-ID, CSeq and Via are mandatory.
    for (name, n) in COUNTED.iter().zip(counts).take(5) {
        if n == 0 {
            return Err(invalid(400, format!("missing {name} header")));
        }
    }
    // RFC 3261 §7.3.1 and Table 2: all but Via may appear only once.
    for (name, n) in COUNTED.iter().zip(counts) {
        if n > 1 && *name != HeaderName::Via {
            return Err(invalid(400, format!("more than one {name} header")));
        }
    }
    for name in [HeaderName::From, HeaderName::To] {
        let v = h.get(&name).unwrap_or_default();
        if let Err(e) = NameAddr::parse(v) {
            // Explain the failure: a second value (RFC 4475 multi01) or an open quote.
            let vals = split_top_level(v, b',')
                .ok_or_else(|| invalid(400, format!("unterminated quote in {name}")))?;
            if vals.len() > 1 {
                return Err(invalid(400, format!("more than one value in {name}")));
            }
            return Err(e.into());
        }
    }
    let call_id = h.get(&HeaderName::CallId).unwrap_or_default();
    if call_id.is_empty() || call_id.contains(char::is_whitespace) || call_id.contains(',') {
        return Err(invalid(400, "bad Call-ID header"));
    }
    let vias = h
        .values(&HeaderName::Via)
        .ok_or_else(|| invalid(400, "unterminated quote in Via"))?;
    if vias.is_empty() {
        return Err(invalid(400, "empty Via header"));
    }
    for v in vias {
        Via::parse(v)?;
    }
    if let Some(mf) = h.get(&HeaderName::MaxForwards) {
        parse_u32(mf, 255).ok_or_else(|| invalid(400, "bad Max-Forwards header"))?;
    }
    if let Some(e) = h.get(&HeaderName::Expires) {
        parse_u32(e, u32::MAX as u64).ok_or_else(|| invalid(400, "bad Expires header"))?;
    }
    Ok(())
}

impl Request {
    /// Builds a request with the given start line and no headers.
    pub fn new(method: Method, uri: &Uri) -> Self {
        Request {
            method,
            uri_raw: uri.to_string(),
            version: "SIP/2.0".into(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// Parses the Request-URI.
    pub fn uri(&self) -> Result<Uri, crate::uri::UriError> {
        Uri::parse(&self.uri_raw)
    }

    /// Checks what a UAS must check before acting (RFC 3261 §8.2): version, mandatory and
    /// single-valued headers, CSeq method, URI syntax and scheme.
    pub fn validate(&self) -> Result<(), Invalid> {
        // RFC 3261 §7.1: the version string is case-insensitive.
        if !self.version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(invalid(
                505,
                format!("version {} not supported", self.version),
            ));
        }
        let uri = self
            .uri()
            .map_err(|e| invalid(400, format!("bad Request-URI: {}", e.0)))?;
        validate_common(&self.headers)?;
        let cseq = CSeq::parse(self.headers.get(&HeaderName::CSeq).unwrap_or_default())?;
        if cseq.method != self.method {
            return Err(invalid(
                400,
                "CSeq method does not match the request method",
            ));
        }
        if let Some(contacts) = self.headers.get(&HeaderName::Contact)
            && contacts.trim() != "*"
        {
            for c in self
                .headers
                .values(&HeaderName::Contact)
                .ok_or_else(|| invalid(400, "unterminated quote in Contact"))?
            {
                NameAddr::parse(c)?;
            }
        }
        if let Some(date) = self.headers.get(&HeaderName::Date) {
            // RFC 3261 §20.17 / RFC 4475 §3.1.2.12: SIP-date is rfc1123-date, always in GMT.
            if !is_sip_date(date) {
                return Err(invalid(400, "bad Date header"));
            }
        }
        if let Uri::Other { scheme, .. } = &uri {
            return Err(invalid(416, format!("URI scheme {scheme} not supported")));
        }
        Ok(())
    }

    /// The top Via, parsed.
    pub fn top_via(&self) -> Option<Via> {
        self.headers.top_via()
    }

    /// The CSeq, parsed.
    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.cseq()
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&str> {
        self.headers.get(&HeaderName::CallId)
    }

    /// The From header, parsed.
    pub fn from(&self) -> Option<NameAddr> {
        self.headers.name_addr(&HeaderName::From)
    }

    /// The To header, parsed.
    pub fn to(&self) -> Option<NameAddr> {
        self.headers.name_addr(&HeaderName::To)
    }

    /// Builds a response that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
    /// `to_tag` is added to To if it has none (never on 100 Trying).
    pub fn make_response(&self, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::default();
        for h in &self.headers.0 {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.0.push(h.clone())
                }
                HeaderName::To => {
                    let mut value = h.value.clone();
                    if let (Some(tag), Ok(na)) = (to_tag, NameAddr::parse(&h.value))
                        && na.tag().is_none()
                        && status != 100
                    {
                        value.push_str(";tag=");
                        value.push_str(tag);
                    }
                    headers.push(HeaderName::To, value);
                }
                HeaderName::Timestamp if status == 100 => headers.0.push(h.clone()),
                _ => {}
            }
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// Prints the request (Content-Length always recomputed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let line = format!("{} {} SIP/2.0\r\n", self.method, self.uri_raw);
        print(line, &self.headers, &self.body)
    }
}

/// True if `s` is an RFC 1123 date as SIP uses it: `Wed, 27 Dec 2023 20:02:55 GMT`
/// (RFC 3261 §25.1 `rfc1123-date`; names compared case-insensitively).
// DEVIATION(RFC 3261 §25.1): a one-digit day is accepted (RFC 1123 §5.2.14 allows it and
// some phones send it); we do not use Date, so only a clearly wrong one (RFC 4475 baddate:
// a zone other than GMT) is refused.
fn is_sip_date(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    let Some((day, rest)) = s.split_once(',') else {
        return false;
    };
    let mut it = rest.split_ascii_whitespace();
    let (Some(d), Some(mon), Some(year), Some(time), Some(zone), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return false;
    };
    let mut hms = time.split(':');
    DAYS.iter().any(|x| x.eq_ignore_ascii_case(day.trim()))
        && (digits(d, 2) || digits(d, 1))
        && MONTHS.iter().any(|x| x.eq_ignore_ascii_case(mon))
        && digits(year, 4)
        && (0..3).all(|_| hms.next().is_some_and(|t| digits(t, 2)))
        && hms.next().is_none()
        && zone == "GMT"
}

impl Response {
    /// Checks a received response: mandatory headers parse (RFC 3261 §8.1.3).
    pub fn validate(&self) -> Result<(), Invalid> {
        validate_common(&self.headers)?;
        CSeq::parse(self.headers.get(&HeaderName::CSeq).unwrap_or_default())?;
        Ok(())
    }

    /// The top Via, parsed.
    pub fn top_via(&self) -> Option<Via> {
        self.headers.top_via()
    }

    /// The CSeq, parsed.
    pub fn cseq(&self) -> Option<CSeq> {
        self.headers.cseq()
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Option<&str> {
        self.headers.get(&HeaderName::CallId)
    }

    /// The From header, parsed.
    pub fn from(&self) -> Option<NameAddr> {
        self.headers.name_addr(&HeaderName::From)
    }

    /// The To header, parsed.
    pub fn to(&self) -> Option<NameAddr> {
        self.headers.name_addr(&HeaderName::To)
    }

    /// Prints the response (Content-Length always recomputed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let line = format!("SIP/2.0 {} {}\r\n", self.status, self.reason);
        print(line, &self.headers, &self.body)
    }
}

fn print(start: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = start.into_bytes();
    out.reserve(512 + body.len());
    for h in &headers.0 {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

impl Message {
    /// The headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    fn body_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Message::Request(r) => &mut r.body,
            Message::Response(r) => &mut r.body,
        }
    }

    /// Prints the message.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` as a datagram and renders the outcome in one line:
    /// `request METHOD URI -> valid|NNN reason`, `response NNN -> ...`, or `error Kind: reason`
    /// (with `+partial` when a 400 can still be answered).
    fn check(input: &str, expect: &str) {
        let got = match parse(input.as_bytes(), Framing::Datagram) {
            Ok(Message::Request(r)) => {
                let v = r
                    .validate()
                    .map_or_else(|e| e.to_string(), |()| "valid".into());
                format!("request {} {} -> {v}", r.method, r.uri_raw)
            }
            Ok(Message::Response(r)) => {
                let v = r
                    .validate()
                    .map_or_else(|e| e.to_string(), |()| "valid".into());
                format!("response {} -> {v}", r.status)
            }
            Err(e) => format!(
                "error {:?}: {}{}",
                e.kind,
                e.reason,
                if e.partial.is_some() { " +partial" } else { "" }
            ),
        };
        assert_eq!(got, expect, "input {input:?}");
    }

    const HEADERS: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\n";

    #[test]
    fn request_lines() {
        let m = |line: &str, cseq: &str| {
            format!("{line}\r\n{HEADERS}CSeq: 1 {cseq}\r\nContent-Length: 0\r\n\r\n")
        };
        check(
            &m("OPTIONS sip:a@b SIP/2.0", "OPTIONS"),
            "request OPTIONS sip:a@b -> valid",
        );
        check(
            &m("OPTIONS  sip:a@b \t SIP/2.0  ", "OPTIONS"),
            "request OPTIONS sip:a@b -> valid",
        );
        // regression: embedded LWS in the Request-URI was a parse error nobody could answer
        check(
            &m("INVITE sip:user@example.com; lr SIP/2.0", "INVITE"),
            "request INVITE sip:user@example.com; lr -> 400 bad Request-URI: empty URI or forbidden character",
        );
        check(
            &m("INVITE <sip:a@b> SIP/2.0", "INVITE"),
            "request INVITE <sip:a@b> -> 400 bad Request-URI: bad scheme",
        );
        // regression: `sip/2.0` is SIP/2.0 (RFC 3261 §7.1), not 505
        check(
            &m("OPTIONS sip:a@b sip/2.0", "OPTIONS"),
            "request OPTIONS sip:a@b -> valid",
        );
        check(
            &m("OPTIONS sip:a@b SIP/7.0", "OPTIONS"),
            "request OPTIONS sip:a@b -> 505 version SIP/7.0 not supported",
        );
        check(
            &m("OPTIONS SIP/2.0", "OPTIONS"),
            "error BadStartLine: request line must be METHOD URI VERSION",
        );
        check(
            &m("OPTIONS sip:a@b HTTP/1.1", "OPTIONS"),
            "error BadStartLine: bad version in request line",
        );
        // regression: a user part holding `?` (RFC 4475 intmeth) was split as URI headers
        check(
            &m("OPTIONS sip:a?b@c SIP/2.0", "OPTIONS"),
            "request OPTIONS sip:a?b@c -> valid",
        );
        check(
            &m("OPTIONS nobody:x SIP/2.0", "OPTIONS"),
            "request OPTIONS nobody:x -> 416 URI scheme nobody not supported",
        );
    }

    #[test]
    fn status_lines() {
        let m =
            |line: &str| format!("{line}\r\n{HEADERS}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        check(&m("SIP/2.0 180 Ringing"), "response 180 -> valid");
        check(&m("SIP/2.0 100 "), "response 100 -> valid");
        check(&m("SIP/2.0 100"), "response 100 -> valid");
        check(&m("sip/2.0 200 OK"), "response 200 -> valid");
        check(&m("SIP/2.0  200  OK"), "response 200 -> valid");
        check(
            &m("SIP/2.0 4294967301 x"),
            "error BadStartLine: bad status code",
        );
        check(
            &m("SIP/2.0 099 x"),
            "error BadStartLine: status code out of range",
        );
        check(
            &m("SIP/3.0 200 OK"),
            "error BadStartLine: unsupported SIP version in status line",
        );
    }

    #[test]
    fn header_sections() {
        let m =
            |extra: &str| format!("OPTIONS sip:a@b SIP/2.0\r\n{HEADERS}CSeq: 1 OPTIONS\r\n{extra}");
        check(
            &m("Content-Length: 0\r\n\r\n"),
            "request OPTIONS sip:a@b -> valid",
        );
        // regression: a datagram without the empty line after the headers (RFC 4475 baddn)
        check(
            &m("Content-Length: 0\r\n"),
            "request OPTIONS sip:a@b -> valid",
        );
        check(
            &m("Content-Length: 0"),
            "error Incomplete: no end of header section",
        );
        check(
            &m("Content-Length: 5\r\n\r\nab"),
            "error BadContentLength: Content-Length larger than the message +partial",
        );
        check(
            &m("l: 1\r\nl: 1\r\n\r\nab"),
            "error BadContentLength: more than one Content-Length +partial",
        );
        // RFC 3261 §20.17: Date must be rfc1123-date in GMT (RFC 4475 baddate)
        check(
            &m("Date: Fri, 01 Jan 2010 16:00:00 EST\r\n\r\n"),
            "request OPTIONS sip:a@b -> 400 bad Date header",
        );
        check(
            &m("Date: Fri, 01 Jan 2010 16:00:00 GMT\r\n\r\n"),
            "request OPTIONS sip:a@b -> valid",
        );
        check(
            &m("Date: Fri, 1 Jan 2010 16:00 GMT\r\n\r\n"),
            "request OPTIONS sip:a@b -> 400 bad Date header",
        );
        check(
            &m("Date: Fri, 1 Jan 2010 16:00:00 GMT\r\n\r\n"),
            "request OPTIONS sip:a@b -> valid",
        );
    }

    #[test]
    fn non_utf8_start_lines() {
        // regression: a Latin-1 reason phrase ("Besetzt" with a Latin-1 umlaut elsewhere) made
        // the whole response unparseable, so the transaction never saw its final response.
        let response = [
            &b"SIP/2.0 486 Gesch\xe4ftlich besetzt\r\n"[..],
            HEADERS.as_bytes(),
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        match parse(&response, Framing::Datagram) {
            Ok(Message::Response(r)) => {
                assert_eq!(
                    (r.status, r.reason.as_str()),
                    (486, "Gesch\u{fffd}ftlich besetzt")
                );
                assert_eq!(r.validate(), Ok(()));
            }
            other => panic!("expected a response, got {other:?}"),
        }
        // A Request-URI with such bytes is answered 400 instead of being dropped unanswered.
        let request = [
            &b"INVITE sip:j\xfcrg@example.com SIP/2.0\r\n"[..],
            HEADERS.as_bytes(),
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        match parse(&request, Framing::Datagram) {
            Ok(Message::Request(r)) => assert_eq!(r.validate().map_err(|e| e.status), Err(400)),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn folded_last_header_is_trimmed() {
        // regression: the last header's value kept the space a continuation line added
        let input = b"OPTIONS sip:a@b SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 1 OPTIONS\nVia:\n SIP/2.0/UDP h;branch=z9hG4bK1\n\n";
        let msg = parse(input, Framing::Datagram).unwrap();
        assert_eq!(
            msg.headers().get(&HeaderName::Via),
            Some("SIP/2.0/UDP h;branch=z9hG4bK1")
        );
    }
}

/// Text of `bytes` with every byte that is not part of valid UTF-8 replaced by `?`.
///
/// DEVIATION(RFC 3261 §25.1): header values are kept as text; a Latin-1 display name loses
/// its accented letters. Unlike U+FFFD (3 bytes), `?` keeps the size, so copying such a header
/// into a response or a B-leg request can never push it past a datagram's limit.
fn lossy_same_size(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push('?');
        }
    }
    out
}

#[cfg(test)]
mod lossy_tests {
    use super::lossy_same_size;

    #[test]
    fn invalid_bytes_become_one_question_mark_each() {
        assert_eq!(lossy_same_size(b"Jos\xe9 \xc3\xa9"), "Jos? \u{e9}");
        let latin1 = vec![0xe9u8; 1000];
        assert_eq!(lossy_same_size(&latin1).len(), 1000);
    }
}
