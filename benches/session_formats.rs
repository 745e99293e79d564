//! What reading and writing back a large session costs in each format:
//! 100,000 top-level variables (about 1.5 MB in PHP's `php` format, under
//! `session.max_size`), decoded, then encoded unchanged. PHP's formats
//! used to cost time in the square of the variables (40,000 took 15 s of
//! CPU); the target is under 100 ms for the whole read.
//!
//! Run with `cargo bench --bench session_formats`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use nene::session::{JsonCodec, PhpCodec, PhpHandler, SessionCodec};

const VARIABLES: usize = 100_000;

fn formats(c: &mut Criterion) {
    let php: Vec<u8> = (0..VARIABLES)
        .flat_map(|n| format!("k{n}|i:{n};").into_bytes())
        .collect();
    let php_serialize = format!(
        "a:{VARIABLES}:{{{}}}",
        (0..VARIABLES)
            .map(|n| format!("s:{}:\"k{n}\";i:{n};", format!("k{n}").len()))
            .collect::<String>()
    )
    .into_bytes();
    let json = format!(
        "{{{}}}",
        (0..VARIABLES)
            .map(|n| format!("\"k{n}\":{n}"))
            .collect::<Vec<_>>()
            .join(",")
    )
    .into_bytes();
    let cases: [(&str, &dyn SessionCodec, Bytes); 3] = [
        ("php", &PhpCodec(PhpHandler::Php), php.into()),
        (
            "php_serialize",
            &PhpCodec(PhpHandler::PhpSerialize),
            php_serialize.into(),
        ),
        ("json", &JsonCodec, json.into()),
    ];
    let mut group = c.benchmark_group("100,000 variables");
    group.sample_size(10);
    for (name, codec, stored) in cases {
        group.bench_function(format!("{name}: decode"), |b| {
            b.iter(|| black_box(codec.decode(black_box(&stored)).unwrap()))
        });
        let decoded = codec.decode(&stored).unwrap();
        group.bench_function(format!("{name}: encode unchanged"), |b| {
            b.iter(|| black_box(codec.encode(&decoded.data, &decoded.kept).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, formats);
criterion_main!(benches);
