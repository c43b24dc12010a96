//! Event sinks: one stream of executor events, fanned out to every
//! consumer (the CLI's progress display, the timeline in `-o json`, and
//! next the JUnit report), as nextest's reporters consume one event stream.
//!
//! A sink only consumes; it never changes what the executor does. Sinks
//! that print live in `cli`: the library only records.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::exec::Event;

/// A consumer of events.
pub trait Sink: Send {
    /// One event, `at` after the stream began.
    fn event(&mut self, at: Duration, event: &Event);
    /// The stream ended (the apply or destroy is over).
    fn finish(&mut self) {}
}

/// Hands every event of `events` to each sink in turn, until the sender is
/// dropped; then finishes the sinks and gives them back.
pub async fn fan_out(
    mut events: UnboundedReceiver<Event>,
    mut sinks: Vec<Box<dyn Sink>>,
) -> Vec<Box<dyn Sink>> {
    let began = Instant::now();
    while let Some(event) = events.recv().await {
        let at = began.elapsed();
        for sink in &mut sinks {
            sink.event(at, &event);
        }
    }
    for sink in &mut sinks {
        sink.finish();
    }
    sinks
}

/// One event with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timed {
    /// Milliseconds since the stream began.
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// Keeps every event with its time: the `events` of `-o json`.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub events: Vec<Timed>,
}

impl Sink for Timeline {
    fn event(&mut self, at: Duration, event: &Event) {
        self.events.push(Timed {
            at_ms: at.as_millis() as u64,
            event: event.clone(),
        });
    }
}

/// A sink that forwards to a shared [`Timeline`], so the caller can read
/// it after [`fan_out`] consumed the boxes.
impl Sink for std::sync::Arc<std::sync::Mutex<Timeline>> {
    fn event(&mut self, at: Duration, event: &Event) {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .event(at, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts events, to see that every sink gets each one.
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>, bool);

    impl Sink for Count {
        fn event(&mut self, _: Duration, _: &Event) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        fn finish(&mut self) {
            self.1 = true;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_sink_sees_every_event_in_order_with_its_time() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let timeline = std::sync::Arc::new(std::sync::Mutex::new(Timeline::default()));
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(fan_out(
            rx,
            vec![
                Box::new(timeline.clone()),
                Box::new(Count(count.clone(), false)),
            ],
        ));
        tx.send(Event::NodeCreated { name: "a".into() }).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tx.send(Event::NodeReady { name: "a".into() }).unwrap();
        drop(tx);
        let sinks = task.await.unwrap();
        assert_eq!(sinks.len(), 2);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        let events = timeline.lock().unwrap().events.clone();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, Event::NodeCreated { name: "a".into() });
        assert!(events[1].at_ms >= 1500, "{events:?}");
        let json = serde_json::to_value(&events[1]).unwrap();
        assert_eq!(json["event"], "node_ready");
        assert_eq!(json["name"], "a");
    }
}
