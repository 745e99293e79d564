//! Bounds the size of Redis replies read from a connection's byte stream.
//! The `redis` crate buffers a whole reply before decoding it and has no size limit, so a
//! hostile or broken peer that sends `$9999999999\r\n` and then streams bytes would grow our
//! memory without end. This hand-written wrapper follows the RESP2/RESP3 framing as the bytes
//! go by and fails the read (the connection is then dropped) once a reply passes the bound.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest line (type byte to LF, inclusive) accepted; real replies' lines are far shorter.
const MAX_LINE: u64 = 64 * 1024;
/// Deepest nesting of aggregates accepted (the `redis` crate itself stops at 100).
const MAX_DEPTH: usize = 64;
/// Fewest bytes any RESP element takes on the wire (`_\r\n`, `+\r\n`), used to refuse
/// element counts that cannot fit in the bound before their elements arrive.
const MIN_ELEMENT: u64 = 3;

/// Why a reply was refused; the message says what the peer did.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Refusal {
    /// A header declared a payload length or element count that cannot fit in the bound.
    Declared {
        /// The bound.
        max: u64,
        /// The length or count the peer declared.
        declared: u64,
        /// What `declared` counts: "bytes" or "elements".
        unit: &'static str,
    },
    /// The bytes of one reply passed the bound.
    Grew {
        /// The bound.
        max: u64,
    },
    /// A line went on longer than `MAX_LINE` without its CRLF.
    LineTooLong,
    /// Aggregates were nested deeper than `MAX_DEPTH`.
    TooDeep,
    /// The bytes are not RESP, so the framing (and with it the bound) is lost.
    Malformed(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Declared {
                max,
                declared,
                unit,
            } => write!(
                f,
                "a Redis reply larger than {max} bytes (declared {declared} {unit})"
            ),
            Refusal::Grew { max } => write!(f, "a Redis reply larger than {max} bytes"),
            Refusal::LineTooLong => write!(f, "a Redis reply line longer than {MAX_LINE} bytes"),
            Refusal::TooDeep => write!(f, "a Redis reply nested deeper than {MAX_DEPTH}"),
            Refusal::Malformed(what) => write!(f, "a malformed Redis reply ({what})"),
        }?;
        f.write_str(": refused while reading")
    }
}

/// Where the scanner is inside the current element.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Expecting the type byte that starts an element.
    Type,
    /// Inside a line whose content is not needed (`+ - : _ # , (`); `cr` = last byte was CR.
    Line { cr: bool },
    /// Inside the length or count line after `$ = ! * % ~ > |`.
    Header(Header),
    /// Skipping `left` payload bytes of a bulk string, verbatim string or blob error.
    Payload { left: u64 },
    /// Expecting the CRLF after a payload; `cr` = the CR was seen.
    PayloadEnd { cr: bool },
}

/// A length or count line being read, digit by digit.
#[derive(Clone, Copy, Debug)]
struct Header {
    /// The type byte, which says what the number counts.
    kind: u8,
    /// The number so far; `None` until its first digit.
    value: Option<u64>,
    /// A `-` came first (only `-1`, the RESP2 null, is accepted).
    negative: bool,
    /// The CR was seen, so only LF may follow.
    cr: bool,
}

/// Incremental RESP2 + RESP3 framing scanner: finds where each top-level reply ends across
/// arbitrary chunk boundaries and refuses replies over the bound. It never stores values.
#[derive(Debug)]
pub(crate) struct ReplyScanner {
    /// Largest number of bytes one top-level reply may take.
    max_reply_bytes: u64,
    /// Where we are in the current element.
    state: State,
    /// Bytes of the current top-level reply seen so far; reset when it ends.
    reply_bytes: u64,
    /// Bytes of the current line so far, to enforce `MAX_LINE`.
    line_bytes: u64,
    /// For each open aggregate, the number of its elements not yet completed (always ≥ 1).
    open: Vec<u64>,
    /// Sum of `open`, kept so the element-count check stays O(1).
    open_sum: u64,
    /// The first refusal; once set, the stream is dead and every later feed repeats it.
    refused: Option<Refusal>,
}

impl ReplyScanner {
    /// A scanner refusing any top-level reply larger than `max_reply_bytes` bytes.
    pub(crate) fn new(max_reply_bytes: u64) -> Self {
        Self {
            max_reply_bytes,
            state: State::Type,
            reply_bytes: 0,
            line_bytes: 0,
            open: Vec::new(),
            open_sum: 0,
            refused: None,
        }
    }

    /// The refusal that killed this stream, if any.
    pub(crate) fn refused(&self) -> Option<&Refusal> {
        self.refused.as_ref()
    }

    /// Scans the next bytes of the stream; returns how many top-level replies ended in them.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<usize, Refusal> {
        if let Some(refusal) = &self.refused {
            return Err(refusal.clone());
        }
        self.scan(bytes)
            .inspect_err(|refusal| self.refused = Some(refusal.clone()))
    }

    /// The state machine behind `feed`.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<usize, Refusal> {
        let mut ended = 0;
        while let Some(&byte) = bytes.first() {
            let mut used = 1; // bytes of `bytes` this step consumes
            let mut element_done = false;
            let mut header_done = None;
            match &mut self.state {
                State::Type => {
                    self.line_bytes = 0;
                    self.state = match byte {
                        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => State::Line { cr: false },
                        b'$' | b'=' | b'!' | b'*' | b'%' | b'~' | b'>' | b'|' => {
                            State::Header(Header {
                                kind: byte,
                                value: None,
                                negative: false,
                                cr: false,
                            })
                        }
                        _ => return Err(Refusal::Malformed("unknown type byte")),
                    };
                }
                State::Line { cr } => {
                    // Lines end at CRLF; a bare LF is content, as in the `redis` crate's parser.
                    used = bytes.len();
                    for (i, &b) in bytes.iter().enumerate() {
                        if b == b'\n' && *cr {
                            used = i + 1;
                            element_done = true;
                            break;
                        }
                        *cr = b == b'\r';
                    }
                }
                State::Header(h) => match byte {
                    b'\n' if h.cr && h.value.is_some() => header_done = Some(*h),
                    b'\r' if !h.cr => h.cr = true,
                    b'-' if !h.cr && !h.negative && h.value.is_none() => h.negative = true,
                    b'0'..=b'9' if !h.cr => {
                        let value = (h.value.unwrap_or(0).checked_mul(10))
                            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                            .ok_or(Refusal::Malformed("length out of range"))?;
                        h.value = Some(value);
                    }
                    _ => return Err(Refusal::Malformed("length is not a number")),
                },
                State::Payload { left } => {
                    // Skipped by count: payload bytes are never looked at.
                    used = bytes
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= used as u64;
                    if *left == 0 {
                        self.state = State::PayloadEnd { cr: false };
                    }
                }
                State::PayloadEnd { cr } => match (*cr, byte) {
                    (false, b'\r') => *cr = true,
                    (true, b'\n') => element_done = true,
                    _ => return Err(Refusal::Malformed("payload not followed by CRLF")),
                },
            }
            if let State::Line { .. } | State::Header(_) = self.state {
                self.line_bytes += used as u64;
                if self.line_bytes > MAX_LINE {
                    return Err(Refusal::LineTooLong);
                }
            }
            self.reply_bytes += used as u64;
            if self.reply_bytes > self.max_reply_bytes {
                return Err(Refusal::Grew {
                    max: self.max_reply_bytes,
                });
            }
            bytes = &bytes[used..];
            if let Some(header) = header_done {
                element_done = self.header_done(header)?;
            }
            if element_done {
                ended += usize::from(self.element_done());
            }
        }
        Ok(ended)
    }

    /// Acts on a complete length/count line; returns true if the element is already complete.
    fn header_done(&mut self, header: Header) -> Result<bool, Refusal> {
        let (kind, value) = (header.kind, header.value.unwrap_or(0)); // it has digits
        let max = self.max_reply_bytes;
        if header.negative {
            // `-1` is the RESP2 null; other negatives are refused (the `redis` crate would read
            // `=-1` and `!-1` as lengths near 2^64 and buffer for ever).
            return match (kind, value) {
                (b'$' | b'*' | b'~' | b'>', 1) => Ok(true),
                _ => Err(Refusal::Malformed("negative length")),
            };
        }
        let declared = |unit| Refusal::Declared {
            max,
            declared: value,
            unit,
        };
        if let b'$' | b'=' | b'!' = kind {
            // Refuse before any payload arrives if the payload and its CRLF cannot fit.
            if value.saturating_add(2) > max - self.reply_bytes {
                return Err(declared("bytes"));
            }
            self.state = if value == 0 {
                State::PayloadEnd { cr: false }
            } else {
                State::Payload { left: value }
            };
            return Ok(false);
        }
        let count = match kind {
            b'%' => value.saturating_mul(2),
            b'|' => value.saturating_mul(2).saturating_add(1), // followed by the annotated value
            _ => value,
        };
        if count == 0 {
            return Ok(true);
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(Refusal::TooDeep);
        }
        // Elements not started yet: every open aggregate's count, less the one in progress at
        // each level, plus this one's. Each takes at least MIN_ELEMENT bytes.
        let unstarted = (self.open_sum - self.open.len() as u64).saturating_add(count);
        if unstarted.saturating_mul(MIN_ELEMENT) > max - self.reply_bytes {
            return Err(declared("elements"));
        }
        self.open.push(count);
        self.open_sum += count;
        self.state = State::Type;
        Ok(false)
    }

    /// Records that an element ended; returns true if it ended a top-level reply.
    fn element_done(&mut self) -> bool {
        self.state = State::Type;
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            self.open_sum -= 1;
            if *left > 0 {
                return false;
            }
            self.open.pop();
        }
        self.reply_bytes = 0;
        true
    }
}

/// A Redis connection's stream that fails reads once a reply passes the bound, so the
/// `redis` crate never buffers more than about that much for one reply.
#[derive(Debug)]
pub(crate) struct BoundedReplies<S> {
    /// The real connection (TCP, Unix socket, ...).
    inner: S,
    /// Follows the replies read so far and decides when one is too large.
    scanner: ReplyScanner,
}

impl<S> BoundedReplies<S> {
    /// Wraps `inner`, refusing any reply larger than `max_reply_bytes` bytes.
    pub(crate) fn new(inner: S, max_reply_bytes: u64) -> Self {
        Self {
            inner,
            scanner: ReplyScanner::new(max_reply_bytes),
        }
    }
}

/// The error every read returns once a reply was refused.
fn refused_error(refusal: &Refusal) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, refusal.to_string())
}

impl<S: AsyncRead + Unpin> AsyncRead for BoundedReplies<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(refusal) = this.scanner.refused() {
            return Poll::Ready(Err(refused_error(refusal)));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Err(refusal) = this.scanner.feed(&buf.filled()[before..]) {
            buf.set_filled(before); // the caller must not see the refused bytes
            return Poll::Ready(Err(refused_error(&refusal)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BoundedReplies<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Checks the scanner on every type and chunking, and the wrapper on hostile peers.
#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One reply of every RESP2 and RESP3 type, including nulls, nesting and awkward payloads.
    const REPLIES: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR bad thing\r\n",
        b":42\r\n",
        b":-7\r\n",
        b"$5\r\nhello\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"$4\r\na\r\nb\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n_\r\n",
        b"_\r\n",
        b"#t\r\n",
        b",3.14\r\n",
        b"(12345678901234567890\r\n",
        b"=15\r\ntxt:Some string\r\n",
        b"!21\r\nSYNTAX invalid syntax\r\n",
        b"%2\r\n+k1\r\n:1\r\n+k2\r\n*1\r\n$1\r\nx\r\n",
        b"~2\r\n+a\r\n+b\r\n",
        b">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
        b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n",
        b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n%0\r\n",
        b"+bare\nLF\r\n",
    ];

    /// Feeds `chunks` to a fresh scanner; returns the replies that ended, or the refusal.
    fn scan<'a>(max: u64, chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<usize, Refusal> {
        let mut scanner = ReplyScanner::new(max);
        chunks.into_iter().map(|c| scanner.feed(c)).sum()
    }

    /// `scan` for a single chunk.
    fn one(max: u64, bytes: &[u8]) -> Result<usize, Refusal> {
        scan(max, [bytes])
    }

    /// The refusal for a declared size that cannot fit.
    fn declared(max: u64, declared: u64, unit: &'static str) -> Result<usize, Refusal> {
        Err(Refusal::Declared {
            max,
            declared,
            unit,
        })
    }

    #[test]
    fn every_type_is_one_reply_and_valid_for_the_redis_crate() {
        for reply in REPLIES {
            assert!(redis::parse_redis_value(reply).is_ok(), "{reply:?}");
            assert_eq!(one(1 << 20, reply), Ok(1), "{reply:?}");
        }
    }

    #[test]
    fn replies_end_at_the_right_byte_when_fed_one_byte_at_a_time() {
        let all = REPLIES.concat();
        let mut scanner = ReplyScanner::new(1 << 20);
        let ends: Vec<usize> = (0..all.len())
            .filter(|&i| scanner.feed(&all[i..=i]).unwrap() == 1)
            .map(|i| i + 1)
            .collect();
        let mut end = 0;
        let expected: Vec<usize> = REPLIES
            .iter()
            .map(|r| {
                end += r.len();
                end
            })
            .collect();
        assert_eq!(ends, expected);
    }

    #[test]
    fn split_at_every_boundary() {
        let all = REPLIES.concat();
        for at in 0..=all.len() {
            let (a, b) = all.split_at(at);
            assert_eq!(scan(1 << 20, [a, b]), Ok(REPLIES.len()), "split at {at}");
        }
    }

    #[test]
    fn random_chunk_sizes() {
        let all = REPLIES.concat().repeat(20);
        let mut seed = 0x2545_f491_4f6c_dd1du64; // xorshift64
        for _ in 0..200 {
            let mut chunks = Vec::new();
            let mut rest = &all[..];
            while !rest.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let (chunk, tail) = rest.split_at(rest.len().min(1 + (seed % 40) as usize));
                chunks.push(chunk);
                rest = tail;
            }
            assert_eq!(scan(1 << 20, chunks), Ok(REPLIES.len() * 20));
        }
    }

    #[test]
    fn huge_bulk_refused_at_header_before_payload() {
        let mut scanner = ReplyScanner::new(1 << 20);
        assert_eq!(scanner.feed(b"$10000000000\r"), Ok(0));
        let refusal = scanner.feed(b"\n");
        assert_eq!(refusal, declared(1 << 20, 10_000_000_000, "bytes"));
        let message = refusal.unwrap_err().to_string();
        assert!(message.contains("larger than 1048576 bytes (declared 10000000000"));
        assert_eq!(
            one(1 << 20, b"=99999999\r\n"),
            declared(1 << 20, 99999999, "bytes")
        );
        assert_eq!(
            one(1 << 20, b"!99999999\r\n"),
            declared(1 << 20, 99999999, "bytes")
        );
        assert_eq!(
            one(1 << 20, b"*1\r\n$99999999\r\n"),
            declared(1 << 20, 99999999, "bytes")
        );
    }

    #[test]
    fn reply_exactly_at_the_bound_is_accepted_and_one_byte_more_refused() {
        assert_eq!(one(10, b"$4\r\nabcd\r\n"), Ok(1));
        assert_eq!(one(10, b"$5\r\n"), declared(10, 5, "bytes"));
        assert_eq!(one(11, b"+12345678\r\n"), Ok(1));
        assert_eq!(one(10, b"+12345678\r\n"), Err(Refusal::Grew { max: 10 }));
        assert_eq!(one(12, b"*2\r\n:1\r\n:2\r\n"), Ok(1));
        assert_eq!(
            one(11, b"*2\r\n:1\r\n:2\r\n"),
            Err(Refusal::Grew { max: 11 })
        );
        // The bound is per reply: many replies at the bound in a row are all fine.
        let many = std::iter::repeat_n(&b"$4\r\nabcd\r\n"[..], 1000);
        assert_eq!(scan(10, many), Ok(1000));
    }

    #[test]
    fn too_many_elements_refused() {
        assert_eq!(one(1000, b"*1000\r\n"), declared(1000, 1000, "elements"));
        assert_eq!(one(1000, b"%200\r\n"), declared(1000, 200, "elements"));
        // The elements still to come in the parent count too.
        assert_eq!(one(100, b"*20\r\n*10\r\n"), Ok(0));
        assert_eq!(one(100, b"*20\r\n*20\r\n"), declared(100, 20, "elements"));
        // Elements larger than 3 bytes: refused once the bytes pass the bound.
        let mut scanner = ReplyScanner::new(1000);
        scanner.feed(b"*300\r\n").unwrap();
        let fed = (1..300).take_while(|_| scanner.feed(b":12345\r\n").is_ok());
        assert_eq!(fed.count(), (1000 - 6) / 8);
        assert_eq!(scanner.refused(), Some(&Refusal::Grew { max: 1000 }));
    }

    #[test]
    fn nesting_up_to_the_limit() {
        let nested = |depth| [&b"*1\r\n".repeat(depth)[..], b":1\r\n"].concat();
        assert_eq!(one(1 << 20, &nested(MAX_DEPTH)), Ok(1));
        assert_eq!(one(1 << 20, &nested(MAX_DEPTH + 1)), Err(Refusal::TooDeep));
    }

    #[test]
    fn long_lines_refused() {
        let line = |len| [&b"+"[..], &b"a".repeat(len), b"\r\n"].concat();
        let max_line = MAX_LINE as usize;
        assert_eq!(one(1 << 20, &line(max_line - 3)), Ok(1));
        assert_eq!(one(1 << 20, &line(max_line - 2)), Err(Refusal::LineTooLong));
        let endless = b"a".repeat(max_line);
        assert_eq!(
            scan(1 << 20, [&b"+"[..], &endless]),
            Err(Refusal::LineTooLong)
        );
        let zeros = b"0".repeat(max_line);
        assert_eq!(
            scan(1 << 20, [&b"$"[..], &zeros]),
            Err(Refusal::LineTooLong)
        );
    }

    #[test]
    fn malformed_replies_refused() {
        for bad in [
            &b"?x\r\n"[..],
            b"$abc\r\n",
            b"$\r\n",
            b"$1x\r\n",
            b"$1\r\r\n",
            b"$5\r\nhello!!",
            b"$1\r\nx\r\r",
            b"$-2\r\n",
            b"=-1\r\n",
            b"%-1\r\n",
            b"$99999999999999999999999\r\n",
            b"*?\r\n",
        ] {
            let refused = one(u64::MAX, bad);
            assert!(matches!(refused, Err(Refusal::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn refusal_is_final() {
        let mut scanner = ReplyScanner::new(10);
        assert!(scanner.feed(b"$100\r\n").is_err());
        assert!(scanner.feed(b"+OK\r\n").is_err());
    }

    /// Reads `reader` until an error or EOF; returns the bytes read and the error, if any.
    async fn read_all(reader: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, Option<io::Error>) {
        let (mut out, mut buf) = (Vec::new(), vec![0; 8192]);
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// A request and the peer's answer to it.
    type Exchange = (&'static [u8], &'static [u8]);
    /// PING as the `redis` crate sends it, and the usual answer.
    const PING: Exchange = (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n");
    /// GET as the `redis` crate sends it, and the header of an endless bulk string.
    const HUGE_GET: Exchange = (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$9999999999\r\n");

    /// A peer that checks each request of `script` and sends its answer, then sends `x` bytes
    /// for ever (until the other end goes away).
    fn peer(script: &'static [Exchange]) -> tokio::io::DuplexStream {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut buf = vec![0; 4096];
            for (request, answer) in script {
                let n = server.read(&mut buf).await?;
                assert_eq!(&buf[..n], *request);
                server.write_all(answer).await?;
            }
            while server.write_all(&[b'x'; 8192]).await.is_ok() {}
            io::Result::Ok(())
        });
        client
    }

    #[tokio::test]
    async fn endless_reply_fails_the_read_within_the_bound() {
        let mut reader = BoundedReplies::new(peer(&[HUGE_GET]), 16 * 1024);
        reader.write_all(HUGE_GET.0).await.unwrap();
        let (read, error) = read_all(&mut reader).await;
        let error = error.expect("the endless reply must fail the read");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().ends_with("refused while reading"),
            "{error}"
        );
        assert!(read.len() <= 16 * 1024 + 8192, "{} bytes read", read.len());
        assert!(
            reader.read(&mut [0; 16]).await.is_err(),
            "later reads fail too"
        );
        // The same for a reply that grows without declaring its size.
        let mut reader = BoundedReplies::new(peer(&[(PING.0, b"*99\r\n+")]), 16 * 1024);
        reader.write_all(PING.0).await.unwrap();
        let (read, error) = read_all(&mut reader).await;
        assert_eq!(error.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        assert!(read.len() <= 16 * 1024 + 8192, "{} bytes read", read.len());
    }

    #[tokio::test]
    async fn replies_and_writes_pass_through_unchanged() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut bounded = BoundedReplies::new(client, 1 << 20);
        let all = REPLIES.concat().repeat(50);
        let sent = all.clone();
        let peer = tokio::spawn(async move {
            server.write_all(&sent).await.unwrap();
            server.shutdown().await.unwrap();
            let mut command = [0; 14];
            server.read_exact(&mut command).await.unwrap();
            command
        });
        assert_eq!(read_all(&mut bounded).await.0, all);
        bounded.write_all(PING.0).await.unwrap();
        assert_eq!(&peer.await.unwrap(), PING.0);
    }

    #[tokio::test]
    async fn redis_connection_gets_an_error_instead_of_a_huge_reply() {
        let stream = BoundedReplies::new(peer(&[PING, HUGE_GET]), 1 << 20);
        let info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        let config = redis::AsyncConnectionConfig::new();
        let (mut connection, driver) =
            redis::aio::MultiplexedConnection::new_with_config(&info, stream, config)
                .await
                .unwrap();
        tokio::spawn(driver);
        let pong = redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await;
        assert_eq!(pong.unwrap(), "PONG");
        let mut get = redis::cmd("GET");
        let get = get.arg("k").query_async::<Option<Vec<u8>>>(&mut connection);
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), get).await;
        let error = result.expect("GET must fail, not hang").unwrap_err();
        assert!(
            error.to_string().contains("refused while reading"),
            "{error}"
        );
    }
}
