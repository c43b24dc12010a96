//! The lab's first stage: pull the images the plan names, all at once and
//! each once, before anything is removed or created, so that a pull that
//! fails leaves the lab as it was.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Event, EventSink};
use crate::backend::{Backend, BackendError, PullProgress};
use crate::plan::Pull;

/// The least time between two progress events of one image, unless a
/// layer finished: enough for a display to move, few enough for the
/// `-o json` timeline.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What the pulls brought: each pulled image's id.
pub type Pulled = BTreeMap<String, String>;

/// Pulls every image of `pulls` at once. `before` is what the engine had
/// of each (its id, or `None`), to tell an updated image in the events.
/// Pulls are not bounded by the apply's parallelism: a lab names few
/// images, and the engine bounds the downloads of each pull itself.
///
/// # Errors
///
/// Every pull that failed, after all of them ended: the caller stops
/// before it changes anything.
///
/// # Cancellation
///
/// When `cancel` fires the pulls are abandoned (the engine may finish
/// them) and what ended by then is returned; the executor then starts
/// nothing new.
pub async fn pull<B: Backend>(
    backend: &Arc<B>,
    pulls: &[Pull],
    before: &BTreeMap<String, Option<String>>,
    cancel: &CancellationToken,
    events: &EventSink,
) -> Result<Pulled, Vec<BackendError>> {
    let mut tasks = JoinSet::new();
    for p in pulls {
        let (backend, events) = (backend.clone(), events.clone());
        let image = p.image.clone();
        let old = before.get(&image).cloned().flatten();
        events.send(Event::PullStarted {
            image: image.clone(),
            reason: p.reason.as_str().to_owned(),
        });
        tasks.spawn(async move {
            let started = Instant::now();
            let throttle = Throttle::new(image.clone(), events.clone());
            let result = backend.pull(&image, &|p| throttle.offer(p)).await;
            match &result {
                Ok(id) => events.send(Event::PullFinished {
                    image: image.clone(),
                    id: id.clone(),
                    updated: old.as_deref() != Some(id.as_str()),
                    elapsed: started.elapsed(),
                    layers: throttle.last().layers,
                    bytes: throttle.last().bytes_total,
                }),
                Err(e) => events.send(Event::PullFailed {
                    image: image.clone(),
                    error: e.to_string(),
                }),
            }
            (image, result)
        });
    }
    let mut pulled = Pulled::new();
    let mut failed = Vec::new();
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            () = cancel.cancelled() => return Ok(pulled),
        };
        match joined {
            None => break,
            Some(Ok((image, Ok(id)))) => {
                pulled.insert(image, id);
            }
            Some(Ok((_, Err(e)))) => failed.push(e),
            Some(Err(e)) => failed.push(BackendError::refused(
                crate::backend::Daemon::Docker,
                "pull images",
                format!("the pull task failed: {e}"),
            )),
        }
    }
    if failed.is_empty() {
        Ok(pulled)
    } else {
        Err(failed)
    }
}

/// Passes a pull's progress on as events, at most every
/// [`PROGRESS_EVERY`] unless a layer finished.
struct Throttle {
    image: String,
    events: EventSink,
    state: Mutex<(Option<Instant>, PullProgress)>,
}

impl Throttle {
    fn new(image: String, events: EventSink) -> Self {
        Self {
            image,
            events,
            state: Mutex::new((None, PullProgress::default())),
        }
    }

    fn offer(&self, progress: PullProgress) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (sent, last) = &mut *state;
        let due = sent.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY)
            || progress.layers_done != last.layers_done;
        *last = progress;
        if due {
            *sent = Some(Instant::now());
            self.events.send(Event::PullProgress {
                image: self.image.clone(),
                layers: progress.layers,
                layers_done: progress.layers_done,
                bytes_done: progress.bytes_done,
                bytes_total: progress.bytes_total,
            });
        }
    }

    /// The latest progress offered.
    fn last(&self) -> PullProgress {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}
