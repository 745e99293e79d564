//! Property tests for the FastCGI wire decoders: whatever nginx (or anything
//! else on the socket) sends, `RecordCodec` and `parse_name_values` either
//! give back exactly what was encoded or return an error, and never panic.
//!
//! The case counts are kept modest so this file runs in a few seconds with
//! the rest of `cargo test`; raise them with `PROPTEST_CASES` for a longer
//! run.

use bytes::{Bytes, BytesMut};
use nene::fastcgi::{
    HEADER_LEN, MAX_CONTENT_LEN, Record, RecordCodec, RecordType, VERSION_1, encode_name_value,
    encode_record, parse_name_values,
};
use proptest::prelude::*;
use proptest::sample::Index;
use tokio_util::codec::Decoder;

/// Name and value bytes, with lengths clustered around the 127/128 boundary
/// where the one-byte length form gives way to the four-byte one.
fn name_or_value() -> impl Strategy<Value = Vec<u8>> {
    let length = prop_oneof![0usize..=4, 125usize..=131, 0usize..=600];
    length.prop_flat_map(|len| prop::collection::vec(any::<u8>(), len))
}

/// Record content: mostly small, sometimes a few KB.
fn record_content() -> impl Strategy<Value = Vec<u8>> {
    let length = prop_oneof![4 => 0usize..=64, 1 => 0usize..=4096];
    length.prop_flat_map(|len| prop::collection::vec(any::<u8>(), len))
}

/// (type, request id, content) of one record.
fn record_parts() -> impl Strategy<Value = (u8, u16, Vec<u8>)> {
    (any::<u8>(), any::<u16>(), record_content())
}

/// A byte stream that gets past the version check now and then: fragments
/// that are either plausible version-1 headers (with arbitrary lengths) or
/// arbitrary bytes.
fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    let header = (
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(record_type, id, content_len, padding, reserved)| {
            let mut bytes = vec![VERSION_1, record_type];
            bytes.extend_from_slice(&id.to_be_bytes());
            bytes.extend_from_slice(&content_len.to_be_bytes());
            bytes.extend_from_slice(&[padding, reserved]);
            bytes
        });
    let fragment = prop_oneof![
        2 => header,
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(fragment, 0..16).prop_map(|fragments| fragments.concat()),
    ]
}

/// Decodes every record available in `buf`, checking on each step that the
/// codec consumed exactly one record's worth of bytes.
fn decode_available(buf: &mut BytesMut, out: &mut Vec<Record>) -> Result<(), TestCaseError> {
    loop {
        let before = buf.len();
        let padding = if before >= HEADER_LEN {
            usize::from(buf[6])
        } else {
            0
        };
        match RecordCodec.decode(buf) {
            Ok(Some(record)) => {
                prop_assert_eq!(
                    before - buf.len(),
                    HEADER_LEN + record.content.len() + padding
                );
                out.push(record);
            }
            Ok(None) => {
                prop_assert_eq!(buf.len(), before, "a partial record must stay buffered");
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoded_name_value_pairs_parse_back_to_the_same_pairs(
        pairs in prop::collection::vec((name_or_value(), name_or_value()), 0..16)
    ) {
        let mut buf = BytesMut::new();
        for (name, value) in &pairs {
            encode_name_value(&mut buf, name, value);
        }
        let parsed = parse_name_values(&buf.freeze()).expect("well-formed pairs must parse");
        let parsed: Vec<(Vec<u8>, Vec<u8>)> = parsed
            .into_iter()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect();
        prop_assert_eq!(parsed, pairs);
    }

    #[test]
    fn name_value_pairs_cut_inside_the_last_pair_are_an_error_never_fewer_pairs(
        pairs in prop::collection::vec((name_or_value(), name_or_value()), 1..8),
        cut in any::<Index>(),
    ) {
        let mut buf = BytesMut::new();
        for (name, value) in &pairs[..pairs.len() - 1] {
            encode_name_value(&mut buf, name, value);
        }
        let last_starts = buf.len();
        let (name, value) = &pairs[pairs.len() - 1];
        encode_name_value(&mut buf, name, value);
        // Anywhere strictly inside the last pair: its lengths or its bytes.
        let end = last_starts + 1 + cut.index(buf.len() - last_starts - 1);
        prop_assume!(end < buf.len());
        let truncated = buf.freeze().slice(..end);
        prop_assert!(
            parse_name_values(&truncated).is_err(),
            "{} of {} bytes parsed", end, last_starts
        );
    }

    #[test]
    fn a_pair_whose_value_length_claims_more_than_is_there_is_an_error(
        pairs in prop::collection::vec((name_or_value(), name_or_value()), 1..8),
        lie in 1usize..1000,
    ) {
        // The last pair's value length, in its long (4-byte) form, made larger
        // than the bytes that follow.
        let mut buf = BytesMut::new();
        for (name, value) in &pairs[..pairs.len() - 1] {
            encode_name_value(&mut buf, name, value);
        }
        let (name, value) = &pairs[pairs.len() - 1];
        prop_assume!(name.len() < 128);
        buf.extend_from_slice(&[name.len() as u8]);
        let claimed = (value.len() + lie) as u32 | 0x8000_0000;
        buf.extend_from_slice(&claimed.to_be_bytes());
        buf.extend_from_slice(name);
        buf.extend_from_slice(value);
        prop_assert!(parse_name_values(&buf.freeze()).is_err());
    }

    #[test]
    fn a_stream_cut_inside_its_last_record_yields_the_records_before_it_and_waits(
        records in prop::collection::vec(record_parts(), 1..8),
        cut in any::<Index>(),
    ) {
        let mut wire = BytesMut::new();
        for (record_type, id, content) in &records[..records.len() - 1] {
            encode_record(&mut wire, RecordType(*record_type), *id, content);
        }
        let last_starts = wire.len();
        let (record_type, id, content) = &records[records.len() - 1];
        encode_record(&mut wire, RecordType(*record_type), *id, content);
        let end = last_starts + cut.index(wire.len() - last_starts);
        let mut buf = BytesMut::from(&wire[..end]);
        let mut decoded = Vec::new();
        decode_available(&mut buf, &mut decoded)?;
        // Never a shorter last record: the complete ones, then a wait with
        // every byte of the unfinished one kept.
        prop_assert_eq!(decoded.len(), records.len() - 1);
        prop_assert_eq!(buf.len(), end - last_starts);
    }

    #[test]
    fn arbitrary_bytes_given_to_the_name_value_parser_are_pairs_or_an_error(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1024),
            // Long-form lengths with the high bit set, and little behind them.
            prop::collection::vec(prop_oneof![Just(0x80u8), Just(0xffu8), any::<u8>()], 0..64),
        ]
    ) {
        let data = Bytes::from(data);
        if let Ok(pairs) = parse_name_values(&data) {
            // Whatever parsed must fit inside the input, lengths included.
            let payload: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
            prop_assert!(payload + 2 * pairs.len() <= data.len());
        }
    }

    #[test]
    fn encoded_records_decode_back_identically_however_the_stream_is_split(
        records in prop::collection::vec(record_parts(), 0..12),
        splits in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let mut wire = BytesMut::new();
        for (record_type, id, content) in &records {
            encode_record(&mut wire, RecordType(*record_type), *id, content);
        }
        let wire = wire.freeze();

        let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();

        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut start = 0;
        for cut in cuts {
            buf.extend_from_slice(&wire[start..cut]);
            start = cut;
            decode_available(&mut buf, &mut decoded)?;
        }

        prop_assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
        let decoded: Vec<(u8, u16, Vec<u8>)> = decoded
            .into_iter()
            .map(|r| (r.record_type.0, r.request_id, r.content.to_vec()))
            .collect();
        prop_assert_eq!(decoded, records);
    }

    #[test]
    fn padded_records_decode_to_their_content_without_the_padding(
        records in prop::collection::vec((record_parts(), any::<u8>()), 0..8),
    ) {
        let mut wire = BytesMut::new();
        for ((record_type, id, content), padding) in &records {
            wire.extend_from_slice(&[VERSION_1, *record_type]);
            wire.extend_from_slice(&id.to_be_bytes());
            wire.extend_from_slice(&(content.len() as u16).to_be_bytes());
            wire.extend_from_slice(&[*padding, 0]);
            wire.extend_from_slice(content);
            wire.extend_from_slice(&vec![0xaa; usize::from(*padding)]);
        }
        let mut decoded = Vec::new();
        decode_available(&mut wire, &mut decoded)?;
        prop_assert!(wire.is_empty());
        let decoded: Vec<(u8, u16, Vec<u8>)> = decoded
            .into_iter()
            .map(|r| (r.record_type.0, r.request_id, r.content.to_vec()))
            .collect();
        let expected: Vec<(u8, u16, Vec<u8>)> = records.into_iter().map(|(parts, _)| parts).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn arbitrary_bytes_given_to_the_record_codec_never_yield_an_oversized_record(
        data in hostile_stream(),
        first_read in any::<Index>(),
    ) {
        // Once as one read, once as two, the way a socket may deliver it.
        let mut whole = BytesMut::from(&data[..]);
        let mut from_whole = Vec::new();
        decode_available(&mut whole, &mut from_whole)?;

        let cut = first_read.index(data.len() + 1);
        let mut split = BytesMut::from(&data[..cut]);
        let mut from_split = Vec::new();
        decode_available(&mut split, &mut from_split)?;
        split.extend_from_slice(&data[cut..]);
        decode_available(&mut split, &mut from_split)?;

        for record in &from_whole {
            prop_assert!(record.content.len() <= MAX_CONTENT_LEN);
            // Content of a record must also be safe to hand to the pair parser.
            let _ = parse_name_values(&record.content);
        }
        prop_assert_eq!(from_whole, from_split);
    }
}
