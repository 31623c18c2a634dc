//! The stream framer must cut the same frames (or fail the same way) however the bytes are
//! chunked, and never hold more than twice its limit. The first two input bytes seed the chunk
//! sizes; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_msg::{Frame, FrameError, StreamFramer};

/// Frames in order, ending with the error that stopped the framer, if any.
fn run(stream: &[u8], mut chunk_len: impl FnMut() -> usize) -> (Vec<Frame>, Option<FrameError>) {
    let limit = 4096;
    let mut framer = StreamFramer::new(limit);
    let mut frames = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let end = (at + chunk_len()).min(stream.len());
        framer.push(&stream[at..end]).expect("input is shorter than the limit");
        at = end;
        loop {
            assert!(framer.buffered() <= 2 * limit);
            match framer.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, stream @ ..] = data else { return };
    if stream.len() > 4096 {
        return;
    }
    let whole = run(stream, || usize::MAX);
    let mut state = u32::from(*a) << 8 | u32::from(*b);
    let chunked = run(stream, || {
        // xorshift: cheap, deterministic chunk sizes from 1 to 64
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 64) as usize + 1
    });
    assert_eq!(whole, chunked);
    let bytes_out: usize = whole.0.iter().map(|f| if let Frame::Message(m) = f { m.len() } else { 0 }).sum();
    assert!(bytes_out <= stream.len());
});
