//! The resolved `tests` section: what `benchscale test` runs.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use super::model::Command;
use crate::conditions::ConditionSet;

/// One test of the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabTest {
    pub name: String,
    #[serde(with = "super::model::duration_text")]
    pub timeout: Duration,
    pub steps: Vec<TestStep>,
}

/// One step: an action, what passing means, and how long to retry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestStep {
    /// As written, or made from the action (`exec on web`).
    pub name: String,
    pub action: TestAction,
    pub expect: Expect,
    /// Retry until the step passes or this long has passed; `None`: once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within: Option<Duration>,
    /// `exec`: the output name its trimmed stdout is stored as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
}

/// Where a `reach` step connects to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReachTarget {
    /// A node's address on `network`.
    Node {
        node: String,
        network: String,
    },
    Address(Ipv4Addr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// Chaos on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Chaos {
    Kill,
    Stop,
    Start,
    Restart,
    Pause,
    Resume,
}

impl Chaos {
    pub fn as_str(self) -> &'static str {
        match self {
            Chaos::Kill => "kill",
            Chaos::Stop => "stop",
            Chaos::Start => "start",
            Chaos::Restart => "restart",
            Chaos::Pause => "pause",
            Chaos::Resume => "resume",
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestAction {
    Exec {
        node: String,
        run: Command,
        user: Option<String>,
        detach: bool,
    },
    Reach {
        from: String,
        to: ReachTarget,
        port: Option<u16>,
        protocol: Protocol,
    },
    Http {
        from: String,
        url: String,
    },
    Chaos {
        node: String,
        chaos: Chaos,
    },
    Disconnect {
        node: String,
        network: String,
    },
    Connect {
        node: String,
        network: String,
    },
    Impair {
        node: String,
        network: String,
        egress: Option<ConditionSet>,
        ingress: Option<ConditionSet>,
    },
    Wait {
        node: String,
        healthy: bool,
    },
    /// Save a VM's screen (PNG, in the test's artifacts), and read its
    /// text when `expect` has a `text`.
    Screenshot {
        node: String,
    },
    Sleep(#[serde(with = "super::model::duration_text")] Duration),
}

/// What passing means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// `exec`: the exit code and regexes of the output.
    Exit {
        code: i64,
        stdout: Option<String>,
        stderr: Option<String>,
    },
    /// `reach`: whether the connection (or reply) must come.
    Reachable(bool),
    /// `http`: the status and a regex of the body.
    Http { status: u16, body: Option<String> },
    /// `screenshot`: a regex the text read on the screen (OCR) must match.
    Text(String),
    /// The action succeeding is passing.
    Done,
}
