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
/// `limit` per connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new(MAX_MESSAGE_SIZE)
    }
}

impl StreamFramer {
    /// A framer accepting messages up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        StreamFramer { buf: Vec::new(), limit }
    }

    /// Appends received bytes. Fails if the buffer would exceed twice the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if self.buf.len() + bytes.len() > self.limit * 2 {
            return Err(FrameError::TooLarge(self.limit));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Leading CRLFs are keep-alives; a double CRLF is a ping.
        let lead = self.buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        if lead > 0 {
            let is_ping = self.buf[..lead].windows(4).any(|w| w == b"\r\n\r\n");
            if lead < self.buf.len() || is_ping {
                self.buf.drain(..lead);
                if is_ping {
                    return Ok(Some(Frame::Ping));
                }
            } else {
                return Ok(None);
            }
        }
        let Some(end) = find_header_end(&self.buf) else {
            if self.buf.len() > self.limit {
                return Err(FrameError::TooLarge(self.limit));
            }
            return Ok(None);
        };
        let body_len = content_length(&self.buf[..end])?;
        let total = end.checked_add(body_len).ok_or(FrameError::TooLarge(self.limit))?;
        if total > self.limit {
            return Err(FrameError::TooLarge(self.limit));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        Ok(Some(Frame::Message(msg)))
    }
}

/// Offset just past the empty line that ends the header section (CRLF or bare LF).
fn find_header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let at = i + nl + 1;
        match buf.get(at) {
            Some(b'\n') => return Some(at + 1),
            Some(b'\r') if buf.get(at + 1) == Some(&b'\n') => return Some(at + 2),
            Some(_) => i = at,
            None => return None,
        }
    }
    None
}

fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let text = String::from_utf8_lossy(head);
    let mut found = None;
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            if found.is_some() {
                return Err(FrameError::BadContentLength);
            }
            let v = value.trim();
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FrameError::BadContentLength);
            }
            found = Some(v.parse::<usize>().map_err(|_| FrameError::BadContentLength)?);
        }
    }
    // DEVIATION(RFC 3261 §18.3): a missing Content-Length on a stream is read as 0 rather
    // than closing the connection; the message then fails validation on its own merits.
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_joined() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        let mut f = StreamFramer::default();
        f.push(&m[..10]).unwrap();
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&m[10..]).unwrap();
        f.push(m).unwrap();
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Message(m.to_vec())));
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Message(m.to_vec())));
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\r\n\r\n").unwrap();
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
    }

    #[test]
    fn bad_lengths_close() {
        let mut f = StreamFramer::default();
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n").unwrap();
        assert_eq!(f.next_frame(), Err(FrameError::BadContentLength));
        let mut f = StreamFramer::new(100);
        assert!(f.push(&[b'a'; 150]).is_ok());
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge(100)));
    }
}
