//! G.722 (RFC 3551: payload type 9, RTP clock 8000 Hz) for callers that offer only it.
//! Prompts, decoded at 8 kHz, are resampled to 16 kHz and encoded with the standard encoder
//! (64 kbit/s: 160 bytes per 20 ms, like a G.711 frame); the caller's audio is decoded to
//! its low band at 8 kHz (the codec's interworking mode) for DTMF detection and voicemail.
//!
//! The ADPCM itself is audio-codec's (pure Rust, no C); crates.md rates it "use with care"
//! (sane round trips, not verified bit-exact). Its 8 kHz-*input* encoder mode is broken (the
//! code byte is computed as `((0xc0 | ilow) >> 8) - bits`, an operator-precedence slip for
//! `>> (8 - bits)`: the test `the_crates_8k_input_encoder_is_not_used` shows the garbage),
//! so we never use it; the tests below check our two directions against each other and
//! against the standard 16 kHz mode.
//!
//! G.722 is stateful: one [`Encoder`] or [`Decoder`] per stream, never shared.

use audio_codec::g722::{Bitrate, G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};

/// The static RTP payload type (RFC 3551 §6).
pub const PAYLOAD_TYPE: u8 = 9;

/// Encodes 16 kHz samples, one byte per two samples.
pub struct Encoder(G722Encoder);

impl Encoder {
    /// A fresh encoder (64 kbit/s, 16 kHz input).
    pub fn new() -> Encoder {
        Encoder(G722Encoder::with_options(
            Bitrate::Mode1_64000,
            false,
            false,
        ))
    }

    /// Encodes 16 kHz `samples` into `out` (at least `samples.len() / 2` bytes); returns the
    /// bytes written.
    pub fn encode(&mut self, samples: &[i16], out: &mut [u8]) -> usize {
        self.0.encode_into(samples, out).unwrap_or(0)
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("g722::Encoder")
    }
}

/// Decodes G.722 bytes to their low band at 8 kHz, one sample per byte.
pub struct Decoder(G722Decoder);

impl Decoder {
    /// A fresh decoder (64 kbit/s, 8 kHz output).
    pub fn new() -> Decoder {
        Decoder(G722Decoder::with_options(Bitrate::Mode1_64000, false, true))
    }

    /// Decodes `bytes` into `out` (at least `bytes.len()` samples); returns the samples
    /// written.
    pub fn decode(&mut self, bytes: &[u8], out: &mut [i16]) -> usize {
        self.0.decode_into(bytes, out).unwrap_or(0)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("g722::Decoder")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    /// Goertzel power of `freq` in `x` sampled at `rate`.
    fn power(x: &[i16], freq: f64, rate: f64) -> f64 {
        let k = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s = f64::from(v) + k * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - k * s1 * s2
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn the_crates_8k_input_encoder_is_not_used() {
        // Documents why `Encoder` takes 16 kHz: the crate's 8 kHz-input mode emits garbage.
        let input = tone(1000.0, 8000.0, 800, 8000.0);
        let mut broken = G722Encoder::with_options(Bitrate::Mode1_64000, true, false);
        let mut bytes = vec![0u8; input.len() + 1];
        let n = broken.encode_into(&input, &mut bytes).unwrap_or(0);
        let distinct: std::collections::BTreeSet<u8> = bytes[..n].iter().copied().collect();
        assert!(
            distinct.len() <= 2,
            "if this fails the crate was fixed: {distinct:?}"
        );
    }

    #[test]
    fn our_frames_play_as_the_tone_on_a_standard_16k_decoder() {
        let input = tone(1000.0, 16000.0, 16000, 8000.0);
        let mut enc = Encoder::new();
        let mut bytes = vec![0u8; input.len() / 2];
        assert_eq!(enc.encode(&input, &mut bytes), 8000, "64 kbit/s");
        let mut standard = G722Decoder::new();
        let mut out = vec![0i16; bytes.len() * 2];
        let n = standard.decode_into(&bytes, &mut out).expect("decodes");
        let out = &out[1600..n]; // past the adaptation
        let p1000 = power(out, 1000.0, 16000.0);
        assert!(
            p1000 > 100.0 * power(out, 700.0, 16000.0),
            "1 kHz dominates"
        );
        assert!(p1000 > 100.0 * power(out, 3000.0, 16000.0));
        let level = 20.0 * (rms(out) / rms(&input[1600..])).log10();
        assert!(level.abs() < 3.0, "level {level:.1} dB off");
    }

    #[test]
    fn a_standard_16k_stream_decodes_to_its_low_band_at_8k() {
        let input = tone(770.0, 16000.0, 16000, 8000.0);
        let mut standard = G722Encoder::new();
        let mut bytes = vec![0u8; input.len()];
        let n = standard.encode_into(&input, &mut bytes).expect("encodes");
        assert_eq!(n, 8000, "64 kbit/s: one byte per two 16 kHz samples");
        let mut dec = Decoder::new();
        let mut out = vec![0i16; n];
        assert_eq!(dec.decode(&bytes[..n], &mut out), n);
        let out = &out[800..];
        let p770 = power(out, 770.0, 8000.0);
        assert!(
            p770 > 100.0 * power(out, 1209.0, 8000.0),
            "770 Hz survives, at 8 kHz"
        );
        let level = 20.0 * (rms(out) / rms(&input[1600..])).log10();
        assert!(level.abs() < 3.0, "level {level:.1} dB off");
    }

    #[test]
    fn our_encoder_and_decoder_round_trip() {
        let input = tone(440.0, 16000.0, 8000, 6000.0);
        let mut bytes = vec![0u8; input.len() / 2];
        Encoder::new().encode(&input, &mut bytes);
        let mut out = vec![0i16; bytes.len()];
        Decoder::new().decode(&bytes, &mut out);
        let level = 20.0 * (rms(&out[800..]) / rms(&input[1600..])).log10();
        assert!(level.abs() < 2.0, "level {level:.1} dB off");
        assert!(power(&out[800..], 440.0, 8000.0) > 100.0 * power(&out[800..], 1000.0, 8000.0));
    }
}
