//! FastCGI name-value pairs (PARAMS and GET_VALUES content): each length is one
//! byte when below 128, otherwise four bytes with the high bit set.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ProtocolError;

/// Splits `data` into (name, value) pairs. The slices share `data`'s memory.
/// A length that runs past the end of `data` is an error, never a panic.
pub fn parse_name_values(data: &Bytes) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    let mut pairs = Vec::with_capacity(32);
    for_each_name_value::<ProtocolError>(data, |name, value| {
        pairs.push((data.slice(name), data.slice(value)));
        Ok(())
    })?;
    Ok(pairs)
}

/// Calls `each` with the byte ranges of every pair's name and value in
/// `data`, in order; stops at the first error, `each`'s or the data's.
pub(crate) fn for_each_name_value<E: From<ProtocolError>>(
    data: &[u8],
    mut each: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>) -> Result<(), E>,
) -> Result<(), E> {
    let mut pos = 0;
    while pos < data.len() {
        let name_len = read_length(data, &mut pos)?;
        let value_len = read_length(data, &mut pos)?;
        let name_end = pos
            .checked_add(name_len)
            .ok_or(ProtocolError::TruncatedNameValue)?;
        let value_end = name_end
            .checked_add(value_len)
            .ok_or(ProtocolError::TruncatedNameValue)?;
        if value_end > data.len() {
            return Err(ProtocolError::TruncatedNameValue.into());
        }
        each(pos..name_end, name_end..value_end)?;
        pos = value_end;
    }
    Ok(())
}

fn read_length(data: &[u8], pos: &mut usize) -> Result<usize, ProtocolError> {
    let first = *data.get(*pos).ok_or(ProtocolError::TruncatedNameValue)?;
    if first < 0x80 {
        *pos += 1;
        return Ok(usize::from(first));
    }
    let bytes = data
        .get(*pos..*pos + 4)
        .ok_or(ProtocolError::TruncatedNameValue)?;
    *pos += 4;
    let length = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    Ok(length as usize)
}

/// Appends one name-value pair to `dst`, choosing the short or long length form.
pub fn encode_name_value(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    for len in [name.len(), value.len()] {
        if len < 0x80 {
            dst.put_u8(len as u8);
        } else {
            dst.put_u32(len as u32 | 0x8000_0000);
        }
    }
    dst.put_slice(name);
    dst.put_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths_round_trip() {
        let long_value = vec![b'v'; 300];
        let mut buf = BytesMut::new();
        encode_name_value(&mut buf, b"REQUEST_METHOD", b"GET");
        encode_name_value(&mut buf, b"HTTP_COOKIE", &long_value);
        encode_name_value(&mut buf, b"EMPTY", b"");
        let pairs = parse_name_values(&buf.freeze()).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(&pairs[0].0[..], b"REQUEST_METHOD");
        assert_eq!(&pairs[0].1[..], b"GET");
        assert_eq!(&pairs[1].1[..], &long_value[..]);
        assert_eq!(&pairs[2].1[..], b"");
    }

    #[test]
    fn lengths_that_lie_are_errors() {
        // Claims a 10-byte name, has 3 bytes.
        let lying = Bytes::from_static(&[10, 0, b'a', b'b', b'c']);
        assert!(parse_name_values(&lying).is_err());
        // Four-byte length form cut short.
        let cut = Bytes::from_static(&[0x80, 0, 0]);
        assert!(parse_name_values(&cut).is_err());
        // Maximum four-byte length.
        let huge = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(parse_name_values(&huge).is_err());
    }
}
