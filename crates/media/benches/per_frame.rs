//! Media per-frame costs (issue 5): what one call costs every 20 ms (160 samples at 8 kHz) on
//! each path: G.711, in-band DTMF detection, prompt playout, voicemail recording, and prompt
//! decoding (load time) of a committed prompt per 20 ms of its audio.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use media::dtmf_detect::{DtmfDetector, dtmf_tone};
use media::g711::Law;
use media::prompt::{decode_prompt, tone};
use media::{Playout, Recorder, RecorderConfig};

const FRAME: usize = 160;
const WELCOME: &[u8] = include_bytes!("../../../prompts/it/welcome.wav");

/// One second of speech-like noise: low-passed pseudo-random noise under a syllable-rate
/// envelope, plus a wandering voiced component (deterministic, no `rand`).
fn speech_like() -> Vec<i16> {
    let mut state = 0x2545_f491_u32;
    let mut low = 0.0f64;
    (0..8000)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let white = f64::from(state as i32) / f64::from(i32::MAX);
            low = 0.7 * low + 0.3 * white;
            let t = f64::from(i) / 8000.0;
            let envelope = 0.55 + 0.45 * (std::f64::consts::TAU * 4.0 * t).sin();
            let pitch = 140.0 + 30.0 * (std::f64::consts::TAU * 0.7 * t).sin();
            let voiced = (std::f64::consts::TAU * pitch * t).sin()
                + 0.5 * (std::f64::consts::TAU * 3.0 * pitch * t).sin();
            (envelope * (9000.0 * low + 4000.0 * voiced)) as i16
        })
        .collect()
}

fn g711(c: &mut Criterion) {
    let speech = speech_like();
    let samples: [i16; FRAME] = speech[..FRAME].try_into().expect("a frame");
    let mut group = c.benchmark_group("frame20ms_g711");
    group.throughput(Throughput::Elements(FRAME as u64));
    for law in [Law::Pcmu, Law::Pcma] {
        let mut codes = [0u8; FRAME];
        group.bench_function(format!("encode_{law:?}"), |b| {
            b.iter(|| law.encode(black_box(&samples), black_box(&mut codes)))
        });
        let mut decoded = [0i16; FRAME];
        group.bench_function(format!("decode_{law:?}"), |b| {
            b.iter(|| law.decode(black_box(&codes), black_box(&mut decoded)))
        });
    }
    group.finish();
}

fn dtmf(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame20ms_dtmf_detect");
    group.throughput(Throughput::Elements(FRAME as u64));
    let inputs: [(&str, Vec<i16>); 3] = [
        ("silence", vec![0; 8000]),
        ("speech_like_noise", speech_like()),
        // A held key: every window runs all the checks, harmonics included.
        ("digit_5", dtmf_tone('5', 1000, -10.0)),
    ];
    for (name, audio) in &inputs {
        let mut detector = DtmfDetector::new();
        let mut frames = audio.chunks_exact(FRAME).cycle();
        group.bench_function(*name, |b| {
            b.iter(|| {
                let frame = frames.next().expect("cycles");
                black_box(detector.push(black_box(frame)).count())
            })
        });
    }
    group.finish();
}

fn playout(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame20ms_playout");
    group.throughput(Throughput::Elements(1));
    let welcome = Arc::new(decode_prompt("welcome", WELCOME, Some("wav")).expect("valid"));
    let beep = Arc::new(tone(1000.0, 300, -6.0));
    let mut playout = Playout::new(0x1234_5678, 0, 0, Law::Pcma, 8);
    playout.play_looped(welcome, Some(beep), Duration::from_secs(2));
    let mut buf = [0u8; 172];
    group.bench_function("tick_sending", |b| {
        b.iter(|| black_box(playout.tick(black_box(&mut buf))))
    });
    let mut idle = Playout::new(0x1234_5678, 0, 0, Law::Pcma, 8);
    group.bench_function("tick_idle", |b| {
        b.iter(|| black_box(idle.tick(black_box(&mut buf))))
    });
    group.finish();
}

fn recorder(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame20ms_recorder");
    group.throughput(Throughput::Elements(FRAME as u64));
    let speech = speech_like();
    let config = RecorderConfig::default();
    let frames_per_recording = (config.max.as_millis() / 20) as u64;
    group.bench_function("push_speech", |b| {
        // A recording ends at its maximum; start a new one (untimed) when it does.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            let mut frames = speech.chunks_exact(FRAME).cycle();
            while left > 0 {
                let mut recorder = Recorder::new(config);
                let n = left.min(frames_per_recording);
                let start = Instant::now();
                for _ in 0..n {
                    let frame = frames.next().expect("cycles");
                    black_box(recorder.push(black_box(frame)));
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    group.finish();
}

fn prompt_decode(c: &mut Criterion) {
    let prompt = decode_prompt("welcome", WELCOME, Some("wav")).expect("valid");
    let n_frames = prompt.n_frames() as u64;
    eprintln!(
        "prompts/it/welcome.wav: {} bytes, {n_frames} frames of 20 ms",
        WELCOME.len()
    );
    let mut group = c.benchmark_group("frame20ms_prompt_decode");
    group.sample_size(20);
    // Criterion's time is for the whole file; elements/s is frames decoded per second.
    group.throughput(Throughput::Elements(n_frames));
    group.bench_function("it_welcome_wav_whole", |b| {
        b.iter(|| decode_prompt("welcome", black_box(WELCOME), Some("wav")).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, g711, dtmf, playout, recorder, prompt_decode);
criterion_main!(benches);
