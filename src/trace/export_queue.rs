//! Where finished spans wait for the exporter: a bounded queue that a
//! request never waits on (a full queue drops the span and counts it), and
//! one background task that sends them in batches, each export bounded by
//! `otel.bsp_export_timeout`. A collector that is down or slow costs spans,
//! never a slower answer or more memory than the queue holds. After a
//! failed export the task pauses (1 s, doubling up to 30 s) and leaves
//! the queue to fill: encoding every span for a collector that refuses
//! them cost a traced `/health` a tenth of its throughput
//! (benches/traces.sh, "down"); spans that do not fit are dropped at
//! once, which costs next to nothing.
//!
//! Written here rather than the SDK's `BatchSpanProcessor` because that one
//! keeps its count of dropped spans to itself, and operators need it on the
//! status page to know their traces are incomplete.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::log_limit::{LogLimit, and_more};

/// A collector that is down fails every export: one line a second.
static EXPORT_FAILED: LogLimit = LogLimit::new();

/// The first pause after a failed export, doubled after each failure in
/// a row up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// Spans exported and spans lost, for the status page.
#[derive(Debug, Default)]
pub(crate) struct SpanCounters {
    pub(crate) exported: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// How the queue batches and bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits {
    pub(crate) max_queue_size: usize,
    pub(crate) max_export_batch_size: usize,
    pub(crate) schedule_delay: Duration,
    pub(crate) export_timeout: Duration,
}

/// The SDK's span processor: finished spans into the queue.
#[derive(Debug)]
pub(crate) struct ExportQueue {
    sender: mpsc::Sender<SpanData>,
    counters: Arc<SpanCounters>,
}

/// The background task that exports, stopped by [`ExportTask::finish`].
pub(crate) struct ExportTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ExportQueue {
    /// The queue, and its task exporting with `exporter` (spawned on the
    /// current Tokio runtime).
    pub(crate) fn start<E: SpanExporter + 'static>(
        exporter: E,
        limits: QueueLimits,
        counters: Arc<SpanCounters>,
    ) -> (ExportQueue, ExportTask) {
        let (sender, receiver) = mpsc::channel(limits.max_queue_size);
        let stop = CancellationToken::new();
        let task = tokio::spawn(export_loop(
            exporter,
            receiver,
            limits,
            counters.clone(),
            stop.clone(),
        ));
        (ExportQueue { sender, counters }, ExportTask { stop, task })
    }
}

impl SpanProcessor for ExportQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.sender.try_send(span).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // The task is stopped by ExportTask::finish, from async code.
        Ok(())
    }
}

impl ExportTask {
    /// Exports what is queued, waiting at most `within`, and stops.
    pub(crate) async fn finish(self, within: Duration) {
        self.stop.cancel();
        let _ = tokio::time::timeout(within, self.task).await;
    }
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut receiver: mpsc::Receiver<SpanData>,
    limits: QueueLimits,
    counters: Arc<SpanCounters>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(limits.max_export_batch_size);
    let mut pause = FIRST_PAUSE;
    loop {
        let first = tokio::select! {
            span = receiver.recv() => span,
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        // The batch fills for at most the schedule delay.
        let deadline = Instant::now() + limits.schedule_delay;
        while batch.len() < limits.max_export_batch_size {
            tokio::select! {
                span = receiver.recv() => match span {
                    Some(span) => batch.push(span),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                () = stop.cancelled() => break,
            }
        }
        if export(&exporter, &mut batch, limits.export_timeout, &counters).await {
            pause = FIRST_PAUSE;
        } else {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => {}
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
    // Stopping: what is still queued goes in one last round of batches.
    while let Ok(span) = receiver.try_recv() {
        batch.push(span);
        if batch.len() == limits.max_export_batch_size {
            export(&exporter, &mut batch, limits.export_timeout, &counters).await;
        }
    }
    if !batch.is_empty() {
        export(&exporter, &mut batch, limits.export_timeout, &counters).await;
    }
}

/// Sends `batch` (emptied) and counts its spans as exported or dropped;
/// whether the collector took them.
async fn export<E: SpanExporter>(
    exporter: &E,
    batch: &mut Vec<SpanData>,
    timeout: Duration,
    counters: &SpanCounters,
) -> bool {
    let spans = batch.len() as u64;
    let sent = std::mem::replace(batch, Vec::with_capacity(spans as usize));
    match tokio::time::timeout(timeout, exporter.export(sent)).await {
        Ok(Ok(())) => {
            counters.exported.fetch_add(spans, Ordering::Relaxed);
            return true;
        }
        Ok(Err(error)) => {
            counters.dropped.fetch_add(spans, Ordering::Relaxed);
            if let Some(left_out) = EXPORT_FAILED.admit() {
                tracing::warn!(
                    "trace export failed, {spans} span(s) dropped: {error}{}",
                    and_more(left_out)
                );
            }
        }
        Err(_) => {
            counters.dropped.fetch_add(spans, Ordering::Relaxed);
            if let Some(left_out) = EXPORT_FAILED.admit() {
                tracing::warn!(
                    "trace export took over {timeout:?}, {spans} span(s) dropped{}",
                    and_more(left_out)
                );
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::SystemTime;

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    /// A collector that refuses every export, counting the attempts.
    #[derive(Debug, Default)]
    struct Refusing {
        attempts: Arc<AtomicUsize>,
    }

    impl SpanExporter for Refusing {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            Err(OTelSdkError::InternalFailure("connection refused".into()))
        }
    }

    fn finished_span() -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "handler".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::default(),
        }
    }

    /// Lets the export task run until it waits on time again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_export_pauses_the_queue_then_longer_and_counts_what_is_lost() {
        let exporter = Refusing::default();
        let attempts = exporter.attempts.clone();
        let limits = QueueLimits {
            max_queue_size: 2,
            max_export_batch_size: 1,
            schedule_delay: Duration::from_millis(10),
            export_timeout: Duration::from_secs(1),
        };
        let counters = Arc::new(SpanCounters::default());
        let (queue, task) = ExportQueue::start(exporter, limits, counters.clone());
        let dropped = || counters.dropped.load(Ordering::SeqCst);

        queue.on_end(finished_span());
        settle().await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(dropped(), 1, "the refused batch is lost");
        // Paused for 1 s: spans wait in the queue, the third does not fit.
        for _ in 0..3 {
            queue.on_end(finished_span());
        }
        assert_eq!(dropped(), 2, "a full queue drops at once");
        tokio::time::sleep(Duration::from_millis(990)).await;
        settle().await;
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "no export during the pause"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        settle().await;
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        // The next pause is 2 s.
        tokio::time::sleep(Duration::from_millis(1_980)).await;
        settle().await;
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "the pause doubles");
        tokio::time::sleep(Duration::from_millis(40)).await;
        settle().await;
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(dropped(), 4);
        assert_eq!(counters.exported.load(Ordering::SeqCst), 0);
        task.finish(Duration::from_secs(1)).await;
    }
}
