//! Digest verification throughput: `cargo bench -p registrar`.
//!
//! Target: well over 200 000 verifications per second on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registrar::{
    Algorithm, Credentials, DigestAuthority, QopAuth, compute_response, ha1_md5, ha1_sha256,
};

const REALM: &str = "pbx.example";
const URI: &str = "sip:pbx.example";

/// The quoted parameter `name` from a challenge.
fn param_of(challenge: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let start = challenge.find(&key).expect("challenge has the parameter") + key.len();
    let len = challenge[start..].find('"').expect("value is quoted");
    challenge[start..start + len].to_owned()
}

/// `n` Authorization values with increasing nonce counts, so none is a replay.
fn headers(algorithm: Algorithm, nonce: &str, opaque: &str, n: u32) -> Vec<String> {
    let ha1 = match algorithm {
        Algorithm::Md5 => ha1_md5("1013", REALM, "sometestsecret"),
        _ => ha1_sha256("1013", REALM, "sometestsecret"),
    };
    (1..=n)
        .map(|count| {
            let nc = format!("{count:08x}");
            let qop = QopAuth {
                nc: &nc,
                cnonce: "nrQhP0p3w8fjTMn",
            };
            let response = compute_response(algorithm, &ha1, nonce, "REGISTER", URI, Some(qop));
            format!(
                "Digest username=\"1013\", realm=\"{REALM}\", nonce=\"{nonce}\", qop=auth, \
                 cnonce=\"nrQhP0p3w8fjTMn\", nc={nc}, opaque=\"{opaque}\", uri=\"{URI}\", \
                 response=\"{response}\", algorithm={}",
                algorithm.as_str()
            )
        })
        .collect()
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    let stored = Credentials::ha1(
        Some(&ha1_md5("1013", REALM, "sometestsecret")),
        Some(&ha1_sha256("1013", REALM, "sometestsecret")),
    )
    .expect("valid HA1s");
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let now = Instant::now();
        let mut authority = DigestAuthority::new(REALM, [9; 32], Duration::from_secs(3600));
        let challenge = authority.challenge(now, false);
        let nonce = param_of(&challenge[0], "nonce");
        let opaque = param_of(&challenge[0], "opaque");
        // After one pass the counts repeat and end in `Replay`, which is found last, after
        // the digest and nonce checks, so every iteration does the full work.
        let values = headers(algorithm, &nonce, &opaque, 4096);
        let first = authority.verify(&values[0], "REGISTER", |_| Some(&stored), now);
        assert_eq!(
            first.map(|a| a.username().to_owned()).as_deref(),
            Ok("1013")
        );
        let mut idx = 0usize;
        group.bench_function(algorithm.as_str(), |b| {
            b.iter(|| {
                idx = (idx + 1) % values.len();
                let result = authority.verify(&values[idx], "REGISTER", |_| Some(&stored), now);
                black_box(result)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
