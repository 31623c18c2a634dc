//! In-band DTMF detection (ITU-T Q.23/Q.24) on 8 kHz linear PCM, for trunks that send neither
//! RFC 4733 telephone-events nor SIP INFO.
//!
//! # How it decides
//!
//! The detector looks at windows of [`WINDOW`] samples (12.75 ms) that overlap by half, so a
//! new window ends every [`HOP`] samples (6.4 ms). For each window it runs a Goertzel filter on
//! the eight DTMF frequencies and accepts the strongest row and column tone as a candidate
//! when all of these hold (thresholds in [`DtmfConfig`]):
//!
//! - **level**: each tone is above a minimum level;
//! - **twist**: the column (high) tone is at most `normal_twist_db` below the row (low) tone,
//!   and at most `reverse_twist_db` above it;
//! - **purity**: the two tones carry most of the window's energy (`min_tone_ratio`), and each
//!   stands clear of the other tones in its group, so speech and music, whose energy is spread
//!   or sits elsewhere, do not qualify;
//! - **harmonics**: the second harmonic of each tone is weak; voiced speech has strong ones;
//! - **frequency**: each tone is nearer its nominal frequency than probes set
//!   `2 × frequency_tolerance` above and below it, so tones within 2 % are accepted (Q.24:
//!   must accept ±1.5 %) and those beyond are not (Q.24: must reject ±3.5 %), which a
//!   12.75 ms window could not resolve by the main filters alone.
//!
//! # Timing
//!
//! A digit is reported once, when [`ON_WINDOWS`] consecutive windows agree on it. It stays
//! "down" until [`OFF_WINDOWS`] consecutive windows lack it, so a long press is one digit, a
//! line glitch does not repeat it, and the same digit needs a pause before it counts again.
//! Measured over every alignment of the signal on the window grid (a test pins it):
//!
//! | | always | never |
//! |---|---|---|
//! | a tone is a digit | ≥ 32 ms (Q.24 minimum: 40 ms) | ≤ 24 ms |
//! | a pause separates two digits | ≥ 28 ms (Q.24 minimum: 40 ms) | ≤ 20 ms |
//!
//! The per-frame path allocates nothing: samples go into a fixed window, digits into a fixed
//! queue that [`DtmfDetector::push`] drains.

/// The sample rate the detector expects.
pub const SAMPLE_RATE: u32 = 8_000;
/// Samples per analysis window (12.75 ms): resolves the 73 Hz between adjacent row tones.
pub const WINDOW: usize = 102;
/// Samples between the ends of consecutive windows (half a window).
pub const HOP: usize = WINDOW / 2;
/// Consecutive agreeing windows needed to report a digit (a 31.9 ms span).
pub const ON_WINDOWS: u8 = 4;
/// Consecutive windows without the digit that end it, so it may be reported again.
pub const OFF_WINDOWS: u8 = 5;
/// The most digits held between two calls of [`DtmfDetector::push`].
pub const QUEUE_CAPACITY: usize = 32;

/// Row (low group) frequencies in Hz.
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies in Hz.
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad, by row then column.
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Thresholds of the detector; [`Default`] suits telephone lines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DtmfConfig {
    /// The quietest accepted tone, as the peak of each single tone in dBFS.
    pub min_tone_dbfs: f32,
    /// How far the column tone may be below the row tone (normal twist), in dB.
    pub normal_twist_db: f32,
    /// How far the column tone may be above the row tone (reverse twist), in dB.
    pub reverse_twist_db: f32,
    /// The least share of the window's energy the two tones must carry (0 to 1).
    pub min_tone_ratio: f32,
    /// How far every other tone of the same group must be below the chosen one, in dB.
    pub min_group_margin_db: f32,
    /// How far the row tone's second harmonic must be below it, in dB. Lenient, because the
    /// row harmonics (1394 … 1882 Hz) sit near column tones, whose leakage reaches them.
    pub row_harmonic_db: f32,
    /// How far the column tone's second harmonic must be below it, in dB.
    pub column_harmonic_db: f32,
    /// The largest relative deviation of a tone from its nominal frequency (0.02 = 2 %).
    pub frequency_tolerance: f32,
}

impl Default for DtmfConfig {
    fn default() -> DtmfConfig {
        DtmfConfig {
            // Q.24 asks for tones down to about -25 dBm0 per tone; -45 dBFS peak leaves room
            // for quiet phones while staying above idle-line noise.
            min_tone_dbfs: -45.0,
            // Q.24 (and Bellcore) accept 8 dB normal and 4 dB reverse twist.
            normal_twist_db: 8.0,
            reverse_twist_db: 4.0,
            min_tone_ratio: 0.7,
            min_group_margin_db: 6.0,
            row_harmonic_db: 3.0,
            column_harmonic_db: 15.0,
            frequency_tolerance: 0.02,
        }
    }
}

/// Goertzel coefficients `2 cos(2πf/fs)` for each DTMF frequency, its second harmonic and the
/// probes below and above it.
#[derive(Clone, Copy, Debug)]
struct Coefficients {
    fundamental: [f32; 8],
    harmonic: [f32; 8],
    below: [f32; 8],
    above: [f32; 8],
}

/// Thresholds converted once to linear energy ratios.
#[derive(Clone, Copy, Debug)]
struct Limits {
    min_tone_energy: f32,
    normal_twist: f32,
    reverse_twist: f32,
    min_tone_ratio: f32,
    group_margin: f32,
    row_harmonic: f32,
    column_harmonic: f32,
}

/// A streaming in-band DTMF detector for one direction of one call.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    coefficients: Coefficients,
    limits: Limits,
    window: [f32; WINDOW],
    n_filled: usize,
    candidate: Option<char>,
    n_candidate: u8,
    down: Option<char>,
    n_missing: u8,
    queue: [char; QUEUE_CAPACITY],
    n_queued: usize,
    n_dropped: u64,
}

impl Default for DtmfDetector {
    fn default() -> DtmfDetector {
        DtmfDetector::new()
    }
}

impl DtmfDetector {
    /// A detector with the default thresholds.
    pub fn new() -> DtmfDetector {
        DtmfDetector::with_config(DtmfConfig::default())
    }

    /// A detector with the given thresholds.
    pub fn with_config(config: DtmfConfig) -> DtmfDetector {
        let coefficient = |f: f32| 2.0 * (std::f32::consts::TAU * f / SAMPLE_RATE as f32).cos();
        let mut fundamental = [0.0; 8];
        let mut harmonic = [0.0; 8];
        let mut below = [0.0; 8];
        let mut above = [0.0; 8];
        let probe = 2.0 * config.frequency_tolerance.clamp(0.0, 0.2);
        for (idx, f) in ROWS.iter().chain(&COLUMNS).enumerate() {
            fundamental[idx] = coefficient(*f);
            harmonic[idx] = coefficient(2.0 * f);
            below[idx] = coefficient(f * (1.0 - probe));
            above[idx] = coefficient(f * (1.0 + probe));
        }
        let ratio = |db: f32| 10f32.powf(db / 10.0);
        // A sine of peak A fills a window with energy A²·N/2 (in i16 units squared).
        let min_amplitude = 32768.0 * 10f32.powf(config.min_tone_dbfs / 20.0);
        let limits = Limits {
            min_tone_energy: min_amplitude * min_amplitude * WINDOW as f32 / 2.0,
            normal_twist: ratio(-config.normal_twist_db),
            reverse_twist: ratio(config.reverse_twist_db),
            min_tone_ratio: config.min_tone_ratio,
            group_margin: ratio(-config.min_group_margin_db),
            row_harmonic: ratio(-config.row_harmonic_db),
            column_harmonic: ratio(-config.column_harmonic_db),
        };
        DtmfDetector {
            coefficients: Coefficients {
                fundamental,
                harmonic,
                below,
                above,
            },
            limits,
            window: [0.0; WINDOW],
            n_filled: 0,
            candidate: None,
            n_candidate: 0,
            down: None,
            n_missing: 0,
            queue: ['\0'; QUEUE_CAPACITY],
            n_queued: 0,
            n_dropped: 0,
        }
    }

    /// Feed 8 kHz samples (any count, typically one 20 ms frame) and get the digits that
    /// completed, in order. Digits not taken from the iterator are kept for the next call.
    pub fn push(&mut self, samples: &[i16]) -> impl Iterator<Item = char> + '_ {
        let mut rest = samples;
        while !rest.is_empty() {
            let n = (WINDOW - self.n_filled).min(rest.len());
            let (now, later) = rest.split_at(n);
            for (slot, &sample) in self.window[self.n_filled..].iter_mut().zip(now) {
                *slot = f32::from(sample);
            }
            self.n_filled += n;
            rest = later;
            if self.n_filled == WINDOW {
                let hit = self.analyse();
                self.on_window(hit);
                // Keep the newer half: the next window overlaps this one by HOP samples.
                self.window.copy_within(HOP.., 0);
                self.n_filled = WINDOW - HOP;
            }
        }
        Drain {
            detector: self,
            next_idx: 0,
        }
    }

    /// The digit currently held down, if one has been reported and has not ended yet.
    pub fn digit_down(&self) -> Option<char> {
        self.down
    }

    /// Digits lost because more than [`QUEUE_CAPACITY`] completed within one `push`.
    pub fn n_dropped(&self) -> u64 {
        self.n_dropped
    }

    /// Forget all state, e.g. when the call's media restarts.
    pub fn reset(&mut self) {
        self.window = [0.0; WINDOW];
        self.n_filled = 0;
        self.candidate = None;
        self.n_candidate = 0;
        self.down = None;
        self.n_missing = 0;
        self.n_queued = 0;
    }

    /// The timing rules, applied to one window's verdict.
    fn on_window(&mut self, hit: Option<char>) {
        if hit.is_some() && hit == self.candidate {
            self.n_candidate = self.n_candidate.saturating_add(1);
        } else {
            self.candidate = hit;
            self.n_candidate = u8::from(hit.is_some());
        }
        if let Some(down) = self.down {
            if hit == Some(down) {
                self.n_missing = 0;
            } else {
                self.n_missing = self.n_missing.saturating_add(1);
                if self.n_missing >= OFF_WINDOWS {
                    self.down = None;
                }
            }
        }
        if let Some(digit) = self.candidate
            && self.n_candidate >= ON_WINDOWS
            && self.down != Some(digit)
        {
            // A new digit while another is still held (an auto-dialler that leaves almost no
            // pause): ON_WINDOWS windows of the new digit mean the old one has ended.
            self.down = Some(digit);
            self.n_missing = 0;
            match self.queue.get_mut(self.n_queued) {
                Some(slot) => {
                    *slot = digit;
                    self.n_queued += 1;
                }
                None => self.n_dropped += 1,
            }
        }
    }

    /// The verdict on the current window: a digit, or `None`.
    fn analyse(&self) -> Option<char> {
        let window = &self.window;
        // Eight partial sums: independent chains the compiler can vectorise.
        let mut partial = [0.0f32; 8];
        for chunk in window.chunks(8) {
            for (p, x) in partial.iter_mut().zip(chunk) {
                *p += x * x;
            }
        }
        let total: f32 = partial.iter().sum();
        let limits = &self.limits;
        // Two tones of at least the minimum level: a quick exit for silence.
        if total < 2.0 * limits.min_tone_energy {
            return None;
        }
        let energy = goertzel8(window, &self.coefficients.fundamental);
        let (row_idx, row) = strongest(&energy[..4]);
        let (column_idx, column) = strongest(&energy[4..]);
        if row < limits.min_tone_energy || column < limits.min_tone_energy {
            return None;
        }
        if column < row * limits.normal_twist || column > row * limits.reverse_twist {
            return None;
        }
        if row + column < limits.min_tone_ratio * total {
            return None;
        }
        let clear = |group: &[f32], idx: usize, peak: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &e)| i == idx || e < peak * limits.group_margin)
        };
        if !clear(&energy[..4], row_idx, row) || !clear(&energy[4..], column_idx, column) {
            return None;
        }
        // Both harmonics and the four frequency probes in one SIMD pass.
        let c = &self.coefficients;
        let (r, k) = (row_idx, 4 + column_idx);
        let lanes = [
            c.harmonic[r],
            c.harmonic[k],
            c.below[r],
            c.above[r],
            c.below[k],
            c.above[k],
            0.0,
            0.0,
        ];
        let [
            row_harmonic,
            column_harmonic,
            row_below,
            row_above,
            column_below,
            column_above,
            ..,
        ] = goertzel8(window, &lanes);
        if row_harmonic > row * limits.row_harmonic
            || column_harmonic > column * limits.column_harmonic
        {
            return None;
        }
        if row_below > row || row_above > row || column_below > column || column_above > column {
            return None;
        }
        KEYS.get(row_idx).and_then(|r| r.get(column_idx)).copied()
    }
}

/// Drains the detector's digit queue; what is not taken stays for the next `push`.
struct Drain<'a> {
    detector: &'a mut DtmfDetector,
    next_idx: usize,
}

impl Iterator for Drain<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let digit = self.detector.queue[..self.detector.n_queued]
            .get(self.next_idx)
            .copied()?;
        self.next_idx += 1;
        Some(digit)
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let detector = &mut *self.detector;
        let taken = self.next_idx.min(detector.n_queued);
        detector.queue.copy_within(taken..detector.n_queued, 0);
        detector.n_queued -= taken;
    }
}

/// The energy each of eight tones puts into the window, by the Goertzel algorithm:
/// `2·|X(f)|²/N`, which equals the window energy `A²·N/2` of a sine of peak `A` at `f`.
/// The eight recurrences run side by side, which the compiler turns into SIMD lanes (about
/// 8× faster than eight passes).
fn goertzel8(window: &[f32], coefficients: &[f32; 8]) -> [f32; 8] {
    let mut s1 = [0.0f32; 8];
    let mut s2 = [0.0f32; 8];
    for &x in window {
        for k in 0..8 {
            let s0 = x + coefficients[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
    let scale = 2.0 / window.len() as f32;
    let mut energy = [0.0f32; 8];
    for k in 0..8 {
        energy[k] = scale * (s1[k] * s1[k] + s2[k] * s2[k] - coefficients[k] * s1[k] * s2[k]);
    }
    energy
}

/// The index and energy of the strongest of four tones.
fn strongest(group: &[f32]) -> (usize, f32) {
    group.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, e)| {
            if e > best.1 { (i, e) } else { best }
        },
    )
}

/// Generate a DTMF digit at 8 kHz: `ms` milliseconds, `level_dbfs` the peak of the sum of the
/// two tones (each tone is 6 dB below it), so 0 dBFS just reaches full scale.
/// Returns an empty vector for a character that is not a DTMF key.
pub fn dtmf_tone(digit: char, ms: u32, level_dbfs: f32) -> Vec<i16> {
    dtmf_tone_with_twist(digit, ms, level_dbfs, 0.0)
}

/// Like [`dtmf_tone`], with the column tone `twist_db` below the row tone (negative: above).
pub fn dtmf_tone_with_twist(digit: char, ms: u32, level_dbfs: f32, twist_db: f32) -> Vec<i16> {
    let Some((row_idx, column_idx)) = key_position(digit) else {
        return Vec::new();
    };
    let n = (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize;
    let amplitude = 32767.0 * 10f64.powf(f64::from(level_dbfs) / 20.0) / 2.0;
    let column_gain = 10f64.powf(-f64::from(twist_db) / 20.0);
    let (f_row, f_column) = (f64::from(ROWS[row_idx]), f64::from(COLUMNS[column_idx]));
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(SAMPLE_RATE);
            let s = (std::f64::consts::TAU * f_row * t).sin()
                + column_gain * (std::f64::consts::TAU * f_column * t).sin();
            // `as` saturates: a level above 0 dBFS clips rather than wraps.
            (amplitude * s).round() as i16
        })
        .collect()
}

/// The row and column of a key on the DTMF keypad.
fn key_position(digit: char) -> Option<(usize, usize)> {
    let digit = digit.to_ascii_uppercase();
    KEYS.iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|&k| k == digit).map(|c| (r, c)))
}

/// Run a whole signal through a fresh detector in 20 ms frames and collect the digits
/// (a convenience for tests and tools; it allocates the result).
pub fn detect_all(samples: &[i16]) -> String {
    let mut detector = DtmfDetector::new();
    let mut digits = String::new();
    for frame in samples.chunks(160) {
        digits.extend(detector.push(frame));
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic RNG (xorshift) for noise: tests need no extra crate.
    struct Noise(u64);

    impl Noise {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Gaussian by Box–Muller.
        fn gaussian(&mut self) -> f64 {
            let u1 = self.next_f64().max(1e-12);
            let u2 = self.next_f64();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    }

    /// Add white Gaussian noise `snr_db` below the RMS of the tone bursts (not the pauses).
    fn add_noise(signal: &mut [i16], tone_rms: f64, snr_db: f64, seed: u64) {
        let sigma = tone_rms / 10f64.powf(snr_db / 20.0);
        let mut noise = Noise(seed | 1);
        for s in signal {
            let v = f64::from(*s) + sigma * noise.gaussian();
            *s = v.round().clamp(-32768.0, 32767.0) as i16;
        }
    }

    fn pcmu_round_trip(signal: &mut [i16]) {
        use crate::g711::{pcmu_decode, pcmu_encode};
        for s in signal {
            *s = pcmu_decode(pcmu_encode(*s));
        }
    }

    /// `digits` as bursts of `on_ms` separated by `off_ms` of silence, with leading and
    /// trailing silence; returns the signal and the RMS of one burst.
    fn sequence(digits: &str, on_ms: u32, off_ms: u32, level_dbfs: f32) -> (Vec<i16>, f64) {
        let gap = vec![0i16; (off_ms * 8) as usize];
        let mut out = vec![0i16; 400];
        let mut tone_rms = 0.0;
        for d in digits.chars() {
            let tone = dtmf_tone(d, on_ms, level_dbfs);
            tone_rms = rms(&tone);
            out.extend_from_slice(&tone);
            out.extend_from_slice(&gap);
        }
        out.extend_from_slice(&[0; 400]);
        (out, tone_rms)
    }

    const ALL: &str = "123A456B789C*0#D";

    #[test]
    fn every_digit_at_every_level_clean_and_after_pcmu() {
        for level in [-3.0, -10.0, -20.0, -30.0] {
            for on_off in [(100, 100), (40, 40)] {
                let (mut signal, _) = sequence(ALL, on_off.0, on_off.1, level);
                assert_eq!(
                    detect_all(&signal),
                    ALL,
                    "clean, {level} dBFS, {on_off:?} ms"
                );
                pcmu_round_trip(&mut signal);
                assert_eq!(
                    detect_all(&signal),
                    ALL,
                    "PCMU, {level} dBFS, {on_off:?} ms"
                );
            }
        }
    }

    #[test]
    fn every_digit_with_noise_after_pcmu_at_itu_minimum_timing() {
        for (seed, level) in [-3.0f32, -10.0, -20.0, -30.0].into_iter().enumerate() {
            for snr in [20.0, 15.0] {
                for on_off in [(40, 40), (50, 50), (200, 60)] {
                    let (mut signal, tone_rms) = sequence(ALL, on_off.0, on_off.1, level);
                    add_noise(&mut signal, tone_rms, snr, seed as u64 * 77 + 5);
                    pcmu_round_trip(&mut signal);
                    assert_eq!(
                        detect_all(&signal),
                        ALL,
                        "{level} dBFS, SNR {snr} dB, {on_off:?} ms"
                    );
                }
            }
        }
    }

    #[test]
    fn itu_minimum_timing_at_every_window_alignment() {
        // The window grid is fixed; shifting the signal by 0…HOP samples covers every way a
        // 40 ms tone and a 40 ms pause can fall on it.
        let (base, tone_rms) = sequence(ALL, 40, 40, -20.0);
        for offset in 0..=HOP {
            let mut signal = vec![0i16; offset];
            signal.extend_from_slice(&base);
            add_noise(&mut signal, tone_rms, 15.0, offset as u64 + 1);
            pcmu_round_trip(&mut signal);
            assert_eq!(detect_all(&signal), ALL, "offset {offset}");
        }
    }

    #[test]
    fn timing_limits_at_every_alignment() {
        let count = |tone_ms: u32, gap_ms: Option<u32>| {
            (0..HOP)
                .filter(|&offset| {
                    let mut signal = vec![0i16; 300 + offset];
                    signal.extend(dtmf_tone('5', tone_ms, -10.0));
                    let mut expect = "5";
                    if let Some(gap_ms) = gap_ms {
                        signal.extend(vec![0i16; gap_ms as usize * 8]);
                        signal.extend(dtmf_tone('5', tone_ms, -10.0));
                        expect = "55";
                    }
                    signal.extend(vec![0i16; 800]);
                    detect_all(&signal) == expect
                })
                .count()
        };
        assert_eq!(count(24, None), 0, "24 ms tones");
        assert_eq!(count(32, None), HOP, "32 ms tones");
        assert_eq!(count(60, Some(20)), 0, "20 ms pauses");
        assert_eq!(count(60, Some(28)), HOP, "28 ms pauses");
    }

    #[test]
    fn repeated_digit_needs_the_pause_and_is_reported_each_time() {
        let (signal, _) = sequence("5555000", 40, 40, -10.0);
        assert_eq!(detect_all(&signal), "5555000");
        // A long press is one digit.
        let (signal, _) = sequence("7", 2000, 40, -10.0);
        assert_eq!(detect_all(&signal), "7");
    }

    #[test]
    fn a_short_dropout_inside_a_press_does_not_repeat_it() {
        let mut signal = dtmf_tone('9', 200, -10.0);
        signal.extend_from_slice(&[0; 80]); // 10 ms gap: line glitch, not a release
        signal.extend_from_slice(&dtmf_tone('9', 200, -10.0));
        assert_eq!(detect_all(&signal), "9");
    }

    #[test]
    fn blips_shorter_than_the_minimum_are_ignored() {
        let (signal, _) = sequence("1234", 20, 60, -10.0);
        assert_eq!(detect_all(&signal), "");
    }

    #[test]
    fn twist_limits() {
        for (twist, expect) in [(0.0, "5"), (6.0, "5"), (-3.0, "5"), (12.0, ""), (-8.0, "")] {
            let signal = dtmf_tone_with_twist('5', 100, -10.0, twist);
            assert_eq!(detect_all(&signal), expect, "twist {twist} dB");
        }
    }

    #[test]
    fn too_quiet_is_ignored() {
        let signal = dtmf_tone('5', 100, -55.0);
        assert_eq!(detect_all(&signal), "");
    }

    #[test]
    fn off_frequency_pairs_are_ignored() {
        // A row tone 6% off and a correct column tone.
        let signal: Vec<i16> = (0..800)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let s = (std::f64::consts::TAU * 655.0 * t).sin()
                    + (std::f64::consts::TAU * 1336.0 * t).sin();
                (5000.0 * s) as i16
            })
            .collect();
        assert_eq!(detect_all(&signal), "");
    }

    /// Both tones of `digit` moved by `deviation` (0.015 = +1.5 %).
    fn detuned(digit: char, deviation: f64) -> Vec<i16> {
        let (r, c) = key_position(digit).expect("a key");
        let (f_row, f_column) = (f64::from(ROWS[r]), f64::from(COLUMNS[c]));
        (0..800)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let s = (std::f64::consts::TAU * f_row * (1.0 + deviation) * t).sin()
                    + (std::f64::consts::TAU * f_column * (1.0 + deviation) * t).sin();
                (5000.0 * s) as i16
            })
            .collect()
    }

    #[test]
    fn frequency_tolerance_accepts_1_5_percent_and_rejects_3_5_percent() {
        // ITU-T Q.24: accept ±1.5 %, reject ±3.5 %.
        for digit in ALL.chars() {
            for deviation in [-0.015, 0.015] {
                let mut signal = detuned(digit, deviation);
                pcmu_round_trip(&mut signal);
                assert_eq!(
                    detect_all(&signal),
                    digit.to_string(),
                    "{digit} at {deviation}"
                );
            }
            for deviation in [-0.035, 0.035, -0.06, 0.06] {
                assert_eq!(
                    detect_all(&detuned(digit, deviation)),
                    "",
                    "{digit} at {deviation}"
                );
            }
        }
    }

    #[test]
    fn frames_of_any_size_give_the_same_digits() {
        let (signal, _) = sequence("159#0*38", 40, 40, -12.0);
        for size in [1, 7, 80, 160, 240, 1000] {
            let mut detector = DtmfDetector::new();
            let mut digits = String::new();
            for frame in signal.chunks(size) {
                digits.extend(detector.push(frame));
            }
            assert_eq!(digits, "159#0*38", "frames of {size}");
        }
    }

    #[test]
    fn undrained_digits_are_kept_for_the_next_push() {
        let (signal, _) = sequence("12", 60, 60, -10.0);
        let mut detector = DtmfDetector::new();
        let _ = detector.push(&signal); // not iterated
        let digits: String = detector.push(&[]).collect();
        assert_eq!(digits, "12");
        assert_eq!(detector.n_dropped(), 0);
    }

    /// Chords of sine tones (musical intervals, none a DTMF pair) and sweeps.
    fn music() -> Vec<(String, Vec<i16>)> {
        let mut clips = Vec::new();
        let chords: [&[f64]; 6] = [
            &[261.63, 329.63, 392.0],          // C major
            &[440.0, 554.37, 659.25],          // A major
            &[659.25, 830.61, 987.77],         // E major, high
            &[587.33, 739.99, 880.0, 1174.66], // D major with octave
            &[698.46, 1174.66],                // F5 + D6: near row 1, far from columns
            &[783.99, 1318.51, 1567.98],       // G5, E6, G6
        ];
        for (idx, chord) in chords.iter().enumerate() {
            let signal: Vec<i16> = (0..16_000)
                .map(|i| {
                    let t = i as f64 / 8000.0;
                    let s: f64 = chord
                        .iter()
                        .map(|f| {
                            // Each note with a few harmonics, as an instrument has.
                            (1..=4)
                                .map(|h| {
                                    (std::f64::consts::TAU * f * h as f64 * t).sin() / h as f64
                                })
                                .sum::<f64>()
                        })
                        .sum();
                    (4000.0 * s / chord.len() as f64) as i16
                })
                .collect();
            clips.push((format!("chord {idx} {chord:?}"), signal));
        }
        // A single sweep 300 → 3400 Hz over 3 s, and two parallel sweeps a fifth apart.
        let sweep = |ratio: f64| -> Vec<i16> {
            let mut phase = [0.0f64; 2];
            (0..24_000)
                .map(|i| {
                    let f = 300.0 * (3400.0f64 / 300.0).powf(i as f64 / 24_000.0);
                    phase[0] += std::f64::consts::TAU * f / 8000.0;
                    phase[1] += std::f64::consts::TAU * f * ratio / 8000.0;
                    let second = if ratio > 0.0 { phase[1].sin() } else { 0.0 };
                    (8000.0 * (phase[0].sin() + second)) as i16
                })
                .collect()
        };
        clips.push(("sweep".to_owned(), sweep(0.0)));
        clips.push(("fifth sweep".to_owned(), sweep(1.5)));
        clips
    }

    #[test]
    fn music_gives_no_digit() {
        for (name, mut clip) in music() {
            assert_eq!(detect_all(&clip), "", "{name}");
            pcmu_round_trip(&mut clip);
            assert_eq!(detect_all(&clip), "", "{name} after PCMU");
        }
    }

    #[test]
    fn every_two_note_interval_of_an_instrument_gives_no_digit() {
        // Equal-tempered notes C4 … D#7, each with its 2nd and 3rd harmonics as real
        // instruments have. (Pure sines F5 + E6 and the like are within Q.24's ±1.5 % of a
        // DTMF pair and are digits by definition.)
        let notes: Vec<f64> = (0..40)
            .map(|n| 261.63 * 2f64.powf(n as f64 / 12.0))
            .collect();
        for (idx, a) in notes.iter().enumerate() {
            for b in &notes[idx + 1..] {
                let signal: Vec<i16> = (0..4000)
                    .map(|n| {
                        let t = n as f64 / 8000.0;
                        let s: f64 = [a, b]
                            .iter()
                            .flat_map(|f| {
                                (1..=3).map(move |h| {
                                    (std::f64::consts::TAU * *f * h as f64 * t).sin() / h as f64
                                })
                            })
                            .sum();
                        (6000.0 * s) as i16
                    })
                    .collect();
                assert_eq!(detect_all(&signal), "", "{a:.1} Hz + {b:.1} Hz");
            }
        }
    }

    #[test]
    fn noise_and_silence_give_no_digit() {
        let mut signal = vec![0i16; 80_000];
        assert_eq!(detect_all(&signal), "");
        add_noise(&mut signal, 3000.0, 0.0, 42);
        assert_eq!(detect_all(&signal), "");
    }

    /// Speech from espeak-ng, decoded through the prompt path: no digit may come out.
    /// espeak-ng is required (install it: `apt-get install espeak-ng`); set
    /// `CENTRALINO_SKIP_ESPEAK=1` to skip this test on a machine without it.
    #[test]
    fn speech_gives_no_digit() {
        if std::env::var_os("CENTRALINO_SKIP_ESPEAK").is_some_and(|v| v == "1") {
            eprintln!("speech_gives_no_digit: skipped (CENTRALINO_SKIP_ESPEAK=1)");
            return;
        }
        let texts = [
            (
                "it",
                "Benvenuti al centro operativo comunale. Per informazioni premere uno. Per la spesa e i farmaci a domicilio premere due. Uno due tre quattro cinque sei sette otto nove zero.",
            ),
            (
                "en",
                "Welcome to the municipal operations centre. For information press one. The number you have dialled is not in service. One two three four five six seven eight nine zero star hash.",
            ),
            (
                "it",
                "Attenzione! Il servizio è chiuso. Lasciate un messaggio dopo il segnale acustico, grazie.",
            ),
        ];
        let dir = std::env::temp_dir().join(format!("centralino-espeak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (idx, (voice, text)) in texts.iter().enumerate() {
            for (speed, pitch) in [("160", "50"), ("220", "80"), ("120", "20")] {
                let path = dir.join(format!("speech-{idx}-{speed}.wav"));
                let status = std::process::Command::new("espeak-ng")
                    .args(["-w"])
                    .arg(&path)
                    .args(["-v", voice, "-s", speed, "-p", pitch, text])
                    .status();
                let status = match status {
                    Ok(status) => status,
                    Err(e) => panic!(
                        "espeak-ng is needed for the speech talk-off test and could not run ({e}): \
                         install it (apt-get install espeak-ng) or set CENTRALINO_SKIP_ESPEAK=1"
                    ),
                };
                assert!(status.success(), "espeak-ng failed for {voice}: {status}");
                let bytes = std::fs::read(&path).expect("espeak-ng wrote the file");
                let prompt = crate::prompt::decode_prompt("speech", &bytes, Some("wav"))
                    .expect("espeak-ng output decodes");
                let mut pcm = prompt.pcm().to_vec();
                assert!(pcm.len() > 8000, "speech clip too short: {}", pcm.len());
                // Loud (peak near full scale) and after PCMU, as a trunk would carry it.
                let peak = pcm
                    .iter()
                    .map(|s| s.unsigned_abs())
                    .max()
                    .unwrap_or(1)
                    .max(1);
                let gain = 30_000.0 / f64::from(peak);
                for s in &mut pcm {
                    *s = (f64::from(*s) * gain) as i16;
                }
                assert_eq!(
                    detect_all(&pcm),
                    "",
                    "{voice} speech {idx} at speed {speed}"
                );
                pcmu_round_trip(&mut pcm);
                assert_eq!(
                    detect_all(&pcm),
                    "",
                    "{voice} speech {idx} at speed {speed}, PCMU"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn committed_prompts_give_no_digit() {
        for (key, prompt) in crate::prompt::tests::committed_prompts() {
            if key.ends_with("/beep") {
                continue;
            }
            let mut pcm = prompt.pcm().to_vec();
            assert_eq!(detect_all(&pcm), "", "prompts/{key}.wav");
            pcmu_round_trip(&mut pcm);
            assert_eq!(detect_all(&pcm), "", "prompts/{key}.wav after PCMU");
        }
    }

    #[test]
    fn digits_survive_speech_before_and_after() {
        // Speech-like noise bursts around a valid digit do not hide it.
        let mut signal = vec![0i16; 800];
        add_noise(&mut signal, 2000.0, 0.0, 9);
        signal.extend(dtmf_tone('8', 60, -10.0));
        let mut tail = vec![0i16; 800];
        add_noise(&mut tail, 2000.0, 0.0, 10);
        signal.extend(tail);
        assert_eq!(detect_all(&signal), "8");
    }

    #[test]
    fn dtmf_tone_shape() {
        assert_eq!(dtmf_tone('x', 40, -10.0), Vec::<i16>::new());
        assert_eq!(dtmf_tone('a', 40, -10.0).len(), 320);
        let full = dtmf_tone('D', 100, 0.0);
        let peak = full.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 30_000, "peak {peak}");
    }

    proptest::proptest! {
        #[test]
        fn any_samples_never_panic(
            samples in proptest::collection::vec(proptest::prelude::any::<i16>(), 0..4000),
        ) {
            let mut detector = DtmfDetector::new();
            for frame in samples.chunks(160) {
                for _ in detector.push(frame) {}
            }
        }
    }
}
