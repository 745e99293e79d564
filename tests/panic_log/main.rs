//! A peer that can make nene panic (a bug in a handler, say) must not be
//! able to flood the log with it: 200 panics in a burst are one ERROR line,
//! and the next line reports how many were left out. A test crate of its
//! own: the panic hook and the log subscriber it installs are
//! process-wide, and beside other tests it would swallow their failure
//! messages (seen in CI: a failing test printed nothing).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Collects what the log writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_burst_of_panics_is_one_log_line_then_a_count() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    nene::panic_log::log_panics();

    for n in 0..200 {
        let _ = std::panic::catch_unwind(|| panic!("request {n} broke\nforged line"));
    }
    std::thread::sleep(Duration::from_millis(1100));
    let _ = std::panic::catch_unwind(|| panic!("after the burst"));

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("request 0 broke forged line"),
        "{text}"
    );
    assert!(lines[0].contains("tests/panic_log/main.rs:"), "{text}");
    assert!(
        lines[1].contains("after the burst") && lines[1].contains("199 more panics not logged"),
        "{text}"
    );
}
