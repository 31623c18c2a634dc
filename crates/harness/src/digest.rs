//! The client side of HTTP digest (RFC 7616, RFC 8760 for SIP): read a challenge, write an
//! `Authorization` value. The hash arithmetic is the registrar's own `compute_response`.

use registrar::{Algorithm, QopAuth, compute_response, ha1_md5, ha1_sha256};

/// One `WWW-Authenticate`/`Proxy-Authenticate` digest challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `algorithm` (MD5 when absent, RFC 3261 §22.4).
    pub algorithm: Algorithm,
    /// Whether `qop` offers `auth`.
    pub qop_auth: bool,
    /// `opaque`, echoed back as received.
    pub opaque: Option<String>,
    /// `stale=true`: the nonce expired but the credentials were right (RFC 7616 §3.3).
    pub stale: bool,
}

/// Splits `a=b, c="d, e"` into pairs, unquoting quoted values.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        if chars.peek().is_none() {
            return out;
        }
    }
}

impl Challenge {
    /// Parses one challenge value; `None` if it is not digest, lacks a nonce, or names an
    /// algorithm we cannot compute.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut realm = None;
        let mut nonce = None;
        let mut algorithm = Some(Algorithm::Md5);
        let mut qop_auth = false;
        let mut opaque = None;
        let mut stale = false;
        for (name, v) in params(rest) {
            match name.as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "algorithm" => algorithm = Algorithm::from_token(&v),
                "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
                "opaque" => opaque = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            algorithm: algorithm?,
            qop_auth,
            opaque,
            stale,
        })
    }
}

/// The `Authorization` value answering `challenge` for `method` on `uri`, with nonce count
/// `nc` and client nonce `cnonce` (used only when the challenge offers `qop=auth`).
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let ha1 = match challenge.algorithm {
        Algorithm::Sha256 => ha1_sha256(username, &challenge.realm, password),
        _ => ha1_md5(username, &challenge.realm, password),
    };
    let nc = format!("{nc:08x}");
    let qop = challenge.qop_auth.then_some(QopAuth { nc: &nc, cnonce });
    let response = compute_response(
        challenge.algorithm,
        &ha1,
        &challenge.nonce,
        method,
        uri,
        qop,
    );
    let mut value = format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
        challenge.realm,
        challenge.nonce,
        challenge.algorithm.as_str()
    );
    if challenge.qop_auth {
        value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &challenge.opaque {
        value.push_str(&format!(", opaque=\"{o}\""));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_switch_challenge() {
        let c = Challenge::parse("Digest realm=\"centralino.example\", qop=\"auth\", algorithm=SHA-256, nonce=\"abc,def\", opaque=\"xyz\", stale=true").unwrap();
        assert_eq!(c.realm, "centralino.example");
        assert_eq!(c.nonce, "abc,def");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(c.qop_auth);
        assert_eq!(c.opaque.as_deref(), Some("xyz"));
        assert!(c.stale);
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert_eq!(
            Challenge::parse("Digest realm=r, nonce=n")
                .unwrap()
                .algorithm,
            Algorithm::Md5
        );
    }

    #[test]
    fn rfc_2617_known_answer() {
        // RFC 2617 §3.5 example (HTTP, but the arithmetic is the same).
        let c = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            algorithm: Algorithm::Md5,
            qop_auth: true,
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".into()),
            stale: false,
        };
        let v = authorization(
            &c,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
    }
}
