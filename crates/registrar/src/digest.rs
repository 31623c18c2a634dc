//! Digest hash arithmetic (RFC 7616 §3.4.1–§3.4.3, RFC 2617 §3.2.2.1), with no nonce or
//! replay checks: that is the job of [`crate::DigestAuthority`].

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// A digest hash algorithm the registrar can verify (RFC 7616 §3.2, RFC 8760 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `algorithm=MD5`, also the default when a client sends no `algorithm` (RFC 3261 §22.4).
    Md5,
    /// `algorithm=SHA-256` (RFC 7616 §3.2, RFC 8760 §2.2).
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter, e.g. `SHA-256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm` parameter value, ignoring ASCII case; `None` if not supported.
    pub fn from_token(token: &str) -> Option<Algorithm> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Length of this algorithm's digest in lowercase hex characters.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// A lowercase hex digest held on the stack, so verification does not allocate for hashing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HexDigest {
    buf: [u8; 64],
    len: usize,
}

impl std::fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // HA1 values are password equivalents: never print them.
        f.write_str("HexDigest(..)")
    }
}

impl HexDigest {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // `len` is 32 or 64 by construction, never above the buffer size.
        &self.buf[..self.len]
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only lowercase hex digits are ever written into `buf`.
        std::str::from_utf8(self.as_bytes()).expect("HexDigest holds only ASCII hex digits")
    }

    /// Parses a hex digest of the right length for `algorithm`, normalising to lowercase.
    pub(crate) fn parse(algorithm: Algorithm, hex: &str) -> Option<HexDigest> {
        let hex = hex.as_bytes();
        if hex.len() != algorithm.hex_len() || !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut buf = [0u8; 64];
        for (out, b) in buf.iter_mut().zip(hex) {
            *out = b.to_ascii_lowercase();
        }
        Some(HexDigest {
            buf,
            len: hex.len(),
        })
    }

    fn from_raw(raw: &[u8]) -> HexDigest {
        let mut buf = [0u8; 64];
        let len = write_hex(raw, &mut buf);
        HexDigest { buf, len }
    }
}

/// Writes `raw` as lowercase hex into `out`, returning the number of bytes written.
pub(crate) fn write_hex(raw: &[u8], out: &mut [u8]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    for (pair, b) in out.chunks_exact_mut(2).zip(raw) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
        n += 2;
    }
    n
}

/// Hashes `parts` joined by `:` with `algorithm` and returns the lowercase hex digest.
pub(crate) fn hash_joined(algorithm: Algorithm, parts: &[&[u8]]) -> HexDigest {
    fn run<D: md5::Digest>(mut hasher: D, parts: &[&[u8]]) -> HexDigest {
        for (idx, part) in parts.iter().enumerate() {
            if idx > 0 {
                hasher.update(b":");
            }
            hasher.update(part);
        }
        HexDigest::from_raw(&hasher.finalize())
    }
    match algorithm {
        Algorithm::Md5 => run(Md5::new(), parts),
        Algorithm::Sha256 => run(Sha256::new(), parts),
    }
}

pub(crate) fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> HexDigest {
    hash_joined(
        algorithm,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// Computes HA1 = MD5(username:realm:password) as lowercase hex, for storing instead of a password.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    ha1(Algorithm::Md5, username, realm, password)
        .as_str()
        .to_owned()
}

/// Computes HA1 = SHA-256(username:realm:password) as lowercase hex, for storing instead of a password.
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    ha1(Algorithm::Sha256, username, realm, password)
        .as_str()
        .to_owned()
}

/// The `qop=auth` part of a digest response: nonce count and client nonce (RFC 7616 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopAuth<'a> {
    /// The `nc` value exactly as sent, eight hex digits such as `00000001`.
    pub nc: &'a str,
    /// The `cnonce` value as sent, unquoted.
    pub cnonce: &'a str,
}

pub(crate) fn response_hex(
    algorithm: Algorithm,
    ha1: &[u8],
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<QopAuth<'_>>,
) -> HexDigest {
    // RFC 7616 §3.4.3: A2 = Method ":" request-uri for qop=auth or no qop.
    let ha2 = hash_joined(algorithm, &[method.as_bytes(), uri.as_bytes()]);
    match qop {
        // RFC 7616 §3.4.1: KD(H(A1), nonce:nc:cnonce:qop:H(A2)).
        Some(QopAuth { nc, cnonce }) => hash_joined(
            algorithm,
            &[
                ha1,
                nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                b"auth",
                ha2.as_bytes(),
            ],
        ),
        // RFC 2617 §3.2.2.1 (RFC 2069 compatibility): KD(H(A1), nonce:H(A2)).
        None => hash_joined(algorithm, &[ha1, nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Computes the expected `response` value (lowercase hex) from HA1 hex, for known-answer tests and clients.
pub fn compute_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<QopAuth<'_>>,
) -> String {
    response_hex(algorithm, ha1.as_bytes(), nonce, method, uri, qop)
        .as_str()
        .to_owned()
}

/// Compares a client's hex `response` with the expected lowercase hex in time independent of
/// where they differ (lengths are public: they follow from the algorithm).
pub(crate) fn hex_eq_constant_time(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let mut diff = 0u8;
    for (e, g) in expected.iter().zip(given) {
        // Fold ASCII uppercase to lowercase without branching: sets bit 0x20 for letters only.
        let is_upper = u8::from(g.is_ascii_uppercase());
        diff |= e ^ (g | (is_upper << 5));
    }
    diff == 0
}

/// Why stored digest credentials could not be built from configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The HA1 for the named algorithm is not a hex string of the right length.
    #[error("HA1 for {algorithm} must be {expected_len} hex digits")]
    InvalidHa1 {
        /// The `algorithm` token the HA1 was given for.
        algorithm: &'static str,
        /// The expected number of hex digits.
        expected_len: usize,
    },
    /// Neither an MD5 nor a SHA-256 HA1 was given.
    #[error("at least one HA1 (MD5 or SHA-256) is required")]
    NoHa1,
}

#[derive(Clone)]
enum Secret {
    Password(String),
    Ha1 {
        md5: Option<HexDigest>,
        sha256: Option<HexDigest>,
    },
}

/// One user's digest secret: a plaintext password or HA1 values stored per algorithm.
///
/// Stored HA1 values are bound to the realm they were computed for (RFC 7616 §3.4.2). Store
/// both an MD5 and a SHA-256 HA1: a client picks the first algorithm it supports from the
/// challenge (SHA-256 first), and fails if the HA1 for that algorithm is missing.
#[derive(Clone)]
pub struct Credentials {
    secret: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even HA1s (they are password equivalents).
        let kind = match self.secret {
            Secret::Password(_) => "password",
            Secret::Ha1 { .. } => "ha1",
        };
        f.debug_struct("Credentials")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from a plaintext password; HA1 is computed at each verification.
    pub fn password(password: impl Into<String>) -> Credentials {
        Credentials {
            secret: Secret::Password(password.into()),
        }
    }

    /// Credentials from stored HA1 hex strings (see [`ha1_md5`], [`ha1_sha256`]); at least one is required.
    pub fn ha1(md5: Option<&str>, sha256: Option<&str>) -> Result<Credentials, CredentialsError> {
        let md5 = md5
            .map(|hex| {
                HexDigest::parse(Algorithm::Md5, hex.trim()).ok_or(CredentialsError::InvalidHa1 {
                    algorithm: Algorithm::Md5.as_str(),
                    expected_len: Algorithm::Md5.hex_len(),
                })
            })
            .transpose()?;
        let sha256 = sha256
            .map(|hex| {
                HexDigest::parse(Algorithm::Sha256, hex.trim()).ok_or(
                    CredentialsError::InvalidHa1 {
                        algorithm: Algorithm::Sha256.as_str(),
                        expected_len: Algorithm::Sha256.hex_len(),
                    },
                )
            })
            .transpose()?;
        if md5.is_none() && sha256.is_none() {
            return Err(CredentialsError::NoHa1);
        }
        Ok(Credentials {
            secret: Secret::Ha1 { md5, sha256 },
        })
    }

    /// Where the HA1 for `algorithm` comes from, without hashing anything yet.
    pub(crate) fn source(&self, algorithm: Algorithm) -> Ha1Source<'_> {
        match &self.secret {
            Secret::Password(password) => Ha1Source::Password(password),
            Secret::Ha1 { md5, sha256 } => Ha1Source::Stored(match algorithm {
                Algorithm::Md5 => *md5,
                Algorithm::Sha256 => *sha256,
            }),
        }
    }

    /// The HA1 for `algorithm`, or `None` if only other algorithms' HA1s are stored.
    #[cfg(test)]
    pub(crate) fn ha1_for(
        &self,
        algorithm: Algorithm,
        username: &str,
        realm: &str,
    ) -> Option<HexDigest> {
        match self.source(algorithm) {
            Ha1Source::Password(password) => Some(ha1(algorithm, username, realm, password)),
            Ha1Source::Stored(stored) => stored,
        }
    }
}

/// Where a user's HA1 comes from for one algorithm.
pub(crate) enum Ha1Source<'a> {
    /// Hash it from this password.
    Password(&'a str),
    /// Stored; `None` if not stored for this algorithm.
    Stored(Option<HexDigest>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One known-answer vector: inputs, then the expected response.
    struct Vector {
        algorithm: Algorithm,
        user: &'static str,
        realm: &'static str,
        password: &'static str,
        method: &'static str,
        uri: &'static str,
        nonce: &'static str,
        qop: Option<QopAuth<'static>>,
        expected: &'static str,
    }

    fn check(v: &Vector) {
        let ha1 = match v.algorithm {
            Algorithm::Md5 => ha1_md5(v.user, v.realm, v.password),
            Algorithm::Sha256 => ha1_sha256(v.user, v.realm, v.password),
        };
        let got = compute_response(v.algorithm, &ha1, v.nonce, v.method, v.uri, v.qop);
        assert_eq!(got, v.expected, "{} {}", v.user, v.algorithm.as_str());
        // Stored-HA1 credentials must give the same HA1 as the password.
        let stored = match v.algorithm {
            Algorithm::Md5 => Credentials::ha1(Some(&ha1.to_uppercase()), None),
            Algorithm::Sha256 => Credentials::ha1(None, Some(&ha1)),
        }
        .unwrap();
        let from_password = Credentials::password(v.password);
        assert_eq!(
            stored.ha1_for(v.algorithm, v.user, v.realm),
            from_password.ha1_for(v.algorithm, v.user, v.realm)
        );
    }

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_QOP: QopAuth<'static> = QopAuth {
        nc: "00000001",
        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    };

    #[test]
    fn known_answer_vectors() {
        let vectors = [
            // draft-smith-sipping-auth-examples §3.1: no qop.
            Vector {
                algorithm: Algorithm::Md5,
                user: "bob",
                realm: "biloxi.com",
                password: "zanzibar",
                method: "INVITE",
                uri: "sip:bob@biloxi.com",
                nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                qop: None,
                expected: "bf57e4e0d0bffc0fbaedce64d59add5e",
            },
            // draft-smith-sipping-auth-examples §3.2: qop=auth.
            Vector {
                algorithm: Algorithm::Md5,
                user: "bob",
                realm: "biloxi.com",
                password: "zanzibar",
                method: "INVITE",
                uri: "sip:bob@biloxi.com",
                nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                qop: Some(QopAuth {
                    nc: "00000001",
                    cnonce: "0a4f113b",
                }),
                expected: "89eb0059246c02b2f6ee02c7961d5ea3",
            },
            // RFC 7616 §3.9.1, MD5.
            Vector {
                algorithm: Algorithm::Md5,
                user: "Mufasa",
                realm: "http-auth@example.org",
                password: "Circle of Life",
                method: "GET",
                uri: "/dir/index.html",
                nonce: RFC7616_NONCE,
                qop: Some(RFC7616_QOP),
                expected: "8ca523f5e9506fed4657c9700eebdbec",
            },
            // RFC 7616 §3.9.1, SHA-256.
            Vector {
                algorithm: Algorithm::Sha256,
                user: "Mufasa",
                realm: "http-auth@example.org",
                password: "Circle of Life",
                method: "GET",
                uri: "/dir/index.html",
                nonce: RFC7616_NONCE,
                qop: Some(RFC7616_QOP),
                expected: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            },
        ];
        for v in &vectors {
            check(v);
        }
    }

    #[test]
    fn ha1_helpers() {
        // MD5("bob:biloxi.com:zanzibar"), a fixed point for config files that store HA1.
        assert_eq!(ha1_md5("bob", "biloxi.com", "zanzibar").len(), 32);
        assert_eq!(ha1_sha256("bob", "biloxi.com", "zanzibar").len(), 64);
        assert_eq!(
            Credentials::ha1(Some("abc"), None).unwrap_err(),
            CredentialsError::InvalidHa1 {
                algorithm: "MD5",
                expected_len: 32
            }
        );
        assert_eq!(
            Credentials::ha1(None, None).unwrap_err(),
            CredentialsError::NoHa1
        );
        assert_eq!(
            format!("{:?}", Credentials::password("zanzibar")),
            "Credentials { kind: \"password\", .. }"
        );
    }

    #[test]
    fn constant_time_compare_folds_case() {
        assert!(hex_eq_constant_time(b"89eb00", b"89EB00"));
        assert!(!hex_eq_constant_time(b"89eb00", b"89eb01"));
        assert!(!hex_eq_constant_time(b"89eb00", b"89eb0"));
        // A non-letter with bit 0x20 clear must not be folded into a match.
        assert!(!hex_eq_constant_time(b"a", b"\x01"));
        assert!(!hex_eq_constant_time(b"0", b"\x10"));
    }
}
