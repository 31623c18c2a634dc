//! Server side of digest authentication: stateless nonces, challenges and verification
//! (RFC 3261 §22.4, RFC 7616 §3.3–§3.5, RFC 8760).
//!
//! # Nonces
//!
//! A nonce is 56 lowercase hex digits encoding
//! `issued_ms (u64 BE) || seq (u32 BE) || HMAC-SHA256(secret, label || issued_ms || seq || realm)[..16]`,
//! where `issued_ms` counts milliseconds since this authority's first use and `seq` makes every
//! nonce unique. Checking one needs no table of issued nonces: recompute the HMAC and compare
//! the age with the lifetime. The only state is the bounded replay table of the highest `nc`
//! seen per nonce ([`NonceCounts`]).
//!
//! Because `issued_ms` is relative to the first `Instant` the authority sees, nonces do not
//! survive a restart. Give every process a fresh secret (from the core's RNG): nonces of the
//! previous run then fail the HMAC and the client is re-challenged with `stale=true`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::digest::{
    Algorithm, Credentials, Ha1Source, HexDigest, QopAuth, ha1, hex_eq_constant_time, response_hex,
    write_hex,
};
use crate::header::{ParseError, parse_digest};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC kept in a nonce: 128 bits.
const TAG_LEN: usize = 16;
/// Raw nonce length: `issued_ms` (8) + `seq` (4) + tag.
const NONCE_RAW_LEN: usize = 8 + 4 + TAG_LEN;
/// Hex nonce length.
const NONCE_HEX_LEN: usize = NONCE_RAW_LEN * 2;
/// Default bound on the replay table (one entry is a few dozen bytes).
pub const DEFAULT_NONCE_CAPACITY: usize = 16 * 1024;

/// Proof that one request's digest credentials verified; only [`DigestAuthority::verify`] creates it.
#[derive(Debug, PartialEq, Eq)]
pub struct Authenticated {
    username: String,
    algorithm: Algorithm,
}

impl Authenticated {
    /// The authenticated user name, as sent in the `username` parameter.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The algorithm the client used.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Test-only constructor, so binding tests need not run a digest exchange.
    #[cfg(test)]
    pub(crate) fn for_tests(username: &str) -> Authenticated {
        Authenticated {
            username: username.to_owned(),
            algorithm: Algorithm::Sha256,
        }
    }
}

/// Why a request's credentials did not verify, and so how to answer it.
///
/// Answer `Missing`, `Rejected` and `Replay` with a fresh challenge ([`DigestAuthority::challenge`]
/// with `stale: false`), `Stale` with `stale: true`, and `Malformed` with 400 Bad Request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No digest credentials for our realm: empty, another scheme, or another realm (RFC 3261 §22.3).
    #[error("no digest credentials for this realm")]
    Missing,
    /// Digest credentials that cannot be parsed or lack a required parameter.
    #[error("malformed digest credentials")]
    Malformed,
    /// The digest is right but the nonce expired or is not ours (RFC 7616 §3.3 `stale`).
    #[error("stale nonce")]
    Stale,
    /// Wrong password or unknown user; deliberately indistinguishable from outside.
    #[error("credentials rejected")]
    Rejected,
    /// The nonce count did not increase: a replayed or reordered request.
    #[error("replayed nonce count")]
    Replay,
}

/// A nonce's identity: when it was issued and its sequence number, ordered by issue time.
type NonceId = (u64, u32);

/// Bounded table of the highest nonce count seen per nonce.
///
/// Entries leave oldest first, when their nonce expires or the table is full. A nonce evicted
/// while still fresh must not become replayable, so `floor` remembers the newest evicted id:
/// any nonce at or below it that is not in the table is refused as stale.
#[derive(Debug)]
pub(crate) struct NonceCounts {
    capacity: usize,
    highest: BTreeMap<NonceId, u32>,
    floor: Option<NonceId>,
}

/// What the replay table says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountVerdict {
    Fresh,
    Replay,
    Evicted,
}

impl NonceCounts {
    pub(crate) fn new(capacity: usize) -> NonceCounts {
        NonceCounts {
            capacity: capacity.max(1),
            highest: BTreeMap::new(),
            floor: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.highest.len()
    }

    /// Records `nc` for nonce `id`; `expired_before` is the issue time (ms) below which nonces
    /// have expired and can be forgotten.
    pub(crate) fn record(&mut self, id: NonceId, nc: u32, expired_before: u64) -> CountVerdict {
        while let Some((&oldest, _)) = self.highest.first_key_value() {
            if oldest.0 >= expired_before {
                break;
            }
            self.highest.pop_first();
            self.floor = Some(oldest);
        }
        if let Some(highest) = self.highest.get_mut(&id) {
            if nc <= *highest {
                return CountVerdict::Replay;
            }
            *highest = nc;
            return CountVerdict::Fresh;
        }
        if self.floor.is_some_and(|floor| id <= floor) {
            return CountVerdict::Evicted;
        }
        self.highest.insert(id, nc);
        while self.highest.len() > self.capacity {
            if let Some((evicted, _)) = self.highest.pop_first() {
                self.floor = Some(evicted);
            }
        }
        CountVerdict::Fresh
    }
}

/// Issues digest challenges and verifies credentials for one realm, without server state per nonce.
pub struct DigestAuthority {
    realm: String,
    nonce_lifetime: Duration,
    /// HMAC keyed with the caller's secret, cloned per use to skip re-keying.
    mac: HmacSha256,
    /// `Instant` that nonce timestamps count from; set on first use.
    epoch: Option<Instant>,
    next_seq: u32,
    opaque: String,
    /// HA1 hashed for unknown users so their rejection costs as much as a wrong password.
    decoy_password: String,
    counts: NonceCounts,
}

impl std::fmt::Debug for DigestAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Leave out the keyed HMAC and everything derived from the secret.
        f.debug_struct("DigestAuthority")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("tracked_nonces", &self.counts.len())
            .finish_non_exhaustive()
    }
}

impl DigestAuthority {
    /// An authority for `realm`; `secret` keys nonces and must come from the caller's RNG, fresh per process.
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        let realm = realm.into();
        // HMAC accepts keys of any length, so keying cannot fail.
        let mac = HmacSha256::new_from_slice(&secret).expect("HMAC takes keys of any length");
        let derive = |label: &[u8]| {
            let mut m = mac.clone();
            m.update(label);
            m.update(realm.as_bytes());
            let tag = m.finalize().into_bytes();
            let mut hex = [0u8; 32];
            let n = write_hex(&tag[..16], &mut hex);
            String::from_utf8_lossy(&hex[..n]).into_owned()
        };
        let opaque = derive(b"centralino-opaque\0");
        let decoy_password = derive(b"centralino-decoy\0");
        DigestAuthority {
            realm,
            nonce_lifetime,
            mac,
            epoch: None,
            next_seq: 0,
            opaque,
            decoy_password,
            counts: NonceCounts::new(DEFAULT_NONCE_CAPACITY),
        }
    }

    /// Sets how many nonces the replay table tracks at most (default [`DEFAULT_NONCE_CAPACITY`]).
    pub fn with_nonce_capacity(mut self, capacity: usize) -> Self {
        self.counts = NonceCounts::new(capacity);
        self
    }

    /// The realm this authority challenges for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Number of nonces currently held in the replay table (never above its capacity).
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }

    /// Milliseconds from the epoch to `now`, fixing the epoch on first use.
    fn ticks(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn tag(&self, issued_ms: u64, seq: u32) -> [u8; TAG_LEN] {
        let mut m = self.mac.clone();
        m.update(b"centralino-nonce\0");
        m.update(&issued_ms.to_be_bytes());
        m.update(&seq.to_be_bytes());
        m.update(self.realm.as_bytes());
        let full = m.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    fn mint_nonce(&mut self, now: Instant) -> String {
        let issued_ms = self.ticks(now);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut raw = [0u8; NONCE_RAW_LEN];
        raw[..8].copy_from_slice(&issued_ms.to_be_bytes());
        raw[8..12].copy_from_slice(&seq.to_be_bytes());
        raw[12..].copy_from_slice(&self.tag(issued_ms, seq));
        let mut hex = [0u8; NONCE_HEX_LEN];
        let n = write_hex(&raw, &mut hex);
        String::from_utf8_lossy(&hex[..n]).into_owned()
    }

    /// Decodes one of our nonces and checks its HMAC; `None` if it is not ours.
    fn open_nonce(&self, nonce: &str) -> Option<NonceId> {
        let hex = nonce.as_bytes();
        if hex.len() != NONCE_HEX_LEN {
            return None;
        }
        let mut raw = [0u8; NONCE_RAW_LEN];
        for (out, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |b: u8| match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                _ => None,
            };
            *out = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        let issued_ms = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let seq = u32::from_be_bytes(raw[8..12].try_into().ok()?);
        let expected = self.tag(issued_ms, seq);
        // The tag is a MAC: compare without early exit.
        let diff = expected
            .iter()
            .zip(&raw[12..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some((issued_ms, seq))
    }

    /// The `WWW-Authenticate` (or `Proxy-Authenticate`) values: SHA-256 first, then MD5 (RFC 8760 §2.4).
    pub fn challenge(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.mint_nonce(now);
        let realm = quote(&self.realm);
        let stale = if stale { ", stale=true" } else { "" };
        [Algorithm::Sha256, Algorithm::Md5]
            .iter()
            .map(|algorithm| {
                format!(
                    "Digest realm={realm}, qop=\"auth\", algorithm={}, nonce=\"{nonce}\", opaque=\"{}\"{stale}",
                    algorithm.as_str(),
                    self.opaque,
                )
            })
            .collect()
    }

    /// Verifies one `Authorization`/`Proxy-Authorization` value for a request with `method`.
    ///
    /// `lookup` finds a user's credentials. The digest is checked before the nonce, so that
    /// `Stale` is only ever said to a client that knows the password (RFC 7616 §3.3).
    pub fn verify<'c>(
        &mut self,
        auth_header_value: &str,
        method: &str,
        lookup: impl Fn(&str) -> Option<&'c Credentials>,
        now: Instant,
    ) -> Result<Authenticated, AuthFailure> {
        let params = match parse_digest(auth_header_value) {
            Ok(params) => params,
            Err(ParseError::NotDigest) => return Err(AuthFailure::Missing),
            Err(ParseError::Malformed) => return Err(AuthFailure::Malformed),
        };
        let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            params.username.as_deref(),
            params.realm.as_deref(),
            params.nonce.as_deref(),
            params.uri.as_deref(),
            params.response.as_deref(),
        ) else {
            return Err(AuthFailure::Malformed);
        };
        if uri.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        // RFC 3261 §22.4 / RFC 2617 §3.2.2: no algorithm means MD5.
        let algorithm = match params.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(token) => Algorithm::from_token(token).ok_or(AuthFailure::Malformed)?,
        };
        // We never offer userhash (RFC 7616 §3.4.4), so a hashed username cannot be looked up.
        if params
            .userhash
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(AuthFailure::Malformed);
        }
        let qop = match params.qop.as_deref() {
            None => None,
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (params.nc.as_deref(), params.cnonce.as_deref())
                else {
                    return Err(AuthFailure::Malformed);
                };
                if nc.len() != 8 || cnonce.is_empty() {
                    return Err(AuthFailure::Malformed);
                }
                let count = u32::from_str_radix(nc, 16).map_err(|_| AuthFailure::Malformed)?;
                Some((QopAuth { nc, cnonce }, count))
            }
            // We only offer qop="auth"; auth-int needs the body, which we never see.
            Some(_) => return Err(AuthFailure::Malformed),
        };
        if realm != self.realm {
            // RFC 3261 §22.3: credentials for another realm are not for us.
            return Err(AuthFailure::Missing);
        }

        // Every path hashes exactly one HA1, so all take about the same time and unknown users
        // end in the same `Rejected` as wrong passwords: password users hash theirs, users with
        // a stored HA1, unknown users and users without an HA1 for this algorithm hash a decoy.
        let hash_ha1 = |password: &str| ha1(algorithm, username, realm, password);
        let (ha1_hex, known): (HexDigest, bool) =
            match lookup(username).map(|c| c.source(algorithm)) {
                Some(Ha1Source::Password(password)) => (hash_ha1(password), true),
                Some(Ha1Source::Stored(Some(stored))) => {
                    std::hint::black_box(hash_ha1(&self.decoy_password));
                    (stored, true)
                }
                Some(Ha1Source::Stored(None)) | None => (hash_ha1(&self.decoy_password), false),
            };
        let expected = response_hex(
            algorithm,
            ha1_hex.as_bytes(),
            nonce,
            method,
            uri,
            qop.map(|(q, _)| q),
        );
        let matches = hex_eq_constant_time(expected.as_bytes(), response.as_bytes());
        if !(known && matches) {
            // Only the log tells the two apart; the peer sees the same answer.
            let reason = if known {
                "wrong response"
            } else {
                "unknown user or no HA1 for algorithm"
            };
            tracing::debug!(
                username,
                algorithm = algorithm.as_str(),
                reason,
                "digest rejected"
            );
            return Err(AuthFailure::Rejected);
        }

        let Some(id) = self.open_nonce(nonce) else {
            // Authentic digest on a nonce we did not issue (e.g. before a restart).
            return Err(AuthFailure::Stale);
        };
        if params.opaque.as_deref().is_some_and(|o| o != self.opaque) {
            return Err(AuthFailure::Stale);
        }
        let now_ms = self.ticks(now);
        let lifetime_ms = u64::try_from(self.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
        if id.0 > now_ms || now_ms - id.0 >= lifetime_ms {
            return Err(AuthFailure::Stale);
        }
        if let Some((_, count)) = qop {
            let expired_before = now_ms.saturating_sub(lifetime_ms);
            match self.counts.record(id, count, expired_before) {
                CountVerdict::Fresh => {}
                CountVerdict::Replay => {
                    tracing::debug!(username, nc = count, "digest nonce count replayed");
                    return Err(AuthFailure::Replay);
                }
                CountVerdict::Evicted => return Err(AuthFailure::Stale),
            }
        }
        // DEVIATION(RFC 7616 §3.4): without qop (RFC 2069 clients) there is no nonce count, so a
        // response can be replayed until its nonce expires; keep the lifetime short.
        Ok(Authenticated {
            username: username.to_owned(),
            algorithm,
        })
    }
}

/// Quotes `text` as an RFC 3261 §25.1 quoted-string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
