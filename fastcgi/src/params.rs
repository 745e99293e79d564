//! The CGI params of one request, held compactly: the buffer they arrived
//! in, and where each name and value lies in it. A pair costs 12 bytes
//! beside its own bytes, however short it is.

use bytes::{Bytes, BytesMut};

use super::error::ProtocolError;
use super::name_value::{encode_name_value, for_each_name_value};
use super::request::Rejection;

/// Where one pair lies in [`CgiParams`]' buffer: the name runs from `name`
/// to `value`, the value from `value` to `end`. Twelve bytes a pair, where
/// two `Bytes` handles took 64 (a peer sending 64 KiB of empty pairs made
/// 2 MiB of them).
#[derive(Clone, Copy, Debug)]
struct Span {
    name: u32,
    value: u32,
    end: u32,
}

/// The CGI meta-variables of one request, in the order the peer sent them.
/// Names and values are opaque bytes (nothing forces a peer to send UTF-8),
/// slices of the buffer the params arrived in.
#[derive(Clone, Debug, Default)]
pub struct CgiParams {
    /// The params as the peer encoded them.
    raw: Bytes,
    /// Each pair's place in `raw`, in the order sent.
    spans: Vec<Span>,
}

/// Why params were refused while parsing them.
pub(crate) enum ParamsError {
    /// The encoding lies about its lengths: the connection is closed.
    Protocol(ProtocolError),
    /// Well-formed but not accepted: the request alone is answered. The
    /// pairs before the one refused are kept for the access log.
    Refused(Rejection, CgiParams),
}

/// Where reading pairs stopped early.
enum Stop {
    Protocol(ProtocolError),
    Refused(Rejection),
}

impl From<ProtocolError> for Stop {
    fn from(error: ProtocolError) -> Self {
        Stop::Protocol(error)
    }
}

impl CgiParams {
    /// Params made of these pairs, in this order (for callers that are not
    /// reading FastCGI: `nene dev`, tests).
    ///
    /// # Panics
    /// When the pairs encode to 4 GiB or more.
    pub fn new(pairs: Vec<(Bytes, Bytes)>) -> Self {
        let mut raw = BytesMut::new();
        for (name, value) in &pairs {
            encode_name_value(&mut raw, name, value);
        }
        match Self::parse(raw.freeze(), usize::MAX) {
            Ok(params) => params,
            Err(_) => panic!("params of 4 GiB or more"),
        }
    }

    /// Parses the params content of one request: at most `max_count` pairs,
    /// none with an empty name.
    pub(crate) fn parse(raw: Bytes, max_count: usize) -> Result<Self, ParamsError> {
        match Self::parse_until_stopped(raw, max_count) {
            (params, None) => Ok(params),
            (_, Some(Stop::Protocol(error))) => Err(ParamsError::Protocol(error)),
            (params, Some(Stop::Refused(rejection))) => {
                Err(ParamsError::Refused(rejection, params))
            }
        }
    }

    /// The whole, acceptable pairs at the start of `raw` (at most
    /// `max_count`): what is known of params that were cut off at their
    /// bound, for the access log of the refusal.
    pub(crate) fn parse_prefix(raw: Bytes, max_count: usize) -> Self {
        Self::parse_until_stopped(raw, max_count).0
    }

    /// The pairs up to the first one that cannot be taken, and why reading
    /// stopped there (`None`: it did not).
    fn parse_until_stopped(raw: Bytes, max_count: usize) -> (Self, Option<Stop>) {
        if u32::try_from(raw.len()).is_err() {
            return (
                Self::default(),
                Some(Stop::Refused(Rejection::ParamsTooLarge)),
            );
        }
        // nginx sends about 20 params and one per header; most requests fit
        // without growing.
        let mut spans = Vec::with_capacity(32);
        let read = for_each_name_value(&raw, |name, value| {
            if name.is_empty() {
                return Err(Stop::Refused(Rejection::EmptyParamName));
            }
            if spans.len() == max_count {
                return Err(Stop::Refused(Rejection::TooManyParams));
            }
            // In range: `raw` is shorter than 4 GiB.
            spans.push(Span {
                name: name.start as u32,
                value: value.start as u32,
                end: value.end as u32,
            });
            Ok(())
        });
        (Self { raw, spans }, read.err())
    }

    // Inlined into nene's pass over every pair (another crate, and release
    // builds are not link-time optimised): called, each took ~360
    // instructions a request.
    #[inline]
    fn name_of(&self, span: &Span) -> &[u8] {
        &self.raw[span.name as usize..span.value as usize]
    }

    #[inline]
    fn value_of(&self, span: &Span) -> &[u8] {
        &self.raw[span.value as usize..span.end as usize]
    }

    fn find(&self, name: &str) -> Option<&Span> {
        // The lengths first, from the spans alone: most names differ in
        // length, and comparing them needs no slice of the buffer (three
        // lookups an access-log line cost 1,400 instructions comparing
        // slices).
        let length = name.len();
        self.spans.iter().rev().find(|span| {
            (span.value - span.name) as usize == length && self.name_of(span) == name.as_bytes()
        })
    }

    /// The value of `name`, if sent. The last one wins when a name repeats,
    /// as with nginx's `fastcgi_param` overrides.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.find(name).map(|span| self.value_of(span))
    }

    /// Like [`Self::get`], as a handle sharing the params' buffer (no copy).
    pub fn get_shared(&self, name: &str) -> Option<Bytes> {
        self.find(name)
            .map(|span| self.raw.slice(span.value as usize..span.end as usize))
    }

    /// REMOTE_ADDR as an IP address, when nginx sent a valid one.
    pub fn remote_ip(&self) -> Option<std::net::IpAddr> {
        self.get_str("REMOTE_ADDR")?.parse().ok()
    }

    /// The value of `name` when it is present and valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All pairs in the order sent, repeats included.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|span| (self.name_of(span), self.value_of(span)))
    }

    /// `part`, a name or value that [`Self::iter`] or [`Self::get`] gave, as
    /// a handle sharing the params' buffer (no copy). Taken for the values
    /// kept, not for every pair: a handle costs an atomic increment and
    /// decrement, which over the twenty-odd pairs of a request came to about
    /// a thirtieth of its instructions.
    ///
    /// # Panics
    /// When `part` is not a slice of these params.
    pub fn share(&self, part: &[u8]) -> Bytes {
        self.raw.slice_ref(part)
    }

    /// How many pairs were sent, repeats included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the peer sent no params at all.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pairs: &[(&[u8], &[u8])]) -> Bytes {
        let mut raw = BytesMut::new();
        for (name, value) in pairs {
            encode_name_value(&mut raw, name, value);
        }
        raw.freeze()
    }

    #[test]
    fn params_are_read_in_order_with_the_last_repeat_winning() {
        let raw = encoded(&[(b"A", b"1"), (b"B", b""), (b"A", b"2")]);
        let Ok(params) = CgiParams::parse(raw, 3) else {
            panic!("three pairs within a cap of three")
        };
        assert_eq!(params.len(), 3);
        assert_eq!(params.get("A"), Some(&b"2"[..]));
        assert_eq!(params.get_shared("B").as_deref(), Some(&b""[..]));
        assert_eq!(params.get("C"), None);
        let pairs: Vec<_> = params.iter().collect();
        assert_eq!(pairs[0], (&b"A"[..], &b"1"[..]));
        let shared = params.share(pairs[2].1);
        assert_eq!(shared, Bytes::from_static(b"2"));
        assert_eq!(shared.as_ptr(), pairs[2].1.as_ptr(), "a handle, not a copy");
    }

    #[test]
    fn one_pair_over_the_cap_or_an_empty_name_is_refused() {
        let three = encoded(&[(b"A", b"1"), (b"B", b"2"), (b"C", b"3")]);
        assert!(matches!(
            CgiParams::parse(three, 2),
            Err(ParamsError::Refused(Rejection::TooManyParams, known)) if known.len() == 2
        ));
        let empty_name = encoded(&[(b"A", b"1"), (b"", b"x")]);
        assert!(matches!(
            CgiParams::parse(empty_name, 10),
            Err(ParamsError::Refused(Rejection::EmptyParamName, known)) if known.get("A") == Some(&b"1"[..])
        ));
    }

    #[test]
    fn a_prefix_cut_mid_pair_keeps_the_whole_pairs_before_the_cut() {
        let raw = encoded(&[(b"REQUEST_METHOD", b"GET"), (b"HTTP_X", &[b'x'; 300])]);
        let cut = raw.slice(..raw.len() - 10);
        let known = CgiParams::parse_prefix(cut, 10);
        assert_eq!(known.len(), 1);
        assert_eq!(known.get_str("REQUEST_METHOD"), Some("GET"));
    }
}
