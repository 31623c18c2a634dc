//! Audio hot paths: G.711 and in-band DTMF detection per 20 ms frame, and prompt decoding
//! (load time, not the packet path) per second of audio.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use media::dtmf_detect::{DtmfDetector, dtmf_tone};
use media::g711::Law;
use media::prompt::decode_prompt;

/// One 20 ms frame of speech-like signal: a few tones with a moving envelope.
fn voice_frame() -> [i16; 160] {
    let mut frame = [0i16; 160];
    for (i, s) in frame.iter_mut().enumerate() {
        let t = i as f64 / 8000.0;
        let v = 6000.0 * (std::f64::consts::TAU * 220.0 * t).sin()
            + 3000.0 * (std::f64::consts::TAU * 660.0 * t).sin()
            + 1500.0 * (std::f64::consts::TAU * 1900.0 * t).sin();
        *s = v as i16;
    }
    frame
}

fn g711(c: &mut Criterion) {
    let samples = voice_frame();
    let mut group = c.benchmark_group("g711_frame_20ms");
    group.throughput(Throughput::Elements(160));
    for law in [Law::Pcmu, Law::Pcma] {
        let mut codes = [0u8; 160];
        group.bench_function(format!("encode_{law:?}"), |b| {
            b.iter(|| law.encode(black_box(&samples), black_box(&mut codes)))
        });
        let mut decoded = [0i16; 160];
        group.bench_function(format!("decode_{law:?}"), |b| {
            b.iter(|| law.decode(black_box(&codes), black_box(&mut decoded)))
        });
    }
    group.finish();
}

fn dtmf(c: &mut Criterion) {
    let mut group = c.benchmark_group("dtmf_detect_frame_20ms");
    group.throughput(Throughput::Elements(160));
    let voice = voice_frame();
    let mut detector = DtmfDetector::new();
    group.bench_function("speech", |b| {
        b.iter(|| black_box(detector.push(black_box(&voice)).count()))
    });
    let silence = [0i16; 160];
    let mut detector = DtmfDetector::new();
    group.bench_function("silence", |b| {
        b.iter(|| black_box(detector.push(black_box(&silence)).count()))
    });
    // A held key: every window runs all the checks, harmonics included.
    let tone = dtmf_tone('5', 20, -10.0);
    let mut detector = DtmfDetector::new();
    group.bench_function("dtmf_tone", |b| {
        b.iter(|| black_box(detector.push(black_box(&tone)).count()))
    });
    group.finish();
}

/// A 16-bit PCM WAV file in memory: one second of a 1 kHz tone.
fn wav(rate: u32, channels: u16) -> Vec<u8> {
    let n = rate as usize * usize::from(channels);
    let data_len = (n * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let t = (i / usize::from(channels)) as f64 / f64::from(rate);
        let s = (8000.0 * (std::f64::consts::TAU * 1000.0 * t).sin()) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn prompts(c: &mut Criterion) {
    let mut group = c.benchmark_group("prompt_decode_1s");
    group.sample_size(20);
    let inputs: Vec<(&str, Vec<u8>, &str)> = vec![
        ("wav_8k_mono", wav(8000, 1), "wav"),
        ("wav_44k1_stereo", wav(44_100, 2), "wav"),
        ("wav_48k_mono", wav(48_000, 1), "wav"),
        (
            "flac_44k1_stereo",
            include_bytes!("../test_data/tone-1k.flac").to_vec(),
            "flac",
        ),
        (
            "ogg_vorbis_44k1_stereo",
            include_bytes!("../test_data/tone-1k.ogg").to_vec(),
            "ogg",
        ),
        (
            "mp3_22k05_mono",
            include_bytes!("../test_data/tone-1k.mp3").to_vec(),
            "mp3",
        ),
    ];
    for (name, bytes, ext) in &inputs {
        group.bench_function(*name, |b| {
            b.iter(|| decode_prompt("bench", black_box(bytes), Some(ext)).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, g711, dtmf, prompts);
criterion_main!(benches);
