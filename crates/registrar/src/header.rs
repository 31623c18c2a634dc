//! Parser for `Authorization` / `Proxy-Authorization` header values (RFC 3261 §25.1
//! `credentials`, RFC 7616 §3.4). Works on the value string only and never panics.

use std::borrow::Cow;

/// Longest header value we look at; real ones are a few hundred bytes.
pub(crate) const MAX_VALUE_LEN: usize = 8 * 1024;

/// Why a header value did not yield digest parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Empty, or another scheme such as `Basic`: no digest credentials at all.
    NotDigest,
    /// The `Digest` scheme with a broken parameter list or a repeated parameter.
    Malformed,
}

/// The parameters of a `Digest` credentials value, unquoted; unknown parameters are dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DigestParams<'a> {
    pub username: Option<Cow<'a, str>>,
    pub realm: Option<Cow<'a, str>>,
    pub nonce: Option<Cow<'a, str>>,
    pub uri: Option<Cow<'a, str>>,
    pub response: Option<Cow<'a, str>>,
    pub algorithm: Option<Cow<'a, str>>,
    pub cnonce: Option<Cow<'a, str>>,
    pub opaque: Option<Cow<'a, str>>,
    pub qop: Option<Cow<'a, str>>,
    pub nc: Option<Cow<'a, str>>,
    pub userhash: Option<Cow<'a, str>>,
}

/// Linear whitespace, including the CR LF of line folding (RFC 3261 §7.3.1).
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 §25.1 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_lws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
    }

    /// Takes a run of bytes matching `pred`; all such predicates accept ASCII only, so the
    /// slice boundaries are char boundaries.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    /// Reads a quoted-string after its opening quote, resolving `\x` quoted-pairs.
    fn quoted(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let rest = self.text.get(self.pos..).ok_or(ParseError::Malformed)?;
        let mut owned: Option<String> = None;
        let mut chars = rest.char_indices();
        while let Some((idx, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += idx + 1;
                    return Ok(match owned {
                        Some(s) => Cow::Owned(s),
                        None => Cow::Borrowed(rest.get(..idx).unwrap_or("")),
                    });
                }
                '\\' => {
                    let (_, escaped) = chars.next().ok_or(ParseError::Malformed)?;
                    owned
                        .get_or_insert_with(|| rest.get(..idx).unwrap_or("").to_owned())
                        .push(escaped);
                }
                c => {
                    if let Some(s) = owned.as_mut() {
                        s.push(c);
                    }
                }
            }
        }
        // No closing quote.
        Err(ParseError::Malformed)
    }
}

/// The field a (case-insensitive) parameter name fills, without allocating.
fn slot_for<'p, 'a>(
    params: &'p mut DigestParams<'a>,
    name: &str,
) -> Option<&'p mut Option<Cow<'a, str>>> {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    Some(if is("username") {
        &mut params.username
    } else if is("realm") {
        &mut params.realm
    } else if is("nonce") {
        &mut params.nonce
    } else if is("uri") {
        &mut params.uri
    } else if is("response") {
        &mut params.response
    } else if is("algorithm") {
        &mut params.algorithm
    } else if is("cnonce") {
        &mut params.cnonce
    } else if is("opaque") {
        &mut params.opaque
    } else if is("qop") {
        &mut params.qop
    } else if is("nc") {
        &mut params.nc
    } else if is("userhash") {
        &mut params.userhash
    } else {
        return None;
    })
}

/// Parses `Digest name=value, ...` with parameters in any order, names in any case, quoted or
/// token values, and line folding; returns [`ParseError::NotDigest`] for other schemes.
pub(crate) fn parse_digest(value: &str) -> Result<DigestParams<'_>, ParseError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ParseError::Malformed);
    }
    let mut cur = Cursor {
        text: value,
        pos: 0,
    };
    cur.skip_lws();
    let scheme = cur.take_while(is_token);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(ParseError::NotDigest);
    }
    let after_scheme = cur.pos;
    cur.skip_lws();
    if cur.peek().is_some() && cur.pos == after_scheme {
        // `Digestfoo` or `Digest"x"`: the scheme must be followed by whitespace.
        return Err(ParseError::NotDigest);
    }

    let mut params = DigestParams::default();
    let mut n_params = 0usize;
    loop {
        cur.skip_lws();
        match cur.peek() {
            None => break,
            // Tolerate empty list elements (`a=1,,b=2`), as RFC 3261 §7.3.1 lists allow.
            Some(b',') => {
                cur.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cur.take_while(is_token);
        if name.is_empty() {
            return Err(ParseError::Malformed);
        }
        cur.skip_lws();
        if cur.peek() != Some(b'=') {
            return Err(ParseError::Malformed);
        }
        cur.pos += 1;
        cur.skip_lws();
        let value = if cur.peek() == Some(b'"') {
            cur.pos += 1;
            cur.quoted()?
        } else {
            let token = cur.take_while(|b| is_token(b) || matches!(b, b'/' | b':' | b'@'));
            if token.is_empty() {
                return Err(ParseError::Malformed);
            }
            Cow::Borrowed(token)
        };
        cur.skip_lws();
        match cur.peek() {
            None | Some(b',') => {}
            Some(_) => return Err(ParseError::Malformed),
        }
        n_params += 1;
        if n_params > 64 {
            return Err(ParseError::Malformed);
        }
        // RFC 3261 §25.1 auth-param: unknown parameters are ignored.
        let Some(slot) = slot_for(&mut params, name) else {
            continue;
        };
        if slot.is_some() {
            // RFC 7616 §3.4: each directive at most once; two values would be ambiguous.
            return Err(ParseError::Malformed);
        }
        *slot = Some(value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        let got = match parse_digest(input) {
            Ok(p) => {
                let fields = [
                    ("username", &p.username),
                    ("realm", &p.realm),
                    ("nonce", &p.nonce),
                    ("uri", &p.uri),
                    ("response", &p.response),
                    ("algorithm", &p.algorithm),
                    ("cnonce", &p.cnonce),
                    ("opaque", &p.opaque),
                    ("qop", &p.qop),
                    ("nc", &p.nc),
                    ("userhash", &p.userhash),
                ];
                fields
                    .iter()
                    .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name}={v}")))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(got, expect, "input: {input:?}");
    }

    #[test]
    fn parses_variants() {
        let cases: &[(&str, &str)] = &[
            (
                r#"Digest username="bob", realm="biloxi.com", nonce="abc", uri="sip:bob@biloxi.com", response="00ff", algorithm=MD5, cnonce="0a4f113b", opaque="5ccc", qop=auth, nc=00000001"#,
                "username=bob realm=biloxi.com nonce=abc uri=sip:bob@biloxi.com response=00ff algorithm=MD5 cnonce=0a4f113b opaque=5ccc qop=auth nc=00000001",
            ),
            // Any order, names in any case, token values, extra whitespace and folding.
            (
                "  dIgEsT\tNC=00000002 ,\r\n  QOP=\"auth\",RESPONSE = \"aa\" ,Username=bob,\r\n\tfoo=\"bar, baz\", x-unknown=1",
                "username=bob response=aa qop=auth nc=00000002",
            ),
            // Escaped quotes and backslashes, and UTF-8.
            (
                r#"Digest username="a\"b\\c", realm="réalm""#,
                r#"username=a"b\c realm=réalm"#,
            ),
            (r#"Digest realm="""#, "realm="),
            ("Digest", ""),
            ("Digest ,, username=x,", "username=x"),
            ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "NotDigest"),
            ("", "NotDigest"),
            ("Digestusername=x", "NotDigest"),
            (r#"Digest username="x"#, "Malformed"),
            (r#"Digest username="x\"#, "Malformed"),
            ("Digest username", "Malformed"),
            ("Digest username=", "Malformed"),
            ("Digest username=a b", "Malformed"),
            ("Digest =a", "Malformed"),
            ("Digest username=a, USERNAME=b", "Malformed"),
            (r#"Digest username="a"x"#, "Malformed"),
        ];
        for (input, expect) in cases {
            check(input, expect);
        }
    }

    #[test]
    fn borrows_when_no_escapes() {
        let p = parse_digest(r#"Digest username="bob", nonce=abc"#).unwrap();
        assert!(matches!(p.username, Some(Cow::Borrowed("bob"))));
        assert!(matches!(p.nonce, Some(Cow::Borrowed("abc"))));
    }

    #[test]
    fn refuses_oversized_values() {
        let long = format!("Digest username=\"{}\"", "a".repeat(MAX_VALUE_LEN));
        assert_eq!(parse_digest(&long), Err(ParseError::Malformed));
    }
}
