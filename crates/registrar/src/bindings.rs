//! The binding table: address of record → contacts (RFC 3261 §10.3), with expiry.
//!
//! The caller extracts the facts of a REGISTER (Call-ID, CSeq, Contacts, Expires, source)
//! into a [`RegisterRequest`] and passes the [`Authenticated`] proof from digest
//! verification. Nothing here persists: every call that changes the table returns the
//! [`Change`]s to store, keyed by (address of record, contact URI).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::Authenticated;

/// Limits and defaults for registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest accepted non-zero expiry in seconds; shorter requests get 423 (RFC 3261 §10.3 step 6).
    pub min_expires: u32,
    /// Longest expiry in seconds; longer requests are clamped to it.
    pub max_expires: u32,
    /// Expiry in seconds when neither the Contact nor the request has one.
    pub default_expires: u32,
    /// Most bindings one address of record may hold; more are refused.
    pub max_bindings_per_aor: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_bindings_per_aor: 10,
        }
    }
}

/// A Contact `q` value in thousandths, from 0 to 1000 (RFC 3261 §20.10 `qvalue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    /// The highest preference, `q=1`.
    pub const ONE: QValue = QValue(1000);

    /// Parses `0`, `0.5`, `1.000` and the like; `None` if not a valid qvalue.
    pub fn parse(text: &str) -> Option<QValue> {
        let (int, frac) = match text.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (text, ""),
        };
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths: u16 = 0;
        for (idx, b) in frac.bytes().enumerate() {
            let place = [100, 10, 1].get(idx).copied().unwrap_or(0);
            thousandths += u16::from(b - b'0') * place;
        }
        match int {
            "0" => Some(QValue(thousandths)),
            "1" if thousandths == 0 => Some(QValue::ONE),
            _ => None,
        }
    }

    /// Builds a qvalue from thousandths; `None` above 1000.
    pub fn from_thousandths(thousandths: u16) -> Option<QValue> {
        (thousandths <= 1000).then_some(QValue(thousandths))
    }

    /// The value in thousandths (1000 is `q=1`).
    pub fn thousandths(self) -> u16 {
        self.0
    }
}

impl fmt::Display for QValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("0"),
            1000.. => f.write_str("1"),
            n => {
                let digits = format!("{n:03}");
                write!(f, "0.{}", digits.trim_end_matches('0'))
            }
        }
    }
}

/// One Contact of a REGISTER, as the caller parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The Contact URI without angle brackets, e.g. `sip:1013@192.0.2.7:5060;transport=udp`.
    pub uri: String,
    /// The Contact's `expires` parameter in seconds, if present.
    pub expires_param: Option<u32>,
    /// The Contact's `q` parameter, if present.
    pub q: Option<QValue>,
    /// The `+sip.instance` parameter (RFC 5626 §4.1), unquoted, if present.
    pub instance: Option<String>,
}

impl ContactSpec {
    /// A Contact with only a URI.
    pub fn new(uri: impl Into<String>) -> ContactSpec {
        ContactSpec {
            uri: uri.into(),
            expires_param: None,
            q: None,
            instance: None,
        }
    }
}

/// The facts of one REGISTER request that the registrar acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The Call-ID header value.
    pub call_id: String,
    /// The CSeq sequence number.
    pub cseq: u32,
    /// The Contact header values, in order; empty for a query or for `Contact: *`.
    pub contacts: Vec<ContactSpec>,
    /// Whether the request carried `Contact: *`.
    pub star: bool,
    /// The Expires header value in seconds, if present.
    pub expires_header: Option<u32>,
    /// Where the request came from (the transport source address).
    pub source: SocketAddr,
    /// The transport it came over, such as `UDP` or `TCP`.
    pub transport: String,
}

/// What persists of a binding: everything but the monotonic deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    /// The address of record (extension) the binding belongs to.
    pub aor: String,
    /// The contact URI to route to.
    pub contact_uri: String,
    /// When the binding expires, in unix seconds.
    pub expires_at_unix: u64,
    /// Call-ID of the REGISTER that last refreshed the binding.
    pub call_id: String,
    /// CSeq of the REGISTER that last refreshed the binding.
    pub cseq: u32,
    /// The Contact's preference, if given.
    pub q: Option<QValue>,
    /// The source address the REGISTER came from, for reaching phones behind NAT.
    pub received_from: SocketAddr,
    /// The transport the REGISTER came over.
    pub transport: String,
    /// The `+sip.instance` of the registering device, if given.
    pub instance: Option<String>,
}

/// A binding in the table: its persistent record and its monotonic deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// When the binding expires.
    pub expires_at: Instant,
    /// The persistent part of the binding.
    pub record: BindingRecord,
}

impl Binding {
    /// Seconds until expiry at `now`, rounded up, or 0 once expired.
    pub fn expires_in(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }

    /// Preference for ordering; an absent q counts as 1.
    fn preference(&self) -> QValue {
        self.record.q.unwrap_or(QValue::ONE)
    }
}

/// A change to the table for the caller to persist, keyed by (aor, contact_uri).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or replace this binding.
    Upsert(BindingRecord),
    /// Delete this binding.
    Remove(BindingRecord),
}

/// One current binding as the 200 OK lists it (RFC 3261 §10.3 step 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentContact {
    /// The contact URI.
    pub contact_uri: String,
    /// Seconds left before the binding expires.
    pub expires: u32,
    /// The binding's preference, if given.
    pub q: Option<QValue>,
}

impl CurrentContact {
    /// The Contact header value for the 200 OK, e.g. `<sip:1013@192.0.2.7>;expires=3600`.
    pub fn header_value(&self) -> String {
        match self.q {
            Some(q) => format!("<{}>;expires={};q={q}", self.contact_uri, self.expires),
            None => format!("<{}>;expires={}", self.contact_uri, self.expires),
        }
    }
}

/// The result of an accepted REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// All current bindings of the address of record, for the 200 OK's Contact headers.
    pub contacts: Vec<CurrentContact>,
    /// What changed, for the caller to persist.
    pub changes: Vec<Change>,
}

/// Why a REGISTER was refused; nothing was changed. Each maps to a SIP status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The authenticated user is not the address of record being registered (403).
    #[error("authenticated user may not register this address of record")]
    Forbidden,
    /// A non-zero expiry below the minimum (423, with `Min-Expires: min_expires`).
    #[error("interval too brief, minimum is {min_expires}s")]
    IntervalTooBrief {
        /// The value for the Min-Expires header.
        min_expires: u32,
    },
    /// `Contact: *` with other Contacts or without `Expires: 0` (400, RFC 3261 §10.3 step 6).
    #[error("Contact: * needs Expires: 0 and no other Contact")]
    InvalidWildcard,
    /// Same Call-ID with a CSeq not above the binding's (500, RFC 3261 §10.3 step 7).
    #[error("out-of-order REGISTER for an existing binding")]
    OutOfOrder,
    /// The address of record would hold more bindings than allowed (403).
    #[error("more than {max} bindings for one address of record")]
    TooManyBindings {
        /// The configured limit.
        max: usize,
    },
}

impl RegisterError {
    /// The SIP status code to answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            RegisterError::Forbidden | RegisterError::TooManyBindings { .. } => 403,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::InvalidWildcard => 400,
            RegisterError::OutOfOrder => 500,
        }
    }
}

/// The location service: bindings per address of record.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    /// BTreeMap, not HashMap: iteration order (and so the order of changes) is deterministic.
    aors: BTreeMap<String, Vec<Binding>>,
}

impl Registrar {
    /// An empty registrar with `config`.
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            config,
            aors: BTreeMap::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Applies one authenticated REGISTER for `aor` (RFC 3261 §10.3 steps 6–8), all or nothing.
    pub fn apply_register(
        &mut self,
        aor: &str,
        authenticated: &Authenticated,
        request: RegisterRequest,
        now: Instant,
        now_unix: u64,
    ) -> Result<RegisterOutcome, RegisterError> {
        // RFC 3261 §10.3 step 4: a user may only modify the bindings of its own extension.
        if authenticated.username() != aor {
            return Err(RegisterError::Forbidden);
        }
        if request.star {
            return self.apply_wildcard(aor, &request, now);
        }
        let existing: &[Binding] = self.aors.get(aor).map_or(&[], Vec::as_slice);

        // Step 6: each contact's expiry, checked before anything changes.
        let mut expiries = Vec::with_capacity(request.contacts.len());
        for contact in &request.contacts {
            let requested = contact
                .expires_param
                .or(request.expires_header)
                .unwrap_or(self.config.default_expires);
            if requested > 0 && requested < self.config.min_expires {
                return Err(RegisterError::IntervalTooBrief {
                    min_expires: self.config.min_expires,
                });
            }
            expiries.push(requested.min(self.config.max_expires));
        }

        // Step 7: same Call-ID with a CSeq not above the binding's aborts the whole request.
        let out_of_order = request.contacts.iter().any(|contact| {
            existing.iter().any(|b| {
                !b.is_expired(now)
                    && is_same_binding(b, contact)
                    && b.record.call_id == request.call_id
                    && request.cseq <= b.record.cseq
            })
        });
        if out_of_order {
            return Err(RegisterError::OutOfOrder);
        }

        let mut changes = Vec::new();
        let mut working: Vec<Binding> = Vec::with_capacity(existing.len() + 1);
        for binding in existing {
            if binding.is_expired(now) {
                changes.push(Change::Remove(binding.record.clone()));
            } else {
                working.push(binding.clone());
            }
        }
        for (contact, expires) in request.contacts.iter().zip(expiries) {
            // A contact can match more than one binding (one by instance, one by URI); it
            // replaces all of them, so no two bindings ever share a contact URI.
            let first = working.iter().position(|b| is_same_binding(b, contact));
            let (matched, kept): (Vec<Binding>, Vec<Binding>) = std::mem::take(&mut working)
                .into_iter()
                .partition(|b| is_same_binding(b, contact));
            working = kept;
            for old in matched {
                // An upsert under the same URI overwrites the old row; any other row goes.
                if expires == 0 || old.record.contact_uri != contact.uri {
                    changes.push(Change::Remove(old.record));
                }
            }
            if expires == 0 {
                continue;
            }
            let binding = Binding {
                expires_at: deadline(now, u64::from(expires)),
                record: BindingRecord {
                    aor: aor.to_owned(),
                    contact_uri: contact.uri.clone(),
                    expires_at_unix: now_unix.saturating_add(u64::from(expires)),
                    call_id: request.call_id.clone(),
                    cseq: request.cseq,
                    q: contact.q,
                    received_from: request.source,
                    transport: request.transport.clone(),
                    instance: contact.instance.clone(),
                },
            };
            changes.push(Change::Upsert(binding.record.clone()));
            // Keep a refreshed binding where it was, so equal-q bindings keep their order.
            let idx = first.unwrap_or(working.len()).min(working.len());
            working.insert(idx, binding);
        }
        if working.len() > self.config.max_bindings_per_aor {
            return Err(RegisterError::TooManyBindings {
                max: self.config.max_bindings_per_aor,
            });
        }

        // Highest preference first, for forking and for the 200 OK (stable: ties keep order).
        working.sort_by_key(|b| std::cmp::Reverse(b.preference()));
        let contacts = current_contacts(&working, now);
        if working.is_empty() {
            self.aors.remove(aor);
        } else {
            self.aors.insert(aor.to_owned(), working);
        }
        Ok(RegisterOutcome { contacts, changes })
    }

    /// `Contact: *` with `Expires: 0` removes every binding (RFC 3261 §10.3 step 6).
    fn apply_wildcard(
        &mut self,
        aor: &str,
        request: &RegisterRequest,
        now: Instant,
    ) -> Result<RegisterOutcome, RegisterError> {
        if !request.contacts.is_empty() || request.expires_header != Some(0) {
            return Err(RegisterError::InvalidWildcard);
        }
        let existing: &[Binding] = self.aors.get(aor).map_or(&[], Vec::as_slice);
        // Step 6: a binding with the same Call-ID goes only if the CSeq is higher.
        let out_of_order = existing.iter().any(|b| {
            !b.is_expired(now)
                && b.record.call_id == request.call_id
                && request.cseq <= b.record.cseq
        });
        if out_of_order {
            return Err(RegisterError::OutOfOrder);
        }
        let changes = self.remove_aor(aor);
        Ok(RegisterOutcome {
            contacts: Vec::new(),
            changes,
        })
    }

    /// Removes every binding expired at `now` and returns the removals to persist.
    pub fn expire(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        self.aors.retain(|_, bindings| {
            bindings.retain(|b| {
                if b.is_expired(now) {
                    changes.push(Change::Remove(b.record.clone()));
                    false
                } else {
                    true
                }
            });
            !bindings.is_empty()
        });
        changes
    }

    /// The earliest binding deadline: call [`Registrar::expire`] then (a linear scan).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.aors.values().flatten().map(|b| b.expires_at).min()
    }

    /// The live bindings of `aor` at `now`, highest preference first, for routing.
    pub fn lookup<'r>(&'r self, aor: &str, now: Instant) -> impl Iterator<Item = &'r Binding> {
        self.aors
            .get(aor)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(move |b| !b.is_expired(now))
    }

    /// Every binding in the table, expired or not, ordered by address of record.
    pub fn all_bindings(&self) -> impl Iterator<Item = &Binding> {
        self.aors.values().flatten()
    }

    /// Drops every binding of `aor` (e.g. its extension was deleted) and returns the removals.
    pub fn remove_aor(&mut self, aor: &str) -> Vec<Change> {
        self.aors
            .remove(aor)
            .unwrap_or_default()
            .into_iter()
            .map(|b| Change::Remove(b.record))
            .collect()
    }

    /// Loads persisted bindings at start; returns removals for the ones already expired.
    ///
    /// A record whose deadline is beyond `max_expires` from now is clamped to it, so a
    /// lowered limit or a wall clock that jumped back cannot keep a binding forever.
    pub fn restore(
        &mut self,
        records: impl IntoIterator<Item = BindingRecord>,
        now: Instant,
        now_unix: u64,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for mut record in records {
            let left = record
                .expires_at_unix
                .saturating_sub(now_unix)
                .min(u64::from(self.config.max_expires));
            if left == 0 {
                changes.push(Change::Remove(record));
                continue;
            }
            record.expires_at_unix = now_unix + left;
            let binding = Binding {
                expires_at: deadline(now, left),
                record,
            };
            let bindings = self.aors.entry(binding.record.aor.clone()).or_default();
            let spec = ContactSpec {
                uri: binding.record.contact_uri.clone(),
                expires_param: None,
                q: binding.record.q,
                instance: binding.record.instance.clone(),
            };
            // Persisted rows that the same contact also matches are duplicates: drop them.
            bindings.retain(|b| {
                let duplicate = is_same_binding(b, &spec);
                if duplicate && b.record.contact_uri != spec.uri {
                    changes.push(Change::Remove(b.record.clone()));
                }
                !duplicate
            });
            bindings.push(binding);
        }
        for bindings in self.aors.values_mut() {
            bindings.sort_by_key(|b| std::cmp::Reverse(b.preference()));
        }
        changes
    }

    /// Number of addresses of record with at least one binding (expired ones count until [`Registrar::expire`]).
    pub fn registered_count(&self) -> usize {
        self.aors.len()
    }

    /// Number of bindings across all addresses of record.
    pub fn binding_count(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }
}

/// `now` plus `secs`; a sum past what `Instant` holds (only from absurd configuration)
/// saturates to a far deadline instead of panicking.
fn deadline(now: Instant, secs: u64) -> Instant {
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(Duration::from_secs(secs))
        .or_else(|| now.checked_add(far))
        .unwrap_or(now)
}

fn current_contacts(bindings: &[Binding], now: Instant) -> Vec<CurrentContact> {
    bindings
        .iter()
        .map(|b| CurrentContact {
            contact_uri: b.record.contact_uri.clone(),
            expires: b.expires_in(now),
            q: b.record.q,
        })
        .collect()
}

/// Whether `contact` refers to the existing `binding`.
fn is_same_binding(binding: &Binding, contact: &ContactSpec) -> bool {
    // DEVIATION(RFC 3261 §10.3 step 7): a device that re-registers with the same
    // `+sip.instance` (RFC 5626 §4.1) but a new URI, e.g. after a NAT rebinding, replaces its
    // old binding instead of adding one that would be rung until it expired.
    let same_instance = matches!(
        (&binding.record.instance, &contact.instance),
        (Some(a), Some(b)) if a == b
    );
    same_instance || uri_equal(&binding.record.contact_uri, &contact.uri)
}

/// A SIP URI split for comparison (RFC 3261 §19.1.4).
struct UriParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hostport: &'a str,
    params: Vec<(&'a str, &'a str)>,
    headers: &'a str,
}

fn split_uri(uri: &str) -> Option<UriParts<'_>> {
    let uri = uri.trim();
    let uri = uri
        .strip_prefix('<')
        .and_then(|u| u.strip_suffix('>'))
        .unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':')?;
    let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
    let (userinfo, rest) = match rest.split_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let mut pieces = rest.split(';');
    let hostport = pieces.next().unwrap_or("");
    let params = pieces
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    Some(UriParts {
        scheme,
        userinfo,
        hostport,
        params,
        headers,
    })
}

/// URI equality after RFC 3261 §19.1.4, for SIP contact URIs; other URIs compare as strings.
fn uri_equal(a: &str, b: &str) -> bool {
    let (Some(a), Some(b)) = (split_uri(a), split_uri(b)) else {
        return a == b;
    };
    // Scheme and host are case-insensitive, user info is case-sensitive, no defaults filled in.
    if !a.scheme.eq_ignore_ascii_case(b.scheme)
        || a.userinfo != b.userinfo
        || !a.hostport.eq_ignore_ascii_case(b.hostport)
        || a.headers != b.headers
    {
        return false;
    }
    // Parameters in both must match (case-insensitively); user, ttl, method and maddr must
    // be in both or neither; other parameters in only one are ignored.
    fn find<'u>(params: &[(&'u str, &'u str)], name: &str) -> Option<&'u str> {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
    for (name, value) in &a.params {
        match find(&b.params, name) {
            Some(other) if !other.eq_ignore_ascii_case(value) => return false,
            Some(_) => {}
            None if is_must_match_param(name) => return false,
            None => {}
        }
    }
    b.params
        .iter()
        .all(|(name, _)| !is_must_match_param(name) || find(&a.params, name).is_some())
}

fn is_must_match_param(name: &str) -> bool {
    ["user", "ttl", "method", "maddr"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests;
