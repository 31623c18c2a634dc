//! Character classes and small scanners shared by the header and URI parsers (RFC 3261 §25.1).

/// `token` characters: alphanum and `-.!%*_+`'~`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True if `s` is a non-empty token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Splits `s` at top-level occurrences of `sep`, ignoring separators inside double quotes
/// (with backslash escapes) and inside `<...>`. Returns `None` on an unterminated quote.
pub fn split_top_level(s: &str, sep: u8) -> Option<Vec<&str>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_angle = false;
    let mut i = 0;
    // Jump from one interesting byte to the next rather than stepping a state machine per byte.
    while let Some(off) = bytes
        .get(i..)?
        .iter()
        .position(|&b| b == sep || matches!(b, b'"' | b'<' | b'>'))
    {
        let at = i + off;
        match bytes[at] {
            b'"' => {
                let mut j = at + 1;
                loop {
                    match bytes.get(j) {
                        None => return None,
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ if !in_angle => {
                out.push(&s[start..at]);
                start = at + 1;
            }
            _ => {}
        }
        i = at + 1;
    }
    out.push(&s[start..]);
    Some(out)
}

/// `s.split_once(b)` for an ASCII byte, without the setup cost of a `char` searcher, which
/// dominates on the short strings headers are made of.
pub(crate) fn split_once_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, b)?;
    // `b` is ASCII, so `i` and `i + 1` are char boundaries
    Some((&s[..i], &s[i + 1..]))
}

/// Position of the first ASCII byte `b` in `s`.
pub(crate) fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|x| x == b)
}

/// A `;name=value` parameter; `value` is `None` for a flag parameter such as `;lr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Parameter name, as received.
    pub name: String,
    /// Value without surrounding quotes removed (quoted strings keep their quotes).
    pub value: Option<String>,
}

impl Param {
    /// Builds a parameter.
    pub fn new(name: impl Into<String>, value: Option<impl Into<String>>) -> Self {
        Param {
            name: name.into(),
            value: value.map(Into::into),
        }
    }
}

/// Parses `;a=b;c` parameter lists (the leading `;` already stripped from the first one is
/// accepted either way). LWS around `;` and `=` is allowed (RFC 3261 §7.3.1).
pub fn parse_params(s: &str) -> Option<Vec<Param>> {
    let mut out = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Some(out);
    }
    let s = s.strip_prefix(';').unwrap_or(s);
    for part in split_top_level(s, b';')? {
        let part = part.trim();
        if part.is_empty() {
            // `;;` is an empty parameter: invalid (RFC 4475 badinv01).
            return None;
        }
        match split_once_byte(part, b'=') {
            Some((n, v)) => {
                let n = n.trim();
                let v = v.trim();
                if !is_token(n) || v.is_empty() {
                    return None;
                }
                if v.starts_with('"') {
                    if v.len() < 2 || !v.ends_with('"') {
                        return None;
                    }
                } else if !v
                    .bytes()
                    .all(|b| is_token_byte(b) || matches!(b, b'[' | b']' | b':'))
                {
                    return None;
                }
                out.push(Param {
                    name: n.to_owned(),
                    value: Some(v.to_owned()),
                });
            }
            None => {
                if !is_token(part) {
                    return None;
                }
                out.push(Param {
                    name: part.to_owned(),
                    value: None,
                });
            }
        }
    }
    Some(out)
}

/// Finds a parameter by case-insensitive name.
pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Writes `;name[=value]` for each parameter.
pub fn write_params(out: &mut String, params: &[Param]) {
    for p in params {
        out.push(';');
        out.push_str(&p.name);
        if let Some(v) = &p.value {
            out.push('=');
            out.push_str(v);
        }
    }
}

/// Collapses every run of linear white space (SP, HT, CR, LF) into a single space.
pub fn collapse_lws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut ws = false;
    for c in s.chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            ws = true;
        } else {
            if ws && !out.is_empty() {
                out.push(' ');
            }
            ws = false;
            out.push(c);
        }
    }
    out
}
