//! G.711 PCMU (µ-law) and PCMA (A-law): 16-bit linear PCM to 8-bit codes and back.
//!
//! Everything is table-driven, with the tables computed at compile time by `const fn`:
//! decoding is one 256-entry lookup, encoding one lookup on the magnitude (8,193 entries for
//! µ-law, 2,048 for A-law) plus the sign. The code assignment follows the classic Sun
//! `g711.c` (µ-law: bias 0x84, clip at 32635; A-law: even bits inverted with 0x55), which the
//! tests check exhaustively against an independent reference implementation.
//! DEVIATION(Sun g711.c): that code turns A-law inputs −7…−1 into code 0x5A (−248) through an
//! arithmetic shift of a negative value; we give them 0x55 (−8), the nearest level, as G.711's
//! decision table does.

/// One of the two G.711 companding laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0 (RFC 3551).
    Pcmu,
    /// A-law, RTP payload type 8 (RFC 3551).
    Pcma,
}

impl Law {
    /// The static RTP payload type (RFC 3551 §6).
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }

    /// The law for a static payload type, if it is 0 or 8.
    pub const fn from_payload_type(payload_type: u8) -> Option<Law> {
        match payload_type {
            0 => Some(Law::Pcmu),
            8 => Some(Law::Pcma),
            _ => None,
        }
    }

    /// The code for digital silence (linear 0).
    pub const fn silence(self) -> u8 {
        match self {
            Law::Pcmu => 0xff,
            Law::Pcma => 0xd5,
        }
    }

    /// Encode one sample.
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Law::Pcmu => pcmu_encode(sample),
            Law::Pcma => pcma_encode(sample),
        }
    }

    /// Decode one code.
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Law::Pcmu => pcmu_decode(code),
            Law::Pcma => pcma_decode(code),
        }
    }

    /// Encode `min(samples.len(), codes.len())` samples into `codes`; returns that count.
    pub fn encode(self, samples: &[i16], codes: &mut [u8]) -> usize {
        let n = samples.len().min(codes.len());
        let pairs = codes.iter_mut().zip(samples);
        match self {
            Law::Pcmu => pairs.for_each(|(c, &s)| *c = pcmu_encode(s)),
            Law::Pcma => pairs.for_each(|(c, &s)| *c = pcma_encode(s)),
        }
        n
    }

    /// Decode `min(codes.len(), samples.len())` codes into `samples`; returns that count.
    pub fn decode(self, codes: &[u8], samples: &mut [i16]) -> usize {
        let n = samples.len().min(codes.len());
        let pairs = samples.iter_mut().zip(codes);
        match self {
            Law::Pcmu => pairs.for_each(|(s, &c)| *s = pcmu_decode(c)),
            Law::Pcma => pairs.for_each(|(s, &c)| *s = pcma_decode(c)),
        }
        n
    }
}

/// µ-law: magnitudes are clipped here before the bias is added (Sun g711.c `CLIP`).
const ULAW_CLIP: u32 = 32635;
/// µ-law bias, 33 in 14-bit units (G.711 Table 2a), times 4 for 16-bit input.
const ULAW_BIAS: u32 = 0x84;

/// floor(log2(x)) for x > 0.
const fn log2(x: u32) -> u32 {
    31 - x.leading_zeros()
}

/// The µ-law code of a non-negative magnitude (0..=32768), for a positive sample.
const fn ulaw_code_of_magnitude(magnitude: u32) -> u8 {
    let clipped = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    };
    // biased is in 132..=32767: exponent = which octave above 128 it falls in.
    let biased = clipped + ULAW_BIAS;
    let exponent = log2(biased) - 7;
    let mantissa = (biased >> (exponent + 3)) & 0xf;
    // G.711 transmits µ-law codes with all bits inverted; positive samples carry sign bit 1.
    !((exponent << 4 | mantissa) as u8)
}

/// The A-law code of a non-negative magnitude (0..=32767), for a positive sample.
const fn alaw_code_of_magnitude(magnitude: u32) -> u8 {
    let (exponent, mantissa) = if magnitude < 256 {
        (0, (magnitude >> 4) & 0xf)
    } else {
        let exponent = log2(magnitude) - 7;
        (exponent, (magnitude >> (exponent + 3)) & 0xf)
    };
    // G.711 inverts the even bits (0x55); positive samples carry sign bit 1.
    ((exponent << 4 | mantissa) as u8) ^ 0xd5
}

/// µ-law encode table indexed by magnitude / 4 (the low two bits never change the code,
/// because the bias 0x84 is ≡ 4 mod 8).
static ULAW_ENCODE: [u8; 8193] = {
    let mut table = [0u8; 8193];
    let mut idx = 0;
    while idx < table.len() {
        table[idx] = ulaw_code_of_magnitude(idx as u32 * 4);
        idx += 1;
    }
    table
};

/// A-law encode table indexed by magnitude / 16 (the finest step is 16, so the low four
/// bits never change the code).
static ALAW_ENCODE: [u8; 2048] = {
    let mut table = [0u8; 2048];
    let mut idx = 0;
    while idx < table.len() {
        table[idx] = alaw_code_of_magnitude(idx as u32 * 16);
        idx += 1;
    }
    table
};

/// The linear value of a µ-law code (G.711 Table 2a, scaled to 16 bits).
const fn ulaw_value(code: u8) -> i16 {
    let bits = !code;
    let exponent = ((bits >> 4) & 0x7) as i32;
    let mantissa = (bits & 0xf) as i32;
    // Decision-level midpoint: ((2m + 33) << e) − 33 in 14-bit units.
    let magnitude = ((((mantissa << 1) + 33) << exponent) - 33) << 2;
    (if bits & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }) as i16
}

/// The linear value of an A-law code (G.711 Table 1a, scaled to 16 bits).
const fn alaw_value(code: u8) -> i16 {
    let bits = code ^ 0x55;
    let exponent = ((bits >> 4) & 0x7) as i32;
    let mantissa = (bits & 0xf) as i32;
    let magnitude = if exponent == 0 {
        ((mantissa << 1) + 1) << 3
    } else {
        ((mantissa << 1) + 33) << (exponent + 2)
    };
    (if bits & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }) as i16
}

/// µ-law decode table.
static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_value(code as u8);
        code += 1;
    }
    table
};

/// A-law decode table.
static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_value(code as u8);
        code += 1;
    }
    table
};

/// Encode one sample as µ-law (PCMU).
#[inline]
pub fn pcmu_encode(sample: i16) -> u8 {
    // |i16| ≤ 32768, so magnitude / 4 ≤ 8192: always inside the 8,193-entry table.
    let code = ULAW_ENCODE[(i32::from(sample).unsigned_abs() >> 2) as usize];
    if sample < 0 { code & 0x7f } else { code }
}

/// Encode one sample as A-law (PCMA).
#[inline]
pub fn pcma_encode(sample: i16) -> u8 {
    if sample >= 0 {
        // sample / 16 ≤ 2047: inside the 2,048-entry table.
        ALAW_ENCODE[(sample as u16 >> 4) as usize]
    } else {
        // Sun g711.c rounds negatives as |x| − 8; clamped at 0 (see the module DEVIATION).
        // |sample| − 8 ≤ 32760, so / 16 ≤ 2047.
        let magnitude = i32::from(sample).unsigned_abs().saturating_sub(8);
        ALAW_ENCODE[(magnitude >> 4) as usize] & 0x7f
    }
}

/// Decode one µ-law (PCMU) code.
#[inline]
pub fn pcmu_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decode one A-law (PCMA) code.
#[inline]
pub fn pcma_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

#[cfg(test)]
mod tests {
    //! The reference below is written from the description of the classic Sun Microsystems
    //! `g711.c` (segment end search, BIAS 0x84, CLIP 32635, 0x55 inversion), independently of
    //! the table code above, and every input is compared.
    use super::*;

    const SEGMENT_END: [i32; 8] = [0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff, 0x3fff, 0x7fff];

    /// The first segment whose end is ≥ value, or 8 if none.
    fn segment(value: i32) -> i32 {
        let mut seg = 0;
        while seg < 8 && value > SEGMENT_END[seg as usize] {
            seg += 1;
        }
        seg
    }

    fn reference_linear_to_ulaw(sample: i16) -> u8 {
        let mut value = i32::from(sample);
        let mask: i32 = if value < 0 {
            value = -value;
            0x7f
        } else {
            0xff
        };
        if value > 32635 {
            value = 32635;
        }
        value += 0x84;
        let seg = segment(value);
        if seg >= 8 {
            return (0x7f ^ mask) as u8;
        }
        let code = (seg << 4) | ((value >> (seg + 3)) & 0xf);
        (code ^ mask) as u8
    }

    fn reference_ulaw_to_linear(code: u8) -> i16 {
        let code = i32::from(!code);
        let mut t = ((code & 0xf) << 3) + 0x84;
        t <<= (code & 0x70) >> 4;
        (if code & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    fn reference_linear_to_alaw(sample: i16) -> u8 {
        let mut value = i32::from(sample);
        let mask: i32 = if value >= 0 {
            0xd5
        } else {
            value = -value - 8;
            0x55
        };
        let seg = segment(value);
        if seg >= 8 {
            return (0x7f ^ mask) as u8;
        }
        let shift = if seg < 2 { 4 } else { seg + 3 };
        // Arithmetic shift, as C does on the int: this is the −7…−1 quirk.
        let code = (seg << 4) | ((value >> shift) & 0xf);
        (code ^ mask) as u8
    }

    fn reference_alaw_to_linear(code: u8) -> i16 {
        let code = i32::from(code ^ 0x55);
        let mut t = (code & 0xf) << 4;
        let seg = (code & 0x70) >> 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= seg - 1;
            }
        }
        (if code & 0x80 != 0 { t } else { -t }) as i16
    }

    #[test]
    fn decode_tables_match_reference() {
        for code in 0..=255u8 {
            assert_eq!(
                pcmu_decode(code),
                reference_ulaw_to_linear(code),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                pcma_decode(code),
                reference_alaw_to_linear(code),
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn ulaw_encode_matches_reference_for_every_sample() {
        for sample in i16::MIN..=i16::MAX {
            assert_eq!(
                pcmu_encode(sample),
                reference_linear_to_ulaw(sample),
                "sample {sample}"
            );
        }
    }

    #[test]
    fn alaw_encode_matches_reference_for_every_sample() {
        let mut differ = Vec::new();
        for sample in i16::MIN..=i16::MAX {
            if pcma_encode(sample) != reference_linear_to_alaw(sample) {
                differ.push((
                    sample,
                    pcma_encode(sample),
                    reference_linear_to_alaw(sample),
                ));
            }
        }
        // Only the documented DEVIATION: the reference's −7…−1 → 0x5A (−248).
        let expect: Vec<_> = (-7..=-1).map(|s| (s, 0x55, 0x5a)).collect();
        assert_eq!(differ, expect);
        assert_eq!(pcma_decode(0x55), -8);
    }

    #[test]
    fn reencoding_a_decoded_value_is_stable() {
        for law in [Law::Pcmu, Law::Pcma] {
            for code in 0..=255u8 {
                let value = law.decode_sample(code);
                let again = law.decode_sample(law.encode_sample(value));
                assert_eq!(again, value, "{law:?} code {code:#04x}");
            }
        }
    }

    #[test]
    fn quantisation_is_monotonic_and_bounded() {
        for law in [Law::Pcmu, Law::Pcma] {
            let mut previous = i16::MIN;
            let mut max_error = 0;
            for sample in i16::MIN..=i16::MAX {
                let value = law.decode_sample(law.encode_sample(sample));
                assert!(value >= previous, "{law:?} not monotonic at {sample}");
                previous = value;
                max_error = max_error.max((i32::from(value) - i32::from(sample)).abs());
            }
            // µ-law: the clipped tail, −32768 decodes as −32124. A-law: half the top step (512)
            // plus 7, from rounding negatives as |x| − 8.
            let bound = match law {
                Law::Pcmu => 32768 - 32124,
                Law::Pcma => 512 + 7,
            };
            assert_eq!(max_error, bound, "{law:?}");
        }
    }

    #[test]
    fn slices_and_payload_types() {
        let samples = [0i16, 1000, -1000, i16::MAX, i16::MIN];
        let mut codes = [0u8; 4];
        assert_eq!(Law::Pcmu.encode(&samples, &mut codes), 4);
        assert_eq!(codes, [0xff, 0xce, 0x4e, 0x80]);
        let mut back = [0i16; 8];
        assert_eq!(Law::Pcmu.decode(&codes, &mut back), 4);
        assert_eq!(back, [0, 988, -988, 32124, 0, 0, 0, 0]);
        assert_eq!(Law::Pcma.encode(&samples, &mut codes), 4);
        assert_eq!(codes, [0xd5, 0xfa, 0x7a, 0xaa]);
        for law in [Law::Pcmu, Law::Pcma] {
            assert_eq!(Law::from_payload_type(law.payload_type()), Some(law));
            assert_eq!(law.encode_sample(0), law.silence());
        }
        assert_eq!(Law::from_payload_type(18), None);
    }
}
