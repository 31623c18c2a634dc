//! Voicemail capture: decoded 8 kHz samples in, a recording that knows when to end out.
//!
//! The media task decodes the caller's G.711 and pushes the samples into a [`Recorder`]; it
//! says when the message is over: at the maximum length, or after `silence_end` of continuous
//! silence once the caller has said something (silence before the first sound never ends a
//! recording, only the maximum does). Silence is judged per 20 ms block of the recording by
//! its RMS level against `silence_threshold_dbfs` (0 dBFS = a full-scale square wave).
//! The buffer for the longest recording is allocated once, in [`Recorder::new`], so pushing
//! allocates nothing. [`wav_bytes`] makes the file the switch writes; this crate writes none.

use std::time::Duration;

use crate::prompt::{FRAME_SAMPLES, SAMPLE_RATE};

/// How much silence is kept after the last sound when a recording ends on silence.
pub const KEEP_TRAILING_SILENCE: Duration = Duration::from_millis(500);

/// When a recording ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecorderConfig {
    /// The longest recording; it ends with exactly this many samples.
    pub max: Duration,
    /// Continuous silence, after the first sound, that ends the recording.
    pub silence_end: Duration,
    /// A 20 ms block whose RMS level is at or below this is silence.
    pub silence_threshold_dbfs: f32,
}

impl Default for RecorderConfig {
    /// 180 s at most, ending after 5 s of silence below -45 dBFS.
    fn default() -> RecorderConfig {
        RecorderConfig {
            max: Duration::from_secs(180),
            silence_end: Duration::from_secs(5),
            silence_threshold_dbfs: -45.0,
        }
    }
}

/// Why a recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordEnd {
    /// It reached [`RecorderConfig::max`].
    MaxLength,
    /// [`RecorderConfig::silence_end`] of silence followed the caller's last sound.
    Silence,
}

/// One voicemail recording (see the module docs).
#[derive(Clone, Debug)]
pub struct Recorder {
    samples: Vec<i16>,
    max_samples: usize,
    silence_end_samples: usize,
    /// A block is sound when its sum of squares is above this.
    threshold_sum_sq: u64,
    /// Sum of squares of the block being filled (the samples past the last whole block).
    block_sum_sq: u64,
    block_len: usize,
    /// The sample count at the end of the last block of sound, once one was heard.
    sound_end: Option<usize>,
    /// Samples of continuous silence (whole blocks) since the last sound.
    silent_run: usize,
    ended: Option<RecordEnd>,
}

impl Recorder {
    /// A recorder with room for `config.max` of 8 kHz mono samples, allocated now.
    pub fn new(config: RecorderConfig) -> Recorder {
        let max_samples = samples_in(config.max);
        // RMS ≤ 32768·10^(dB/20) over a block ⇔ Σs² ≤ N·(32768·10^(dB/20))².
        let rms = 32_768.0 * 10f64.powf(f64::from(config.silence_threshold_dbfs) / 20.0);
        let threshold = FRAME_SAMPLES as f64 * rms * rms;
        Recorder {
            samples: Vec::with_capacity(max_samples),
            max_samples,
            silence_end_samples: samples_in(config.silence_end),
            // `as` saturates: a threshold above full scale makes everything silence.
            threshold_sum_sq: threshold as u64,
            block_sum_sq: 0,
            block_len: 0,
            sound_end: None,
            silent_run: 0,
            ended: None,
        }
    }

    /// Append decoded 8 kHz samples (any length). Returns `Some(end)` once the recording must
    /// end (the samples past that point are dropped), and the same again on every later push.
    pub fn push(&mut self, samples: &[i16]) -> Option<RecordEnd> {
        if self.ended.is_some() {
            return self.ended;
        }
        let room = self.max_samples.saturating_sub(self.samples.len());
        let mut rest = &samples[..samples.len().min(room)];
        // Whole slices up to the next 20 ms block boundary: one copy and one sum each.
        while !rest.is_empty() {
            let take = rest.len().min(FRAME_SAMPLES - self.block_len);
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            self.samples.extend_from_slice(chunk);
            self.block_sum_sq += chunk
                .iter()
                .map(|&s| u64::from(s.unsigned_abs()).pow(2))
                .sum::<u64>();
            self.block_len += take;
            if self.block_len == FRAME_SAMPLES && self.end_block() {
                self.end_on_silence();
                break;
            }
        }
        if self.ended.is_none() && self.samples.len() >= self.max_samples {
            self.ended = Some(RecordEnd::MaxLength);
        }
        self.ended
    }

    /// Judge the block just filled; true when the silence after the first sound is long
    /// enough to end the recording.
    fn end_block(&mut self) -> bool {
        let sound = self.block_sum_sq > self.threshold_sum_sq;
        self.block_sum_sq = 0;
        self.block_len = 0;
        if sound {
            self.sound_end = Some(self.samples.len());
            self.silent_run = 0;
            return false;
        }
        if self.sound_end.is_none() {
            return false;
        }
        self.silent_run += FRAME_SAMPLES;
        self.silent_run >= self.silence_end_samples
    }

    fn end_on_silence(&mut self) {
        let keep = samples_in(KEEP_TRAILING_SILENCE);
        if let Some(sound_end) = self.sound_end {
            self.samples.truncate(sound_end.saturating_add(keep));
        }
        self.ended = Some(RecordEnd::Silence);
    }

    /// The recording so far: once it ended on silence, without the silence beyond
    /// [`KEEP_TRAILING_SILENCE`] after the last sound.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// The duration of [`Recorder::samples`].
    pub fn duration(&self) -> Duration {
        let n = u64::try_from(self.samples.len()).unwrap_or(u64::MAX);
        Duration::from_micros(n.saturating_mul(1_000_000) / u64::from(SAMPLE_RATE))
    }

    /// Why the recording ended, once it has.
    pub fn ended(&self) -> Option<RecordEnd> {
        self.ended
    }
}

/// The number of 8 kHz samples in `duration`, rounded down.
fn samples_in(duration: Duration) -> usize {
    let n = duration.as_micros().saturating_mul(u128::from(SAMPLE_RATE)) / 1_000_000;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The length of the RIFF/WAVE header [`wav_bytes`] writes.
pub const WAV_HEADER_LEN: usize = 44;

/// A 16-bit PCM mono WAV file (RIFF, little-endian) of 8 kHz samples.
pub fn wav_bytes(samples: &[i16]) -> Vec<u8> {
    // RIFF sizes are u32: a file stops at 4 GiB (~37 hours at 8 kHz), far past any voicemail.
    let max_samples = (u32::MAX as usize - WAV_HEADER_LEN) / 2;
    let samples = &samples[..samples.len().min(max_samples)];
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(WAV_HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{decode_prompt, tone};

    fn sine(freq: f64, ms: usize, amplitude: f64) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| (amplitude * (std::f64::consts::TAU * freq * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// Power at `freq` (Goertzel), normalised by the block's length.
    fn goertzel(samples: &[i16], freq: f64) -> f64 {
        let coeff = 2.0 * (std::f64::consts::TAU * freq / 8000.0).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2)
    }

    fn config(max_ms: u64, silence_ms: u64) -> RecorderConfig {
        RecorderConfig {
            max: Duration::from_millis(max_ms),
            silence_end: Duration::from_millis(silence_ms),
            ..RecorderConfig::default()
        }
    }

    #[test]
    fn default_config_is_180_s_5_s_minus_45_dbfs() {
        let c = RecorderConfig::default();
        assert_eq!(c.max, Duration::from_secs(180));
        assert_eq!(c.silence_end, Duration::from_secs(5));
        assert_eq!(c.silence_threshold_dbfs, -45.0);
        let recorder = Recorder::new(c);
        assert!(recorder.samples.capacity() >= 180 * 8000, "preallocated");
    }

    #[test]
    fn max_length_stops_exactly() {
        // 1 s of speech-like level in odd-sized pushes: ends with exactly 8000 samples.
        let mut recorder = Recorder::new(config(1000, 5000));
        let capacity = recorder.samples.capacity();
        let audio = sine(440.0, 2000, 8000.0);
        let mut ended = None;
        let mut pushed = 0;
        for chunk in audio.chunks(333) {
            pushed += chunk.len();
            ended = recorder.push(chunk);
            if ended.is_some() {
                break;
            }
            assert!(pushed < 8000, "not ended at {pushed} samples");
        }
        assert_eq!(ended, Some(RecordEnd::MaxLength));
        assert_eq!(recorder.samples().len(), 8000);
        assert_eq!(recorder.samples(), &audio[..8000]);
        assert_eq!(recorder.duration(), Duration::from_secs(1));
        assert_eq!(recorder.samples.capacity(), capacity, "no reallocation");
        // Later pushes change nothing and say the same.
        assert_eq!(recorder.push(&audio), Some(RecordEnd::MaxLength));
        assert_eq!(recorder.samples().len(), 8000);
        assert_eq!(recorder.ended(), Some(RecordEnd::MaxLength));

        // A push that exactly fills the recording ends it there.
        let mut recorder = Recorder::new(config(20, 5000));
        assert_eq!(recorder.push(&[100; 159]), None);
        assert_eq!(recorder.push(&[100; 1]), Some(RecordEnd::MaxLength));
        assert_eq!(recorder.samples().len(), 160);
    }

    #[test]
    fn tone_then_six_seconds_of_silence_ends_on_silence_keeping_the_tone() {
        let mut recorder = Recorder::new(RecorderConfig::default());
        let beep = sine(1000.0, 2000, 10_000.0);
        for frame in beep.chunks(160) {
            assert_eq!(recorder.push(frame), None);
        }
        let silence = [0i16; 160];
        let mut ended = None;
        let mut silent_frames = 0;
        for _ in 0..300 {
            silent_frames += 1;
            ended = recorder.push(&silence);
            if ended.is_some() {
                break;
            }
        }
        assert_eq!(ended, Some(RecordEnd::Silence));
        // Ends after 5 s of silence, not before.
        assert_eq!(silent_frames, 250);
        // The tone is kept whole, with 0.5 s of the silence after it.
        assert_eq!(recorder.samples().len(), 16_000 + 4000);
        assert_eq!(&recorder.samples()[..16_000], &beep[..]);
        assert!(recorder.samples()[16_000..].iter().all(|&s| s == 0));
        assert_eq!(recorder.duration(), Duration::from_millis(2500));
        assert_eq!(recorder.push(&beep), Some(RecordEnd::Silence));
    }

    #[test]
    fn silence_before_the_first_sound_does_not_end_the_recording() {
        let mut recorder = Recorder::new(config(20_000, 1000));
        // 10 s of silence, then quiet noise under the threshold: still recording.
        for _ in 0..500 {
            assert_eq!(recorder.push(&[0; 160]), None);
        }
        let quiet = sine(300.0, 1000, 100.0); // about -53 dBFS RMS
        assert_eq!(recorder.push(&quiet), None);
        // A word, then 1 s of silence ends it.
        assert_eq!(recorder.push(&sine(300.0, 500, 3000.0)), None);
        let mut n = 0;
        while recorder.push(&[0; 80]).is_none() {
            n += 80;
            assert!(n <= 8000);
        }
        assert_eq!(n + 80, 8000);
        assert_eq!(recorder.ended(), Some(RecordEnd::Silence));
        assert_eq!(recorder.samples().len(), 92_000 + 4000);
    }

    #[test]
    fn sound_in_the_silence_restarts_the_count() {
        let mut recorder = Recorder::new(config(60_000, 1000));
        let word = sine(500.0, 100, 5000.0);
        assert_eq!(recorder.push(&word), None);
        for _ in 0..3 {
            for _ in 0..45 {
                assert_eq!(recorder.push(&[0; 160]), None); // 0.9 s
            }
            assert_eq!(recorder.push(&word), None);
        }
        for _ in 0..49 {
            assert_eq!(recorder.push(&[0; 160]), None);
        }
        assert_eq!(recorder.push(&[0; 160]), Some(RecordEnd::Silence));
    }

    #[test]
    fn wav_round_trips_through_the_prompt_decoder_with_the_tone() {
        let recorded = tone(1000.0, 1500, -6.0);
        let bytes = wav_bytes(recorded.pcm());
        assert_eq!(bytes.len(), WAV_HEADER_LEN + 2 * 12_000);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..16], b"WAVEfmt ");
        let decoded = decode_prompt("voicemail", &bytes, Some("wav")).expect("a valid WAV");
        assert_eq!(decoded.pcm().len(), recorded.pcm().len());
        assert_eq!(
            decoded.pcm(),
            recorded.pcm(),
            "8 kHz passes through unchanged"
        );
        // The tone is at 1 kHz: far more energy there than at its neighbours.
        let middle = &decoded.pcm()[400..11_600];
        let at_1k = goertzel(middle, 1000.0);
        for other in [500.0, 800.0, 1200.0, 2000.0] {
            assert!(at_1k > 1000.0 * goertzel(middle, other), "{other} Hz");
        }
        // Zero crossings agree: 2 per period, 1000 periods a second.
        let crossings = middle
            .windows(2)
            .filter(|w| (w[0] >= 0) != (w[1] >= 0))
            .count();
        let hz = crossings as f64 / 2.0 / (middle.len() as f64 / 8000.0);
        assert!((hz - 1000.0).abs() < 10.0, "{hz} Hz");
    }

    #[test]
    fn a_recording_round_trips_as_wav() {
        let mut recorder = Recorder::new(config(3000, 500));
        let speech = sine(1000.0, 1000, 8000.0);
        assert_eq!(recorder.push(&speech), None);
        let mut end = None;
        for _ in 0..100 {
            end = recorder.push(&[0; 160]);
            if end.is_some() {
                break;
            }
        }
        assert_eq!(end, Some(RecordEnd::Silence));
        let decoded =
            decode_prompt("vm", &wav_bytes(recorder.samples()), None).expect("a valid WAV");
        assert_eq!(decoded.pcm(), recorder.samples());
    }

    #[test]
    fn empty_wav_is_a_bare_header() {
        let bytes = wav_bytes(&[]);
        assert_eq!(bytes.len(), WAV_HEADER_LEN);
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36);
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 0);
    }
}
