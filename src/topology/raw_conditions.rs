//! The raw shape of network conditions: `presets`, and the `conditions` and
//! `ingress` of networks and attachments.

use schemars::JsonSchema;
use serde::Deserialize;

/// Network conditions: a preset name, or a set of values.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawConditions {
    /// A preset: built in (`friend_wan`, `mobile_cell`, `satellite`...) or
    /// one of the file's `presets`.
    Preset(String),
    Set(RawConditionSet),
}

/// Condition values; `preset` is a base the other keys override.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConditionSet {
    /// Start from this preset; the other keys override it.
    pub preset: Option<String>,
    /// Added latency, such as `0.5ms`, `50ms` or `1s`.
    pub delay: Option<RawValue>,
    /// Delay variation, such as `5ms`; needs `delay`.
    pub jitter: Option<RawValue>,
    /// Random loss, such as `0.5%`.
    pub loss: Option<RawValue>,
    /// Bandwidth: `bit`, `kbit`, `mbit`, `gbit` (or `kbps`, `mbps`, `gbps`,
    /// bits too), such as `10mbit`.
    pub rate: Option<RawValue>,
    /// Share of packets with a flipped bit, such as `0.1%`.
    pub corrupt: Option<RawValue>,
    /// Share of packets sent twice, such as `1%`.
    pub duplicate: Option<RawValue>,
    /// Share of packets sent at once, ahead of delayed ones (needs `delay`).
    pub reorder: Option<RawValue>,
}

/// A value with its unit, such as `40ms`, `0.5%` or `10mbit`. A bare number
/// is accepted by the schema so that resolution can say which unit to add.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawValue {
    Text(String),
    Number(serde_json::Number),
}

impl RawValue {
    pub fn text(&self) -> String {
        match self {
            RawValue::Text(t) => t.clone(),
            RawValue::Number(n) => n.to_string(),
        }
    }
}
