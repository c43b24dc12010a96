//! What the executor reports as it works. The CLI renders these; the
//! executor itself never prints.

use std::time::Duration;

use serde::Serialize;

/// One thing that happened during an apply or destroy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A pull of a container image began; `reason` is `missing` or
    /// `always`, as the plan says.
    PullStarted {
        image: String,
        reason: String,
    },
    /// How far a pull got: its layers and their bytes summed. A few a
    /// second at most per image, and one whenever a layer is done.
    PullProgress {
        image: String,
        layers: usize,
        layers_done: usize,
        bytes_done: u64,
        bytes_total: u64,
    },
    /// A pull ended well: the image's id, whether it differs from what
    /// the engine had before, and the pull's size.
    PullFinished {
        image: String,
        id: String,
        updated: bool,
        elapsed: Duration,
        layers: usize,
        bytes: u64,
    },
    /// A pull failed; the apply stops before it changes anything.
    PullFailed {
        image: String,
        error: String,
    },
    NetworkCreated {
        name: String,
    },
    NetworkRemoved {
        name: String,
    },
    NodeDeleted {
        name: String,
        reason: String,
    },
    NodeCreated {
        name: String,
    },
    NodeStarted {
        name: String,
    },
    /// Network conditions set on one of the node's links, as the file
    /// gives them (`none` for a direction without).
    ConditionsSet {
        name: String,
        network: String,
        egress: String,
        ingress: String,
    },
    /// Forwarding, default route and NAT set in the node's namespace.
    RoutesSet {
        name: String,
        forward: bool,
        gateway: Option<std::net::Ipv4Addr>,
        /// The NAT's label (`symmetric out=10.220.0.2`), if any.
        nat: Option<String>,
    },
    /// Waiting for a health condition (`tcp :8080`, `console /login:/`).
    HealthWaiting {
        name: String,
        condition: String,
    },
    NodeHealthy {
        name: String,
        elapsed: Duration,
    },
    StepStarted {
        node: String,
        step: String,
        index: usize,
        total: usize,
    },
    StepFinished {
        node: String,
        step: String,
        elapsed: Duration,
    },
    /// Everything of the node is done (created, healthy, provisioned).
    NodeReady {
        name: String,
    },
    /// The node failed; `error` is the root cause, shown once.
    NodeFailed {
        name: String,
        error: String,
    },
    /// Not done because something it waits for failed, or an interrupt.
    NodeSkipped {
        name: String,
        reason: String,
    },
}

/// Where events go. A closed receiver is not an error: events are advice.
#[derive(Debug, Clone)]
pub struct EventSink(Option<tokio::sync::mpsc::UnboundedSender<Event>>);

impl EventSink {
    pub fn new(sender: tokio::sync::mpsc::UnboundedSender<Event>) -> Self {
        Self(Some(sender))
    }

    /// A sink that drops everything.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn send(&self, event: Event) {
        if let Some(s) = &self.0 {
            let _ = s.send(event);
        }
    }
}
