//! Framing SIP messages on a byte stream (TCP) by Content-Length (RFC 3261 §18.3).

use crate::message::MAX_MESSAGE_SIZE;

/// What the framer found in its buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (header section and body).
    Message(Vec<u8>),
    /// A CRLF CRLF keep-alive ping (RFC 5626 §3.5.1); answer with CRLF.
    Ping,
}

/// Why the stream must be closed: after this the framer cannot find message boundaries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header section or the whole message exceeds the limit.
    #[error("message exceeds {0} bytes")]
    TooLarge(usize),
    /// Content-Length missing, repeated, negative or not a number.
    #[error("bad or missing Content-Length on a stream")]
    BadContentLength,
}

/// Accumulates bytes from one connection and cuts them into messages. Memory is bounded by
/// twice `limit` per connection, and the work per received byte is bounded too: a peer that
/// dribbles a large header one byte at a time does not make each call rescan the buffer.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limit: usize,
    /// Bytes of `buf` already returned (compacted away lazily, so cost stays linear).
    start: usize,
    /// How far past `start` the search for the end of the header section has looked.
    scanned: usize,
    /// Total length of the message at `start` once its header section has been read.
    pending: Option<usize>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new(MAX_MESSAGE_SIZE)
    }
}

impl StreamFramer {
    /// A framer accepting messages up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        StreamFramer {
            buf: Vec::new(),
            limit,
            start: 0,
            scanned: 0,
            pending: None,
        }
    }

    /// Appends received bytes. Fails if the buffer would exceed twice the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let buffered = self
            .buffered()
            .checked_add(bytes.len())
            .ok_or(FrameError::TooLarge(self.limit))?;
        if buffered > self.limit.saturating_mul(2) {
            return Err(FrameError::TooLarge(self.limit));
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.scanned = 0;
        self.pending = None;
    }

    /// Takes the next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.pending.is_none() {
            // RFC 5626 §3.5.1: each CRLF CRLF before a message is a ping (answered with CRLF);
            // a lone CRLF is a pong or a keep-alive and is skipped, as is any other stray CR or
            // LF (RFC 3261 §7.5). Decisions look only at a bounded prefix and wait while it is
            // ambiguous, so the frames do not depend on how the bytes were chunked.
            let data = &self.buf[self.start..];
            let mut i = 0;
            loop {
                match data.get(i..).unwrap_or_default() {
                    [b'\r', b'\n', b'\r', b'\n', ..] => {
                        self.consume(i + 4);
                        return Ok(Some(Frame::Ping));
                    }
                    [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => {
                        self.consume(i);
                        return Ok(None);
                    }
                    [b'\r', b'\n', ..] => i += 2,
                    [b'\r' | b'\n', ..] => i += 1,
                    _ => break,
                }
            }
            if i > 0 {
                self.consume(i);
            }
            let data = &self.buf[self.start..];
            // A match found now may begin up to two bytes before where the last search ended.
            let Some(end) = find_header_end(data, self.scanned.saturating_sub(2)) else {
                self.scanned = data.len();
                if data.len() > self.limit {
                    return Err(FrameError::TooLarge(self.limit));
                }
                return Ok(None);
            };
            let body_len = content_length(&data[..end])?;
            let total = end
                .checked_add(body_len)
                .ok_or(FrameError::TooLarge(self.limit))?;
            if total > self.limit {
                return Err(FrameError::TooLarge(self.limit));
            }
            self.pending = Some(total);
        }
        let total = self.pending.unwrap_or(0);
        if self.buffered() < total {
            return Ok(None);
        }
        let msg = self.buf[self.start..self.start + total].to_vec();
        self.consume(total);
        Ok(Some(Frame::Message(msg)))
    }
}

/// Offset just past the empty line that ends the header section (CRLF or bare LF), searching
/// for the LF that ends the last header line from `from` on.
fn find_header_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(nl) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let at = i + nl + 1;
        match buf.get(at) {
            Some(b'\n') => return Some(at + 1),
            Some(b'\r') if buf.get(at + 1) == Some(&b'\n') => return Some(at + 2),
            Some(b'\r') if at + 1 == buf.len() => return None,
            Some(_) => i = at,
            None => return None,
        }
    }
    None
}

fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let text = String::from_utf8_lossy(head);
    let mut found = None;
    // Skip the start line and continuation lines, exactly as `parse` reads headers, so the two
    // always agree on the Content-Length.
    for line in text
        .split('\n')
        .skip(1)
        .filter(|l| !l.starts_with([' ', '\t']))
    {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            if found.is_some() {
                return Err(FrameError::BadContentLength);
            }
            let v = value.trim();
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FrameError::BadContentLength);
            }
            found = Some(
                v.parse::<usize>()
                    .map_err(|_| FrameError::BadContentLength)?,
            );
        }
    }
    // DEVIATION(RFC 3261 §18.3): a missing Content-Length on a stream is read as 0 rather
    // than closing the connection; the message then fails validation on its own merits.
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes each chunk, drains frames after each push, and renders what came out:
    /// `msg:N` (a message of N bytes), `ping`, `close:<error>`; `| ` separates pushes.
    fn check(limit: usize, chunks: &[&[u8]], expect: &str) {
        let mut f = StreamFramer::new(limit);
        let mut out = Vec::new();
        for chunk in chunks {
            if let Err(e) = f.push(chunk) {
                out.push(format!("push-error:{e}"));
                break;
            }
            loop {
                match f.next_frame() {
                    Ok(Some(Frame::Message(m))) => out.push(format!("msg:{}", m.len())),
                    Ok(Some(Frame::Ping)) => out.push("ping".into()),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(format!("close:{e}"));
                        break;
                    }
                }
            }
            out.push("|".into());
        }
        out.push(format!("left:{}", f.buffered()));
        assert_eq!(out.join(" "), expect, "chunks {chunks:?}");
    }

    const M: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc"; // 49 bytes

    #[test]
    fn frames() {
        check(1000, &[&M[..10], &M[10..], M], "| msg:49 | msg:49 | left:0");
        check(1000, &[b"\r\n\r\n"], "ping | left:0");
        // regression: two pings in one read used to come out as one Ping
        check(1000, &[b"\r\n\r\n\r\n\r\n"], "ping ping | left:0");
        check(1000, &[b"\r\n", b"\r\n"], "| ping | left:0");
        check(1000, &[b"\r\n\r", b"\n"], "| ping | left:0");
        // a lone CRLF (pong) before a message is skipped
        check(1000, &[b"\r\n", M], "| msg:49 | left:0");
        check(1000, &[b"\n\n", M], "| msg:49 | left:0");
        // regression: a folded line that looks like `l: 9` is not a Content-Length
        check(
            1000,
            &[b"OPTIONS sip:a@b SIP/2.0\r\nSubject: x\r\n l: 9\r\nContent-Length: 0\r\n\r\n"],
            "msg:65 | left:0",
        );
        check(
            1000,
            &[b"OPTIONS sip:a@b SIP/2.0\nl: 1\n\nxy"],
            "msg:31 | left:1",
        );
        // header section ending split across pushes in every way
        check(
            1000,
            &[b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r", b"\n"],
            "| msg:33 | left:0",
        );
        check(
            1000,
            &[b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r", b"\n\r\n"],
            "| msg:33 | left:0",
        );
        check(
            1000,
            &[b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\n", b"\n"],
            "| msg:31 | left:0",
        );
    }

    #[test]
    fn bad_lengths_close() {
        check(
            1000,
            &[b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n"],
            "close:bad or missing Content-Length on a stream | left:48",
        );
        check(
            1000,
            &[b"INVITE sip:a@b SIP/2.0\r\nl: 1\r\nl: 1\r\n\r\nx"],
            "close:bad or missing Content-Length on a stream | left:39",
        );
        check(
            100,
            &[&[b'a'; 150]],
            "close:message exceeds 100 bytes | left:150",
        );
        check(
            100,
            &[&[b'a'; 150], &[b'a'; 51]],
            "close:message exceeds 100 bytes | push-error:message exceeds 100 bytes left:150",
        );
        check(
            100,
            &[b"INVITE sip:a@b SIP/2.0\r\nl: 99\r\n\r\n"],
            "close:message exceeds 100 bytes | left:33",
        );
    }

    #[test]
    fn many_small_pushes_stay_linear() {
        // 60 000 one-byte pushes of a 60 KB header: each call resumes where the last one
        // stopped, so this is fast even in debug builds.
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        while msg.len() < 60_000 {
            msg.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        msg.extend_from_slice(b"\r\n");
        let mut f = StreamFramer::default();
        let mut frames = 0;
        for b in &msg {
            f.push(std::slice::from_ref(b)).unwrap();
            while let Some(Frame::Message(_)) = f.next_frame().unwrap() {
                frames += 1;
            }
        }
        assert_eq!(frames, 1);
    }
}
