//! Prompts: audio files decoded once at load time into ready 20 ms G.711 frames.
//!
//! The switch reads a prompt file and hands its bytes to [`decode_prompt`]; this crate opens no
//! files. Decoding goes WAV/FLAC/MP3/Ogg-Vorbis → (symphonia 0.6) → mono f32 (mean of the
//! channels) → (rubato `Fft`, or its sinc interpolator for odd rates: band-limited, never sample
//! dropping) → 8 kHz → i16 with rounding and clamping → PCMU and PCMA,
//! each cut into 160-byte frames of 20 ms with the last one padded with silence. The playout
//! path then copies a ready frame per packet and never decodes, resamples or encodes.
//!
//! Do this off the event loop (`spawn_blocking` in the switch): a minute of 44.1 kHz audio
//! takes milliseconds, not microseconds (see `benches/audio.rs`).
//!
//! Undecodable bytes give a [`PromptError`], never a panic: the switch turns it into a config
//! error naming the file and the dialplan reference. Damage is an error too, not a shorter
//! prompt: a decode error anywhere, or fewer samples than the container declares. Opus is not
//! supported (symphonia has no Opus decoder).

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use rubato::audioadapter_buffers::direct::SequentialSliceOfSlices;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::g711::Law;

/// The sample rate of every prompt after decoding: G.711's 8 kHz.
pub const SAMPLE_RATE: u32 = 8_000;
/// Samples (and G.711 bytes) in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The duration of one frame (the RTP packetisation time, RFC 3551 §4.5 default).
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// The longest prompt accepted: bounds memory at load (about 115 MB of f32 for 48 kHz input).
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// One 20 ms G.711 frame, ready to be an RTP payload.
pub type Frame = [u8; FRAME_SAMPLES];

/// What a prompt's frames are encoded in, for one call: a G.711 law, or G.722.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
    /// G.722 at 64 kbit/s, payload type 9 (RTP clock 8000 Hz, RFC 3551 §4.5.2).
    G722,
}

impl From<Law> for Encoding {
    fn from(law: Law) -> Encoding {
        match law {
            Law::Pcmu => Encoding::Pcmu,
            Law::Pcma => Encoding::Pcma,
        }
    }
}

/// A decoded prompt: 8 kHz mono PCM and its PCMU, PCMA and G.722 frames, encoded once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    name: String,
    pcm: Vec<i16>,
    pcmu_frames: Vec<Frame>,
    pcma_frames: Vec<Frame>,
    g722_frames: Vec<Frame>,
}

impl Prompt {
    /// Build a prompt from 8 kHz mono samples: encode both laws and cut 20 ms frames.
    pub fn from_pcm(name: &str, pcm: Vec<i16>) -> Prompt {
        let pcmu_frames = frames(Law::Pcmu, &pcm);
        let pcma_frames = frames(Law::Pcma, &pcm);
        let g722_frames = g722_frames(&pcm);
        Prompt {
            name: name.to_owned(),
            pcm,
            pcmu_frames,
            pcma_frames,
            g722_frames,
        }
    }

    /// The prompt's name, as the dialplan refers to it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The audible duration (the samples, without the padding of the last frame).
    pub fn duration(&self) -> Duration {
        let samples = u64::try_from(self.pcm.len()).unwrap_or(u64::MAX);
        Duration::from_micros(samples.saturating_mul(1_000_000) / u64::from(SAMPLE_RATE))
    }

    /// The 8 kHz mono samples (for tests, mixing and voicemail beeps).
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// The number of 20 ms frames, the last one padded with silence.
    pub fn n_frames(&self) -> usize {
        self.pcmu_frames.len()
    }

    /// All frames in one encoding (a [`Law`] or [`Encoding`]).
    pub fn frames(&self, encoding: impl Into<Encoding>) -> &[Frame] {
        match encoding.into() {
            Encoding::Pcmu => &self.pcmu_frames,
            Encoding::Pcma => &self.pcma_frames,
            Encoding::G722 => &self.g722_frames,
        }
    }

    /// Frame `frame_idx` in one encoding, or `None` past the end.
    pub fn frame(&self, encoding: impl Into<Encoding>, frame_idx: usize) -> Option<&Frame> {
        self.frames(encoding).get(frame_idx)
    }
}

/// Why a prompt could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PromptError {
    /// The bytes are not a container or stream symphonia knows (WAV, FLAC, MP3, Ogg).
    #[error("prompt `{name}`: not a recognised audio file (WAV, FLAC, MP3, Ogg/Vorbis): {reason}")]
    UnknownFormat {
        /// The prompt's name.
        name: String,
        /// What the prober said.
        reason: String,
    },
    /// The container holds no audio track, or one whose codec we cannot decode (e.g. Opus).
    #[error("prompt `{name}`: no decodable audio track: {reason}")]
    Unsupported {
        /// The prompt's name.
        name: String,
        /// Which part is missing or unsupported.
        reason: String,
    },
    /// The stream is damaged: reading or decoding failed and no audio came out.
    #[error("prompt `{name}`: malformed audio: {reason}")]
    Malformed {
        /// The prompt's name.
        name: String,
        /// The first error met.
        reason: String,
    },
    /// The file decoded to no samples at all.
    #[error("prompt `{name}`: the file contains no audio")]
    Empty {
        /// The prompt's name.
        name: String,
    },
    /// The file is longer than [`MAX_DURATION`].
    #[error("prompt `{name}`: longer than {} s", MAX_DURATION.as_secs())]
    TooLong {
        /// The prompt's name.
        name: String,
    },
}

/// Decode an audio file's bytes (WAV, FLAC, MP3 or Ogg/Vorbis) into a ready [`Prompt`].
///
/// `extension_hint` is the file's extension (`"wav"`, `".mp3"` …) and only speeds up probing.
/// The audio is downmixed to mono, resampled to 8 kHz and encoded to both G.711 laws.
pub fn decode_prompt(
    name: &str,
    bytes: &[u8],
    extension_hint: Option<&str>,
) -> Result<Prompt, PromptError> {
    // symphonia parses untrusted files. Its own errors come back as `Err`; a bug that panics
    // inside it must still not take the switch down at reload, so it becomes a `Malformed`.
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        decode_mono(name, bytes, extension_hint)
    }))
    .unwrap_or_else(|_| {
        Err(PromptError::Malformed {
            name: name.to_owned(),
            reason: "the decoder failed on this input".to_owned(),
        })
    })?;
    if decoded.samples.is_empty() {
        return Err(PromptError::Empty {
            name: name.to_owned(),
        });
    }
    let pcm =
        to_8khz_i16(&decoded.samples, decoded.rate).map_err(|reason| PromptError::Unsupported {
            name: name.to_owned(),
            reason,
        })?;
    if pcm.is_empty() {
        return Err(PromptError::Empty {
            name: name.to_owned(),
        });
    }
    Ok(Prompt::from_pcm(name, pcm))
}

/// A sine tone, e.g. the voicemail beep: `level_dbfs` is its peak (0 = full scale), with
/// 5 ms raised-cosine ramps at both ends so it does not click.
pub fn tone(freq_hz: f32, ms: u32, level_dbfs: f32) -> Prompt {
    let n = (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize;
    let amplitude = 32767.0 * 10f32.powf(level_dbfs.min(0.0) / 20.0);
    let ramp = (SAMPLE_RATE as usize * 5 / 1000).min(n / 2).max(1);
    let step = std::f32::consts::TAU * freq_hz / SAMPLE_RATE as f32;
    let pcm = (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i);
            let gain = if edge < ramp {
                0.5 - 0.5 * (std::f32::consts::PI * edge as f32 / ramp as f32).cos()
            } else {
                1.0
            };
            to_i16(amplitude * gain * (step * i as f32).sin())
        })
        .collect();
    Prompt::from_pcm(&format!("tone-{freq_hz}Hz-{ms}ms"), pcm)
}

/// Cut `pcm` into 20 ms frames of one law, padding the last with the law's silence.
fn frames(law: Law, pcm: &[i16]) -> Vec<Frame> {
    pcm.chunks(FRAME_SAMPLES)
        .map(|chunk| {
            let mut frame = [law.silence(); FRAME_SAMPLES];
            law.encode(chunk, &mut frame);
            frame
        })
        .collect()
}

/// G.722 frames of 8 kHz samples: resampled to the codec's 16 kHz (so band-limited to 4 kHz)
/// and encoded as one stream, 160 bytes per 20 ms.
fn g722_frames(pcm: &[i16]) -> Vec<Frame> {
    let input: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let at_16k: Vec<i16> = match resample(&input, SAMPLE_RATE, 2 * SAMPLE_RATE) {
        Ok(out) => out.iter().map(|&s| to_i16(s * 32768.0)).collect(),
        // Cannot happen for 8 → 16 kHz; repeating samples still gives audible speech.
        Err(_) => pcm.iter().flat_map(|&s| [s, s]).collect(),
    };
    let mut encoder = crate::g722::Encoder::new();
    at_16k
        .chunks(2 * FRAME_SAMPLES)
        .map(|chunk| {
            let mut padded = [0i16; 2 * FRAME_SAMPLES];
            padded[..chunk.len()].copy_from_slice(chunk);
            let mut frame = [0u8; FRAME_SAMPLES];
            encoder.encode(&padded, &mut frame);
            frame
        })
        .collect()
}

/// f32 in [-1, 1] (symphonia's scale) to i16, rounded and clamped.
fn to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is the clamping we want.
    sample.round() as i16
}

struct Mono {
    samples: Vec<f32>,
    rate: u32,
}

fn decode_mono(
    name: &str,
    bytes: &[u8],
    extension_hint: Option<&str>,
) -> Result<Mono, PromptError> {
    let unknown = |reason: String| PromptError::UnknownFormat {
        name: name.to_owned(),
        reason,
    };
    let unsupported = |reason: String| PromptError::Unsupported {
        name: name.to_owned(),
        reason,
    };
    let malformed = |reason: String| PromptError::Malformed {
        name: name.to_owned(),
        reason,
    };

    let mut hint = Hint::new();
    if let Some(extension) = extension_hint {
        hint.with_extension(&extension.trim_start_matches('.').to_ascii_lowercase());
    }
    let source = Box::new(Cursor::new(bytes.to_vec()));
    let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| unknown(e.to_string()))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| unsupported("no audio track".to_owned()))?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| unsupported("the track has no audio codec parameters".to_owned()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| unsupported(e.to_string()))?;

    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut rate: Option<u32> = None;
    // Damage anywhere is an error, not a shorter prompt: a clipped announcement on an
    // emergency line is worse than a config error at load.
    let damaged = |mono: &[f32], rate: Option<u32>, e: &dyn std::fmt::Display| {
        let seconds = mono.len() as f64 / f64::from(rate.unwrap_or(SAMPLE_RATE));
        malformed(format!("after {seconds:.2} s of audio: {e}"))
    };
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            // symphonia 0.6: the end of the stream is `Ok(None)`.
            Ok(None) => break,
            // Some readers still report a truncated end as an unexpected EOF.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(damaged(&mono, rate, &e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(e) => return Err(damaged(&mono, rate, &e)),
        };
        let spec = buffer.spec();
        let n_channels = spec.channels().count();
        let buffer_rate = spec.rate();
        if n_channels == 0 {
            return Err(malformed("a packet has no channels".to_owned()));
        }
        if !RATES.contains(&buffer_rate) {
            return Err(unsupported(format!(
                "sample rate {buffer_rate} Hz is outside {} … {} Hz",
                RATES.start(),
                RATES.end()
            )));
        }
        match rate {
            None => rate = Some(buffer_rate),
            Some(r) if r != buffer_rate => {
                return Err(unsupported(format!(
                    "the sample rate changes from {r} Hz to {buffer_rate} Hz"
                )));
            }
            Some(_) => {}
        }
        interleaved.resize(buffer.samples_interleaved(), 0.0);
        buffer.copy_to_slice_interleaved(&mut interleaved);
        // Downmix: the mean of the channels keeps a mono-in-stereo file at its level.
        let scale = 1.0 / n_channels as f32;
        mono.extend(
            interleaved
                .chunks_exact(n_channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        let max_samples = MAX_DURATION.as_secs() as usize * buffer_rate as usize;
        if mono.len() > max_samples {
            return Err(PromptError::TooLong {
                name: name.to_owned(),
            });
        }
    }
    // Some readers resynchronise silently past a damaged frame (FLAC does): compare with the
    // length the container declares. The slack covers codec priming and one MP3 frame.
    if let Some(declared) = declared_frames {
        let decoded = mono.len() as u64;
        if decoded + declared / 200 + 1152 < declared {
            let rate = f64::from(rate.unwrap_or(SAMPLE_RATE));
            return Err(malformed(format!(
                "the file declares {:.2} s of audio but only {:.2} s decode (truncated or damaged)",
                declared as f64 / rate,
                decoded as f64 / rate
            )));
        }
    }
    Ok(Mono {
        samples: mono,
        rate: rate.unwrap_or(SAMPLE_RATE),
    })
}

/// The lowest and highest source sample rates accepted (covers 8 kHz telephony to 384 kHz).
const RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;
/// Above this FFT length (the source rate over gcd(rate, 8000)) the sinc resampler is used.
const MAX_FFT_LEN: u32 = 4_096;

/// Resample mono f32 at `rate` to 8 kHz with rubato, then scale to i16.
fn to_8khz_i16(samples: &[f32], rate: u32) -> Result<Vec<i16>, String> {
    if !RATES.contains(&rate) {
        return Err(format!(
            "sample rate {rate} Hz is outside {} … {} Hz",
            RATES.start(),
            RATES.end()
        ));
    }
    let resampled;
    let at_8khz: &[f32] = if rate == SAMPLE_RATE {
        samples
    } else {
        let mut resampler = resampler_to_8khz(rate)?;
        let channels = [samples];
        let input = SequentialSliceOfSlices::new(&channels[..], 1, samples.len())
            .map_err(|e| format!("resampler input: {e}"))?;
        // `process_all` trims the filter delay, so the output is aligned with the input and
        // has `len · 8000 / rate` frames.
        resampled = resampler
            .process_all(&input, samples.len(), None)
            .map_err(|e| format!("resampling failed: {e}"))?
            .take_data();
        &resampled
    };
    Ok(at_8khz.iter().map(|&s| to_i16(s * 32768.0)).collect())
}

/// A band-limited (anti-aliased) resampler from `rate` to 8 kHz: rubato's fixed-ratio `Fft`
/// for the usual rates (44.1, 48, 16, 22.05 kHz …), its sinc interpolator for odd ones whose
/// exact ratio would need a huge FFT.
/// `samples` at `from` Hz, resampled to `to` Hz (aligned, `len · to / from` samples).
fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| format!("cannot resample {from} Hz to {to} Hz: {e}"))?;
    let channels = [samples];
    let input = SequentialSliceOfSlices::new(&channels[..], 1, samples.len())
        .map_err(|e| format!("resampler input: {e}"))?;
    Ok(resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| format!("resampling failed: {e}"))?
        .take_data())
}

fn resampler_to_8khz(rate: u32) -> Result<Box<dyn Resampler<f32>>, String> {
    let error =
        |e: rubato::ResamplerConstructionError| format!("cannot resample {rate} Hz to 8 kHz: {e}");
    let fft_len = rate / gcd(rate, SAMPLE_RATE);
    if fft_len <= MAX_FFT_LEN {
        let fft = Fft::<f32>::new(
            rate as usize,
            SAMPLE_RATE as usize,
            1024,
            1,
            FixedSync::Input,
        )
        .map_err(error)?;
        return Ok(Box::new(fft));
    }
    let parameters = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: None,
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    let ratio = f64::from(SAMPLE_RATE) / f64::from(rate);
    let sinc = Async::<f32>::new_sinc(ratio, 1.0, &parameters, 1024, 1, FixedAsync::Input)
        .map_err(error)?;
    Ok(Box::new(sinc))
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 16-bit PCM WAV file in memory.
    fn wav(rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
        let data_len = (interleaved.len() * 2) as u32;
        let mut out = Vec::with_capacity(44 + interleaved.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        out.extend_from_slice(&(channels * 2).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in interleaved {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / samples.len() as f64).sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// A 1 kHz tone, `seconds` long, at 44.1 kHz stereo (both channels equal).
    fn stereo_tone(seconds: f64, amplitude: f64) -> (Vec<i16>, Vec<i16>) {
        let n = (44_100.0 * seconds) as usize;
        let mono: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / 44_100.0;
                (amplitude * (std::f64::consts::TAU * 1000.0 * t).sin()).round() as i16
            })
            .collect();
        let stereo = mono.iter().flat_map(|&s| [s, s]).collect();
        (mono, stereo)
    }

    fn check_tone_prompt(prompt: &Prompt, seconds: f64, source_rms: f64) {
        let expected_frames = (seconds * 50.0).ceil() as i64;
        let n_frames = prompt.n_frames() as i64;
        assert!(
            (n_frames - expected_frames).abs() <= 1,
            "{}: {n_frames} frames, expected {expected_frames} ± 1",
            prompt.name()
        );
        let duration = prompt.duration().as_secs_f64();
        assert!(
            (duration - seconds).abs() <= 0.02,
            "{}: duration {duration} s",
            prompt.name()
        );
        assert_eq!(prompt.frames(Law::Pcma).len(), prompt.n_frames());
        // Skip the edges, where the resampler's filter rings.
        let pcm = prompt.pcm();
        let middle = &pcm[400..pcm.len() - 400];
        let level = db(rms(middle) / source_rms);
        assert!(
            level.abs() <= 1.0,
            "{}: level off by {level:.2} dB",
            prompt.name()
        );
        // The G.711 frames decode back to the same level.
        let mut decoded = vec![0i16; FRAME_SAMPLES];
        let mut all = Vec::new();
        for frame in prompt.frames(Law::Pcmu) {
            Law::Pcmu.decode(frame, &mut decoded);
            all.extend_from_slice(&decoded);
        }
        let level = db(rms(&all[400..pcm.len() - 400]) / source_rms);
        assert!(
            level.abs() <= 1.0,
            "{}: PCMU level off by {level:.2} dB",
            prompt.name()
        );
    }

    #[test]
    fn wav_44k1_stereo_becomes_8k_mono_frames() {
        let (mono, stereo) = stereo_tone(1.5, 10_000.0);
        let bytes = wav(44_100, 2, &stereo);
        let prompt = decode_prompt("tone", &bytes, Some("wav")).expect("a valid WAV");
        assert_eq!(prompt.name(), "tone");
        check_tone_prompt(&prompt, 1.5, rms(&mono));
        // 1.5 s = exactly 75 frames.
        assert_eq!(prompt.n_frames(), 75);
    }

    #[test]
    fn wav_8k_mono_passes_through_unchanged() {
        let pcm: Vec<i16> = (0..1000).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let bytes = wav(8000, 1, &pcm);
        let prompt = decode_prompt("raw", &bytes, None).expect("a valid WAV");
        assert_eq!(prompt.pcm(), &pcm[..]);
        // 1000 samples: 6 full frames and a padded 7th.
        assert_eq!(prompt.n_frames(), 7);
        let last = prompt.frame(Law::Pcmu, 6).expect("7 frames");
        assert!(last[40..].iter().all(|&c| c == Law::Pcmu.silence()));
        let last = prompt.frame(Law::Pcma, 6).expect("7 frames");
        assert!(last[40..].iter().all(|&c| c == Law::Pcma.silence()));
        assert_eq!(prompt.frame(Law::Pcmu, 7), None);
        assert_eq!(prompt.duration(), Duration::from_millis(125));
    }

    #[test]
    fn wav_48k_and_16k_resample_to_the_right_length() {
        for rate in [48_000u32, 16_000, 22_050, 11_025, 44_101, 96_000] {
            let n = rate as usize; // one second
            let pcm: Vec<i16> = (0..n)
                .map(|i| {
                    let t = i as f64 / f64::from(rate);
                    (8000.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16
                })
                .collect();
            let bytes = wav(rate, 1, &pcm);
            let prompt = decode_prompt("r", &bytes, Some(".WAV")).expect("valid");
            let n_out = prompt.pcm().len() as i64;
            assert!((n_out - 8000).abs() <= 2, "{rate} Hz: {n_out} samples");
            let middle = &prompt.pcm()[400..7600];
            let level = db(rms(middle) / rms(&pcm));
            assert!(level.abs() <= 1.0, "{rate} Hz: level off by {level:.2} dB");
        }
    }

    #[test]
    fn full_scale_input_is_clamped_not_wrapped() {
        let pcm: Vec<i16> = (0..44_100)
            .map(|i| {
                if (i / 20) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let bytes = wav(44_100, 1, &pcm);
        let prompt = decode_prompt("square", &bytes, None).expect("valid");
        // A full-scale square wave overshoots after filtering (Gibbs); clamped samples sit at
        // the rails instead of wrapping to the opposite sign.
        let pcm = prompt.pcm();
        assert!(pcm.iter().any(|&s| s == i16::MAX || s == i16::MIN));
        assert!(pcm.len() == 8000);
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/");
        std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }

    /// The committed fixtures are made by `test_data/make-fixtures.sh`: a 1 kHz tone at
    /// -12 dBFS peak, 1 s long, 44.1 kHz stereo (FLAC, Ogg/Vorbis) or 22.05 kHz mono (MP3).
    #[test]
    fn flac_ogg_and_mp3_fixtures_decode() {
        let source_rms = 32768.0 * 10f64.powf(-12.0 / 20.0) / 2f64.sqrt();
        for (file, ext) in [
            ("tone-1k.flac", "flac"),
            ("tone-1k.ogg", "ogg"),
            ("tone-1k.mp3", "mp3"),
        ] {
            let bytes = fixture(file);
            let prompt =
                decode_prompt(file, &bytes, Some(ext)).unwrap_or_else(|e| panic!("{file}: {e}"));
            // MP3 adds encoder delay and padding (up to ~2 frames at 22.05 kHz); allow it.
            let seconds = prompt.duration().as_secs_f64();
            assert!((seconds - 1.0).abs() < 0.1, "{file}: {seconds} s");
            let pcm = prompt.pcm();
            let middle = &pcm[1200..pcm.len() - 1200];
            let level = db(rms(middle) / source_rms);
            assert!(level.abs() <= 1.0, "{file}: level off by {level:.2} dB");
            // Without the hint too.
            let again = decode_prompt(file, &bytes, None).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(again.n_frames(), prompt.n_frames());
        }
    }

    #[test]
    fn garbage_gives_a_clear_error() {
        for (bytes, hint) in [
            (&b""[..], None),
            (&b"hello, this is not audio at all"[..], Some("wav")),
            (&b"RIFF\x10\0\0\0WAVEfmt "[..], Some("wav")),
            (&b"fLaC\0\0\0\x22"[..], Some("flac")),
            (&b"OggS\0\x02"[..], Some("ogg")),
        ] {
            let err = decode_prompt("bad", bytes, hint).expect_err("garbage is not a prompt");
            let message = err.to_string();
            assert!(message.starts_with("prompt `bad`: "), "{message}");
        }
        // A WAV header whose data chunk is empty.
        let bytes = wav(8000, 1, &[]);
        let err = decode_prompt("silent", &bytes, None).expect_err("no audio");
        assert!(
            matches!(
                err,
                PromptError::Empty { .. } | PromptError::Malformed { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn decoder_panics_become_errors() {
        // 65535 channels: symphonia-format-riff 0.6.1 computes the block align in u16
        // (wave/chunks.rs:100) and overflows, a panic in debug builds. It must come back as
        // an error (or, where it wraps silently, at least not bring the caller down).
        let pcm: Vec<i16> = (0..800).map(|i| (i * 40) as i16).collect();
        let mut bytes = wav(8000, 1, &pcm);
        bytes[22..24].copy_from_slice(&u16::MAX.to_le_bytes());
        let result = decode_prompt("wide", &bytes, Some("wav"));
        if cfg!(debug_assertions) {
            assert!(
                matches!(result, Err(PromptError::Malformed { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn damage_is_an_error_not_a_shorter_prompt() {
        // The middle of the FLAC and Ogg fixtures overwritten: FLAC resynchronises silently,
        // Ogg notices the CRC; both must fail. (MP3 frames carry no checksum: damage there
        // decodes as noise and cannot be told from audio.)
        for name in ["tone-1k.flac", "tone-1k.ogg"] {
            let mut bytes = fixture(name);
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 200] {
                *b ^= 0x5a;
            }
            let result = decode_prompt(name, &bytes, None);
            assert!(result.is_err(), "{name}: {result:?}");
        }
        // A WAV cut in the middle of its data chunk.
        let (_, stereo) = stereo_tone(1.0, 8000.0);
        let bytes = wav(44_100, 2, &stereo);
        let err = decode_prompt("cut", &bytes[..bytes.len() / 2], None).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn truncated_files_never_panic() {
        let (_, stereo) = stereo_tone(0.2, 8000.0);
        let mut files = vec![wav(44_100, 2, &stereo)];
        for name in ["tone-1k.flac", "tone-1k.ogg", "tone-1k.mp3"] {
            files.push(fixture(name));
        }
        for bytes in &files {
            for cut in (0..bytes.len()).step_by(97) {
                let _ = decode_prompt("cut", &bytes[..cut], None);
            }
        }
    }

    #[test]
    fn tone_has_the_asked_frequency_length_and_level() {
        let beep = tone(1000.0, 300, -6.0);
        assert_eq!(beep.pcm().len(), 2400);
        assert_eq!(beep.n_frames(), 15);
        assert_eq!(beep.duration(), Duration::from_millis(300));
        let peak = beep
            .pcm()
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0);
        let expected = 32767.0 * 10f64.powf(-6.0 / 20.0);
        assert!(
            (f64::from(peak) - expected).abs() < 0.01 * expected,
            "peak {peak}"
        );
        // Ramps: starts and ends quietly.
        assert!(beep.pcm()[0].abs() < 100 && beep.pcm()[2399].abs() < 1000);
        // 1 kHz at 8 kHz: zero crossings every 4 samples → 600 sign changes in 300 ms.
        let crossings = beep.pcm()[40..2360]
            .windows(2)
            .filter(|w| (w[0] >= 0) != (w[1] >= 0))
            .count();
        assert!((575..=585).contains(&crossings), "{crossings} crossings");
    }

    /// Reads the committed prompt sets (`prompts/<language>/*.wav`, made by
    /// `scripts/gen-prompts.sh`) of the repository.
    pub(crate) fn committed_prompts() -> Vec<(String, Prompt)> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts");
        let mut out = Vec::new();
        for language in ["it", "en"] {
            let dir = format!("{root}/{language}");
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("?")
                    .to_owned();
                let bytes = std::fs::read(&path).expect("a readable prompt");
                let prompt = decode_prompt(&name, &bytes, Some("wav"))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((format!("{language}/{name}"), prompt));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn committed_prompt_sets_are_complete_and_decode() {
        let prompts = committed_prompts();
        let mut required = vec![
            "welcome",
            "main-menu",
            "option-info",
            "option-spesa",
            "option-assistenza",
            "option-salute",
            "option-ascolto",
            "invalid-choice",
            "no-input",
            "info",
            "please-wait",
            "closed",
            "not-in-service",
            "goodbye",
            "beep",
            "you-are-caller",
            "in-line",
        ];
        let digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
        required.extend(digits);
        for language in ["it", "en"] {
            for name in &required {
                let key = format!("{language}/{name}");
                let prompt = prompts
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, p)| p)
                    .unwrap_or_else(|| panic!("prompts/{key}.wav is missing"));
                assert!(
                    prompt.n_frames() >= 10,
                    "{key}: {} frames",
                    prompt.n_frames()
                );
                assert!(
                    prompt.duration() < Duration::from_secs(30),
                    "{key} too long"
                );
                // Normalised by the script: loud enough, not clipped.
                let peak = prompt
                    .pcm()
                    .iter()
                    .map(|s| s.unsigned_abs())
                    .max()
                    .unwrap_or(0);
                assert!((10_000..=32_767).contains(&peak), "{key}: peak {peak}");
            }
        }
        let beep = &prompts
            .iter()
            .find(|(k, _)| k == "it/beep")
            .expect("beep")
            .1;
        assert_eq!(beep.duration(), Duration::from_millis(300));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_bytes_give_a_prompt_or_an_error(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            hint in proptest::prop_oneof![
                proptest::strategy::Just(None),
                proptest::strategy::Just(Some("wav")),
                proptest::strategy::Just(Some("mp3")),
                proptest::strategy::Just(Some("flac")),
                proptest::strategy::Just(Some("ogg")),
            ],
        ) {
            let _ = decode_prompt("fuzz", &bytes, hint);
        }

        #[test]
        fn mutated_compressed_fixtures_never_panic(
            file_idx in 0usize..3,
            flips in proptest::collection::vec((0usize..20_000, proptest::prelude::any::<u8>()), 1..16),
        ) {
            let name = ["tone-1k.flac", "tone-1k.ogg", "tone-1k.mp3"][file_idx];
            let mut bytes = fixture(name);
            let len = bytes.len();
            for (at, value) in flips {
                bytes[at % len] = value;
            }
            let _ = decode_prompt("fuzz", &bytes, None);
        }

        #[test]
        fn mutated_wav_headers_never_panic(
            flips in proptest::collection::vec((0usize..64, proptest::prelude::any::<u8>()), 1..8),
        ) {
            let pcm: Vec<i16> = (0..800).map(|i| (i * 40) as i16).collect();
            let mut bytes = wav(16_000, 1, &pcm);
            for (at, value) in flips {
                bytes[at] = value;
            }
            let _ = decode_prompt("fuzz", &bytes, Some("wav"));
        }
    }
}

#[cfg(test)]
mod g722_frames_tests {
    use super::*;

    #[test]
    fn a_prompts_g722_frames_decode_to_the_prompt() {
        let p = tone(1000.0, 1000, -6.0);
        let frames = p.frames(Encoding::G722);
        assert_eq!(frames.len(), p.n_frames(), "one 160-byte frame per 20 ms");
        let mut dec = crate::g722::Decoder::new();
        let mut out = Vec::new();
        for f in frames {
            let mut pcm = [0i16; FRAME_SAMPLES];
            let n = dec.decode(f, &mut pcm);
            out.extend_from_slice(&pcm[..n]);
        }
        let rms = |x: &[i16]| {
            (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
        };
        let level = 20.0 * (rms(&out[1600..6400]) / rms(&p.pcm()[1600..6400])).log10();
        assert!(level.abs() < 2.0, "G.722 prompt level {level:.1} dB off");
    }
}
