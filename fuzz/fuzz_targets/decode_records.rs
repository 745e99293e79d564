//! Arbitrary bytes as a read buffer: `RecordCodec` cuts them into records
//! until it needs more bytes or gives up, and every record's content goes
//! through the name-value parser. Nothing may panic, and the codec must
//! account for every byte it consumes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nene::fastcgi::{HEADER_LEN, MAX_CONTENT_LEN, RecordCodec, parse_name_values};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let padding = if before >= HEADER_LEN {
            usize::from(buf[6])
        } else {
            0
        };
        match RecordCodec.decode(&mut buf) {
            Ok(Some(record)) => {
                assert!(record.content.len() <= MAX_CONTENT_LEN);
                assert_eq!(
                    before - buf.len(),
                    HEADER_LEN + record.content.len() + padding
                );
                if let Ok(pairs) = parse_name_values(&record.content) {
                    let payload: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
                    assert!(payload + 2 * pairs.len() <= record.content.len());
                }
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "a partial record must stay buffered");
                break;
            }
            Err(_) => break,
        }
    }
});
