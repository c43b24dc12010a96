//! The raw shape of the `tests` section: checks and chaos declared next to
//! the lab, run by `benchscale test`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::raw::{RawConditions, RawDuration, RawRun};

/// One test: steps run in order against the running lab.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    /// Unique in the file; `benchscale test FILE NAME` runs it alone.
    pub name: String,
    /// The whole test's limit (default `5m`).
    pub timeout: Option<RawDuration>,
    /// The steps, in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<RawTestStep>,
}

/// A step: exactly one action key, plus `expect`, `within`, `capture` and
/// `name`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTestStep {
    /// Shown in progress and reports; default: the action and its node.
    pub name: Option<String>,
    /// Run a command in a node.
    pub exec: Option<RawTestExec>,
    /// Connect from inside one node to another node or an address.
    pub reach: Option<RawReach>,
    /// An HTTP GET from inside a node.
    pub http: Option<RawTestHttp>,
    /// Save a VM's screen (needs `display: true`).
    pub screenshot: Option<RawNodeRef>,
    /// SIGKILL a container, power a VM off.
    pub kill: Option<String>,
    /// Stop a node.
    pub stop: Option<String>,
    /// Start a stopped node.
    pub start: Option<String>,
    /// Restart a node.
    pub restart: Option<String>,
    /// Pause (freeze) a node.
    pub pause: Option<String>,
    /// Resume a paused node.
    pub resume: Option<String>,
    /// Take a node off a network.
    pub disconnect: Option<RawNodeNetwork>,
    /// Put a node back on a network.
    pub connect: Option<RawNodeNetwork>,
    /// Change a link's conditions for the rest of the test.
    pub impair: Option<RawTestImpair>,
    /// Wait for a node's health.
    pub wait: Option<RawWait>,
    /// Pause the test, such as `2s`.
    pub sleep: Option<RawDuration>,
    /// What passing means; see each action.
    pub expect: Option<RawExpect>,
    /// Retry the step until it passes or this long has passed.
    pub within: Option<RawDuration>,
    /// `exec` only: the trimmed stdout becomes `${{ tests.outputs.NAME }}`.
    pub capture: Option<String>,
}

/// `exec` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTestExec {
    pub node: String,
    pub run: RawRun,
    /// VMs: the user the command runs as.
    pub user: Option<String>,
    /// Start it and go on; it runs until the test ends.
    pub detach: Option<bool>,
}

/// `reach` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReach {
    pub from: String,
    /// A node of the lab, or an IPv4 address.
    pub to: String,
    /// Needed for tcp and udp.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// `tcp` (default), `udp` (a reply is needed) or `icmp`.
    pub protocol: Option<RawProtocol>,
    /// Which of `to`'s networks to use (default: one `from` shares).
    pub network: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawProtocol {
    Tcp,
    Udp,
    Icmp,
}

/// `http` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTestHttp {
    pub from: String,
    pub url: String,
}

/// A node, as `{ node: NAME }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNodeRef {
    pub node: String,
}

/// `disconnect` and `connect` steps.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNodeNetwork {
    pub node: String,
    pub network: String,
}

/// `impair` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTestImpair {
    pub node: String,
    pub network: String,
    /// What the node sends from now on (a preset or a set).
    pub conditions: Option<RawConditions>,
    /// What it receives from now on.
    pub ingress: Option<RawConditions>,
}

/// `wait` step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    pub node: String,
    /// `healthy` (default) or `unhealthy`.
    pub health: Option<RawWaitFor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawWaitFor {
    Healthy,
    Unhealthy,
}

/// `expect`: `reachable` / `unreachable` for `reach`, a map for the rest.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawExpect {
    Word(RawReachable),
    Map(RawExpectMap),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawReachable {
    Reachable,
    Unreachable,
}

/// The keys of `expect`; which ones fit depends on the action.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpectMap {
    /// `exec`: the exit code (default 0).
    pub exit: Option<i64>,
    /// `exec`: a regex the stdout must match.
    pub stdout: Option<String>,
    /// `exec`: a regex the stderr must match.
    pub stderr: Option<String>,
    /// `http`: the status (default 200).
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// `http`: a regex the body must match.
    pub body: Option<String>,
    /// `screenshot`: a regex the text read on the screen must match.
    pub text: Option<String>,
}
