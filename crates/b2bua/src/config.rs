//! The switch's own part of the configuration file (`[switch]`, `[[extensions]]`,
//! `[[trunks]]`), compiled together with the router's dialplan into one immutable [`Config`].
//!
//! Two phases, as in ripgrep's flags: `RawConfig` mirrors the TOML (with spans), `Config` is
//! the validated snapshot the Switchboard uses. Every problem is reported at once, each with
//! `FILE:LINE:COL`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

/// Top-level tables the switch owns; the router owns the rest ([`router::TOP_LEVEL_KEYS`]).
pub const SWITCH_KEYS: &[&str] = &["switch", "extensions", "trunks"];

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// False for warnings.
    pub is_error: bool,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = if self.is_error { "error" } else { "warning" };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets to 1-based line and column.
struct Locator<'a> {
    file: &'a str,
    source: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let before = &self.source[..self.source.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> ConfigError {
        let (line, col) = self.at(span.start);
        ConfigError {
            file: self.file.to_owned(),
            line,
            col,
            message: message.into(),
            hint: hint.map(str::to_owned),
            is_error: true,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    domain: Option<Spanned<String>>,
    rtp_ports: Option<Spanned<String>>,
    metrics: Option<Spanned<String>>,
    media_timeout_secs: Option<Spanned<u64>>,
    min_expires: Option<u32>,
    max_expires: Option<u32>,
    digest_algorithms: Option<Spanned<Vec<String>>>,
    nonce_lifetime_secs: Option<Spanned<u64>>,
    advertise: Option<Spanned<String>>,
    #[serde(default)]
    md5_only_user_agents: Vec<String>,
    /// Ignored since the IVR answers menu, voicemail and message targets (issue 5); still
    /// accepted, with a warning, so older files load.
    operator: Option<Spanned<String>>,
    /// The prompt set's language (default `it`).
    language: Option<String>,
    /// The directory of prompt files.
    prompts: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    number: Spanned<String>,
    name: Option<String>,
    password: Option<Spanned<String>>,
    ha1_md5: Option<Spanned<String>>,
    ha1_sha256: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: Spanned<String>,
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
}

/// The switch's tables as written; other top-level keys are the router's.
#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    switch: Option<Spanned<RawSwitch>>,
    #[serde(default)]
    extensions: Vec<Spanned<RawExtension>>,
    #[serde(default)]
    trunks: Vec<Spanned<RawTrunk>>,
}

/// A desk phone's extension.
#[derive(Clone, Debug)]
pub struct Extension {
    /// Extension number, also the digest user name.
    pub number: String,
    /// Display name.
    pub name: Option<String>,
    /// Digest credentials.
    pub credentials: registrar::Credentials,
}

/// A SIP trunk whose calls are accepted by source address, or by digest credentials.
#[derive(Clone, Debug)]
pub struct Trunk {
    /// Trunk name used in routing and logs.
    pub name: String,
    /// Source addresses calls may come from.
    pub addresses: Vec<IpAddr>,
    /// Digest user name and credentials for a trunk that authenticates instead.
    pub credentials: Option<(String, registrar::Credentials)>,
}

/// The validated, immutable configuration snapshot. Calls keep the `Arc<Config>` they started with.
#[derive(Debug)]
pub struct Config {
    /// Where the file came from.
    pub file: String,
    /// SIP domain and digest realm.
    pub domain: String,
    /// RTP port range (inclusive).
    pub rtp_ports: RangeInclusive<u16>,
    /// Metrics HTTP address.
    pub metrics: Option<SocketAddr>,
    /// End a call after this long with no RTP on either leg.
    pub media_timeout: std::time::Duration,
    /// Shortest registration interval accepted (423 below it).
    pub min_expires: u32,
    /// Longest registration interval granted.
    pub max_expires: u32,
    /// The language of the prompt set (`[switch] language`, default `it`).
    pub language: String,
    /// `[switch] prompts`: the prompt directory as written (relative to the dialplan file's
    /// directory); `None` means `../prompts/<language>` from there.
    pub prompts_dir: Option<String>,
    /// Digest algorithms offered in challenges, most preferred first (`SHA-256`, `MD5`).
    pub digest_algorithms: Vec<String>,
    /// How long a digest nonce stays fresh (then `stale=true`).
    pub nonce_lifetime: std::time::Duration,
    /// The address put in Via, Contact and SDP when listening on an unspecified address.
    pub advertise: Option<IpAddr>,
    /// User-Agent substrings of clients that fail on any non-MD5 challenge; they get MD5 only.
    pub md5_only_user_agents: Vec<String>,
    /// Extensions by number.
    pub extensions: BTreeMap<String, Extension>,
    /// Trunks.
    pub trunks: Vec<Trunk>,
    /// The compiled dialplan.
    pub plan: Arc<router::Plan>,
    /// Decoded prompts by name (filled by the loader at the edge, which reads the files).
    pub prompts: std::collections::BTreeMap<String, Arc<media::Prompt>>,
}

impl Config {
    /// Finds the trunk a source address belongs to.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.addresses.contains(&ip))
    }

    /// The trunk whose digest user name is `user`.
    pub fn trunk_by_user(&self, user: &str) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.credentials.as_ref().is_some_and(|(u, _)| u == user))
    }

    /// Digest credentials of an extension or an authenticating trunk.
    pub fn credentials(&self, user: &str) -> Option<&registrar::Credentials> {
        self.extensions
            .get(user)
            .map(|e| &e.credentials)
            .or_else(|| {
                self.trunk_by_user(user)
                    .and_then(|t| t.credentials.as_ref().map(|(_, c)| c))
            })
    }

    /// Compiles the file's text. On success returns the snapshot and the warnings; on failure
    /// every error (and warning) found, sorted by position.
    pub fn compile(
        file: &str,
        source: &str,
    ) -> Result<(Config, Vec<ConfigError>), Vec<ConfigError>> {
        let loc = Locator { file, source };
        let mut errors = Vec::new();
        let raw: Option<RawConfig> = match toml::from_str::<RawConfig>(source) {
            Ok(raw) => Some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                errors.push(loc.error(span, e.message().trim().to_owned(), None));
                None
            }
        };
        check_top_level_keys(&loc, &mut errors);

        let router_result = router::compile(file, source);
        let mut warnings = Vec::new();
        let plan = match router_result {
            Ok(compiled) => {
                warnings.extend(compiled.warnings.iter().map(from_router));
                Some(compiled.plan)
            }
            Err(diags) => {
                for d in diags.0.iter() {
                    let c = from_router(d);
                    // A TOML syntax error is reported once, by us.
                    if raw.is_none()
                        && c.is_error
                        && (errors.iter().any(|e| e.line == c.line)
                            || c.message.starts_with("TOML syntax"))
                    {
                        continue;
                    }
                    if c.is_error {
                        errors.push(c)
                    } else {
                        warnings.push(c)
                    }
                }
                None
            }
        };

        if let Some(op) = raw
            .as_ref()
            .and_then(|r| r.switch.as_ref())
            .and_then(|s| s.get_ref().operator.as_ref())
        {
            let mut w = loc.error(
                op.span(),
                "`operator` is no longer used: the switch answers menu, message and voicemail targets itself",
                Some("delete the line"),
            );
            w.is_error = false;
            warnings.push(w);
        }
        let config = raw.and_then(|raw| build(&loc, raw, &mut errors));
        match (config, plan) {
            (Some(part), Some(plan)) if errors.is_empty() => {
                Ok((part.with_plan(Arc::new(plan)), warnings))
            }
            _ => {
                errors.extend(warnings);
                errors.sort_by_key(|e| (e.line, e.col));
                Err(errors)
            }
        }
    }
}

fn from_router(d: &router::Diagnostic) -> ConfigError {
    ConfigError {
        file: d.file.clone(),
        line: d.line,
        col: d.col,
        message: d.message.clone(),
        hint: d.hint.clone(),
        is_error: matches!(d.severity, router::Severity::Error),
    }
}

/// Reports top-level keys that neither the switch nor the router owns (a typo such as `[trunk]`).
fn check_top_level_keys(loc: &Locator<'_>, errors: &mut Vec<ConfigError>) {
    let mut offset = 0;
    let mut in_root = true;
    for line in loc.source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let key = if let Some(rest) = trimmed.strip_prefix('[') {
            in_root = false;
            let rest = rest.strip_prefix('[').unwrap_or(rest);
            Some(rest.split([']', '.']).next().unwrap_or("").trim())
        } else if in_root && !trimmed.starts_with('#') && trimmed.contains('=') {
            Some(trimmed.split(['=', '.']).next().unwrap_or("").trim())
        } else {
            None
        };
        if let Some(key) = key {
            let key = key.trim_matches('"');
            if !key.is_empty()
                && !SWITCH_KEYS.contains(&key)
                && !router::TOP_LEVEL_KEYS.contains(&key)
            {
                let mut known: Vec<&str> = SWITCH_KEYS
                    .iter()
                    .chain(router::TOP_LEVEL_KEYS)
                    .copied()
                    .collect();
                known.sort_unstable();
                errors.push(loc.error(
                    offset + indent..offset + indent,
                    format!("unknown table or key `{key}`"),
                    Some(&format!("known top-level keys: {}", known.join(", "))),
                ));
            }
        }
        offset += line.len();
    }
}

fn parse_port_range(s: &str) -> Option<RangeInclusive<u16>> {
    let (a, b) = s.split_once('-')?;
    let a: u16 = a.trim().parse().ok()?;
    let b: u16 = b.trim().parse().ok()?;
    (a >= 1024 && a < b && b - a >= 3).then_some(a..=b)
}

fn build(loc: &Locator<'_>, raw: RawConfig, errors: &mut Vec<ConfigError>) -> Option<SwitchPart> {
    let n_errors = errors.len();
    let switch = raw.switch.map(Spanned::into_inner).unwrap_or_default();
    let domain = switch
        .domain
        .map_or_else(|| "centralino.local".to_owned(), Spanned::into_inner);
    let rtp_ports = match &switch.rtp_ports {
        None => 20000..=29999,
        Some(s) => parse_port_range(s.get_ref()).unwrap_or_else(|| {
            errors.push(loc.error(
                s.span(),
                format!("bad RTP port range `{}`", s.get_ref()),
                Some("write it as \"20000-29999\": two ports from 1024 up, at least 4 apart"),
            ));
            20000..=29999
        }),
    };
    let metrics = match &switch.metrics {
        None => None,
        Some(s) => match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(loc.error(
                    s.span(),
                    format!("bad metrics address `{}`", s.get_ref()),
                    Some("write it as IP:PORT, e.g. \"127.0.0.1:9091\""),
                ));
                None
            }
        },
    };
    let media_timeout = switch
        .media_timeout_secs
        .as_ref()
        .map_or(60, |s| *s.get_ref());
    if let Some(s) = &switch.media_timeout_secs
        && (*s.get_ref() == 0 || *s.get_ref() > 3600)
    {
        errors.push(loc.error(
            s.span(),
            "media_timeout_secs must be between 1 and 3600",
            None,
        ));
    }
    let digest_algorithms = match &switch.digest_algorithms {
        None => vec!["SHA-256".to_owned(), "MD5".to_owned()],
        Some(list) => {
            let ok = !list.get_ref().is_empty()
                && list.get_ref().iter().all(|a| a == "SHA-256" || a == "MD5");
            if !ok {
                errors.push(loc.error(
                    list.span(),
                    "digest_algorithms lists `SHA-256` and/or `MD5`",
                    Some("e.g. [\"SHA-256\", \"MD5\"]: the order is the order of the challenges"),
                ));
            }
            list.get_ref().clone()
        }
    };
    let nonce_lifetime = switch
        .nonce_lifetime_secs
        .as_ref()
        .map_or(300, |s| *s.get_ref());
    if let Some(s) = &switch.nonce_lifetime_secs
        && (*s.get_ref() == 0 || *s.get_ref() > 86_400)
    {
        errors.push(loc.error(
            s.span(),
            "nonce_lifetime_secs must be between 1 and 86400",
            None,
        ));
    }
    let advertise = switch
        .advertise
        .as_ref()
        .and_then(|a| match a.get_ref().parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => Some(ip),
            _ => {
                errors.push(loc.error(
                    a.span(),
                    format!("advertise `{}` is not a usable IP address", a.get_ref()),
                    Some("the address phones and trunks reach the switch at, e.g. \"192.0.2.1\""),
                ));
                None
            }
        });
    let min_expires = switch.min_expires.unwrap_or(60);
    let max_expires = switch.max_expires.unwrap_or(3600).max(min_expires);

    let mut extensions = BTreeMap::new();
    for ext in raw.extensions {
        let span = ext.span();
        let ext = ext.into_inner();
        let number = ext.number.get_ref().clone();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(loc.error(
                ext.number.span(),
                format!("extension number `{number}` must be digits"),
                None,
            ));
            continue;
        }
        let credentials = match (&ext.password, &ext.ha1_md5, &ext.ha1_sha256) {
            (Some(p), None, None) => registrar::Credentials::password(p.get_ref().clone()),
            (None, md5, sha) if md5.is_some() || sha.is_some() => {
                match registrar::Credentials::ha1(
                    md5.as_ref().map(|s| s.get_ref().as_str()),
                    sha.as_ref().map(|s| s.get_ref().as_str()),
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let at = md5
                            .as_ref()
                            .or(sha.as_ref())
                            .map_or(span.clone(), |s| s.span());
                        errors.push(loc.error(at, format!("extension {number}: {e}"), Some("ha1_md5 is 32 hex digits, ha1_sha256 is 64: H(number:domain:password)")));
                        continue;
                    }
                }
            }
            (None, None, None) => {
                errors.push(loc.error(
                    span,
                    format!("extension {number} has no password"),
                    Some(
                        "add password = \"...\" or ha1_md5/ha1_sha256 = H(number:domain:password)",
                    ),
                ));
                continue;
            }
            _ => {
                errors.push(loc.error(
                    span,
                    format!("extension {number} has both a password and an HA1"),
                    Some("keep one of them"),
                ));
                continue;
            }
        };
        if extensions.contains_key(&number) {
            errors.push(loc.error(
                ext.number.span(),
                format!("extension {number} is defined twice"),
                None,
            ));
            continue;
        }
        extensions.insert(
            number.clone(),
            Extension {
                number,
                name: ext.name,
                credentials,
            },
        );
    }

    let mut trunks = Vec::new();
    for trunk in raw.trunks {
        let span = trunk.span();
        let trunk = trunk.into_inner();
        let mut addresses = Vec::new();
        for a in &trunk.addresses {
            match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => errors.push(loc.error(
                    a.span(),
                    format!(
                        "trunk {}: `{}` is not an IP address",
                        trunk.name.get_ref(),
                        a.get_ref()
                    ),
                    None,
                )),
            }
        }
        let credentials = match (&trunk.username, &trunk.password) {
            (Some(u), Some(p)) => {
                if extensions.contains_key(u.get_ref()) {
                    errors.push(loc.error(
                        u.span(),
                        format!("trunk user name `{}` is also an extension", u.get_ref()),
                        None,
                    ));
                }
                Some((
                    u.get_ref().clone(),
                    registrar::Credentials::password(p.get_ref().clone()),
                ))
            }
            (None, None) => None,
            _ => {
                errors.push(loc.error(
                    span.clone(),
                    format!(
                        "trunk {} needs both username and password",
                        trunk.name.get_ref()
                    ),
                    None,
                ));
                None
            }
        };
        if trunk.addresses.is_empty() && credentials.is_none() {
            errors.push(loc.error(
                span,
                format!(
                    "trunk {} has neither addresses nor credentials",
                    trunk.name.get_ref()
                ),
                Some("add addresses = [\"192.0.2.10\"], or username and password"),
            ));
        }
        trunks.push(Trunk {
            name: trunk.name.into_inner(),
            addresses,
            credentials,
        });
    }

    if errors.len() != n_errors {
        return None;
    }
    Some(SwitchPart {
        file: loc.file.to_owned(),
        domain,
        rtp_ports,
        metrics,
        media_timeout: std::time::Duration::from_secs(media_timeout),
        min_expires,
        max_expires,
        language: switch.language.unwrap_or_else(|| "it".to_owned()),
        prompts_dir: switch.prompts,
        digest_algorithms,
        nonce_lifetime: std::time::Duration::from_secs(nonce_lifetime),
        advertise,
        md5_only_user_agents: switch.md5_only_user_agents,
        extensions,
        trunks,
    })
}

/// The switch's half of a [`Config`], before the dialplan is attached.
struct SwitchPart {
    file: String,
    domain: String,
    rtp_ports: RangeInclusive<u16>,
    metrics: Option<SocketAddr>,
    media_timeout: std::time::Duration,
    min_expires: u32,
    max_expires: u32,
    language: String,
    prompts_dir: Option<String>,
    digest_algorithms: Vec<String>,
    nonce_lifetime: std::time::Duration,
    advertise: Option<IpAddr>,
    md5_only_user_agents: Vec<String>,
    extensions: BTreeMap<String, Extension>,
    trunks: Vec<Trunk>,
}

impl SwitchPart {
    fn with_plan(self, plan: Arc<router::Plan>) -> Config {
        Config {
            file: self.file,
            domain: self.domain,
            rtp_ports: self.rtp_ports,
            metrics: self.metrics,
            media_timeout: self.media_timeout,
            min_expires: self.min_expires,
            max_expires: self.max_expires,
            language: self.language,
            prompts_dir: self.prompts_dir,
            digest_algorithms: self.digest_algorithms,
            nonce_lifetime: self.nonce_lifetime,
            advertise: self.advertise,
            md5_only_user_agents: self.md5_only_user_agents,
            extensions: self.extensions,
            trunks: self.trunks,
            plan,
            prompts: std::collections::BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../dialplans/example.toml"
        ))
        .expect("example")
    }

    /// Compiles `source` and renders every diagnostic, one per line.
    fn check(source: &str) -> String {
        match Config::compile("test.toml", source) {
            Ok((_, warnings)) => {
                warnings
                    .iter()
                    .map(|w| format!("{w}\n"))
                    .collect::<String>()
                    + "ok"
            }
            Err(errors) => errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn the_example_compiles() {
        let (config, _) = Config::compile("example.toml", &example()).expect("example is valid");
        assert_eq!(config.extensions.len(), 5);
        assert!(config.trunk_for("127.0.0.2".parse().expect("ip")).is_some());
        assert_eq!(config.language, "it");
    }

    #[test]
    fn the_old_operator_key_loads_with_a_warning() {
        let text = example().replace("[switch]\n", "[switch]\noperator = \"201\"\n");
        let (_, warnings) = Config::compile("example.toml", &text).expect("still valid");
        let w = warnings
            .iter()
            .find(|w| w.message.contains("`operator` is no longer used"))
            .expect("a warning");
        assert!(!w.is_error);
        assert_eq!((w.line, w.col), (5, 12));
    }

    #[test]
    fn every_switch_error_is_reported_with_its_position() {
        let source = example()
            .replace("rtp_ports = \"20000-29999\"", "rtp_ports = \"29999-20000\"")
            .replace("number = \"205\"", "number = \"204\"")
            .replace("[[trunks]]", "[[trunk]]");
        let out = check(&source);
        assert!(out.contains("bad RTP port range `29999-20000`"), "{out}");
        assert!(out.contains("extension 204 is defined twice"), "{out}");
        assert!(out.contains("unknown table or key `trunk`"), "{out}");
        for line in out.lines().filter(|l| l.starts_with("test.toml")) {
            let mut parts = line.splitn(4, ':');
            let (_, l, c) = (parts.next(), parts.next(), parts.next());
            assert!(
                l.and_then(|l| l.parse::<usize>().ok())
                    .is_some_and(|l| l > 0),
                "no line in {line}"
            );
            assert!(
                c.and_then(|c| c.parse::<usize>().ok())
                    .is_some_and(|c| c > 0),
                "no column in {line}"
            );
        }
    }

    #[test]
    fn unknown_switch_key_and_toml_syntax_errors_name_line_and_column() {
        let out = check(&example().replace("[switch]\n", "[switch]\nrtp_port = \"1-2\"\n"));
        assert!(out.contains("unknown field `rtp_port`"), "{out}");
        let out = check("[switch\ndomain = 1\n");
        assert!(out.starts_with("test.toml:1:"), "{out}");
    }

    #[test]
    fn trunk_with_credentials_and_no_addresses_is_valid() {
        let source = example().replace(
            "addresses = [\"127.0.0.2\"]",
            "addresses = []\nusername = \"provider\"\npassword = \"secret\"",
        );
        let (config, _) = Config::compile("t.toml", &source).expect("valid");
        assert!(config.trunk_by_user("provider").is_some());
        assert!(config.credentials("provider").is_some());
        assert!(config.credentials("201").is_some());
        let bad = example().replace("addresses = [\"127.0.0.2\"]", "addresses = []");
        assert!(check(&bad).contains("has neither addresses nor credentials"));
    }
}
