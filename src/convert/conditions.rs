//! v1 network conditions (`latency_ms`, `jitter_ms`, `packet_loss_percent`,
//! `bandwidth_kbps`, `preset`) to a condition set of this format, with its
//! units (`0.5ms`, `0.5%`, `10mbit`).

use serde_json::Value;

use super::Source;
use crate::conditions::{ConditionSet, Percent, Rate, presets, units};

/// Conditions as they are written in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditions {
    /// A built-in preset's name.
    Preset(String),
    /// `preset` (a base) and values in this format's units, in key order.
    Set {
        preset: Option<String>,
        values: Vec<(&'static str, String)>,
    },
}

/// The longest delay or jitter this format takes.
const MAX_MS: f64 = 60_000.0;

/// Milliseconds (fractions allowed) to microseconds.
pub fn ms_to_micros(ms: f64) -> Result<u64, String> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("{ms} is not a number of milliseconds"));
    }
    if ms > MAX_MS {
        return Err(format!(
            "{ms} ms is longer than a minute, the most this format adds"
        ));
    }
    Ok((ms * 1000.0).round() as u64)
}

/// A percentage from 0 to 100, kept to six decimals as this format does.
pub fn percent(value: f64) -> Result<Percent, String> {
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        return Err(format!("{value} is not a percentage from 0 to 100"));
    }
    Ok(Percent::from_millionths(
        (value * 1_000_000.0).round() as u32
    ))
}

/// Kilobits per second to a rate; 0 means no limit in v1.
pub fn kbps_to_rate(kbps: f64) -> Result<Option<Rate>, String> {
    if !kbps.is_finite() || kbps < 0.0 {
        return Err(format!("{kbps} is not a rate in kbit/s"));
    }
    if kbps == 0.0 {
        return Ok(None);
    }
    let bits = (kbps * 1000.0).round();
    if !(8.0..=100_000_000_000.0).contains(&bits) {
        return Err(format!(
            "{kbps} kbit/s is outside the rates this format takes (8bit to 100gbit)"
        ));
    }
    Ok(Some(Rate(bits as u64)))
}

/// A v1 conditions value at `ptr` (a map, or a preset name) to this
/// format. Whatever cannot be carried over is reported and becomes a
/// comment in `comments`. `None` when nothing is left (no values, or all
/// of them zero: the same as no conditions).
pub fn convert(
    src: &mut Source<'_>,
    ptr: &str,
    value: &Value,
    comments: &mut Vec<String>,
) -> Option<Conditions> {
    let map = match value {
        Value::String(name) => {
            return preset_name(src, ptr, name, comments).map(Conditions::Preset);
        }
        Value::Object(map) => map,
        Value::Null => return None,
        other => {
            comments.push(src.left_out(
                ptr,
                other,
                "network conditions are a map of latency_ms, jitter_ms, packet_loss_percent and bandwidth_kbps",
            ));
            return None;
        }
    };
    let mut base: Option<String> = None;
    let mut set = ConditionSet::default();
    // v1's `bandwidth_kbps: 0` means "no limit", which a rate cannot say.
    let mut no_rate = false;
    let mut recognised = false;
    for (key, v) in map {
        let at = format!("{ptr}/{}", crate::topology::spans::escape_segment(key));
        let number = || -> Result<f64, String> {
            match v {
                Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".to_string()),
                Value::String(s) if super::templated(s) => {
                    Err("it is a template another tool was to fill in".to_string())
                }
                Value::String(s) if s.trim().parse::<f64>().is_ok() => {
                    s.trim().parse().map_err(|_| "not a number".to_string())
                }
                _ => Err(format!("`{key}` is a number, and this is {}", kind(v))),
            }
        };
        let result = match key.as_str() {
            "preset" => {
                match v {
                    Value::String(name) => base = preset_name(src, &at, name, comments),
                    other => comments.push(src.left_out(&at, other, "a preset is a name")),
                }
                continue;
            }
            "latency_ms" => number().and_then(ms_to_micros).map(|d| set.delay = Some(d)),
            "jitter_ms" => number()
                .and_then(ms_to_micros)
                .map(|j| set.jitter = Some(j)),
            "packet_loss_percent" => number().and_then(percent).map(|l| set.loss = Some(l)),
            "bandwidth_kbps" => number().and_then(kbps_to_rate).map(|r| {
                no_rate = r.is_none();
                set.rate = r;
            }),
            _ => Err(format!(
                "`{key}` is not a v1 condition this format has a key for"
            )),
        };
        match result {
            Ok(()) => recognised = true,
            Err(why) => comments.push(src.left_out_entry(&at, key, v, &why)),
        }
    }
    let base_set = base.as_deref().and_then(presets::built_in);
    let resolve = |set: &ConditionSet| {
        let mut merged = base_set.unwrap_or_default().overridden_by(set);
        if no_rate {
            merged.rate = None;
        }
        merged.normalized()
    };
    // Jitter needs a delay to vary around; this format refuses it alone.
    if resolve(&set).jitter.is_some() && resolve(&set).delay.is_none() {
        let at = format!("{ptr}/jitter_ms");
        comments.push(src.left_out_entry(
            &at,
            "jitter_ms",
            map.get("jitter_ms").unwrap_or(&Value::Null),
            "jitter without latency has nothing to vary around",
        ));
        set.jitter = None;
    }
    let merged = resolve(&set);
    if let Some(name) = presets::matching(&merged) {
        return Some(Conditions::Preset(name.to_string()));
    }
    if merged.is_empty() {
        // Values that add nothing still replace the network's set for a
        // node; `localhost` is the preset that says so.
        return (recognised || base.is_some()).then(|| Conditions::Preset("localhost".into()));
    }
    // A zero that overrides a preset's value (no rate, no loss) cannot be
    // written as an override: write the whole set instead.
    let zeroes = set.delay == Some(0) || set.loss.is_some_and(|l| l.millionths() == 0) || no_rate;
    let (preset, own) = if base.is_some() && !zeroes {
        (base, set)
    } else {
        (None, merged)
    };
    let mut values = Vec::new();
    if let Some(d) = own.delay {
        values.push(("delay", units::format_micros(d)));
    }
    if let Some(j) = own.jitter {
        values.push(("jitter", units::format_micros(j)));
    }
    if let Some(l) = own.loss {
        values.push(("loss", l.to_string()));
    }
    if let Some(r) = own.rate {
        values.push(("rate", r.to_string()));
    }
    if values.is_empty() {
        return preset.map(Conditions::Preset);
    }
    Some(Conditions::Set { preset, values })
}

/// A preset name that is built in stays; another is reported.
fn preset_name(
    src: &mut Source<'_>,
    ptr: &str,
    name: &str,
    comments: &mut Vec<String>,
) -> Option<String> {
    if presets::built_in(name).is_some() {
        return Some(name.to_string());
    }
    let known: Vec<&str> = presets::BUILT_IN.iter().map(|p| p.name).collect();
    comments.push(src.left_out_entry(
        ptr,
        "preset",
        &Value::String(name.to_string()),
        &format!("`{name}` is not a built-in preset ({})", known.join(", ")),
    ));
    None
}

/// A value's type in words, for reasons.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_their_fractions() {
        assert_eq!(ms_to_micros(0.5), Ok(500));
        assert_eq!(ms_to_micros(50.0), Ok(50_000));
        assert_eq!(units::format_micros(ms_to_micros(0.5).unwrap()), "0.5ms");
        assert_eq!(units::format_micros(ms_to_micros(5.0).unwrap()), "5ms");
        assert!(ms_to_micros(-1.0).is_err());
        assert!(ms_to_micros(61_000.0).is_err());
        assert!(ms_to_micros(f64::NAN).is_err());
    }

    #[test]
    fn percentages_and_rates_get_their_units() {
        assert_eq!(percent(0.5).unwrap().to_string(), "0.5%");
        assert_eq!(percent(15.0).unwrap().to_string(), "15%");
        assert!(percent(150.0).is_err());
        assert_eq!(
            kbps_to_rate(10_000.0).unwrap().unwrap().to_string(),
            "10mbit"
        );
        assert_eq!(kbps_to_rate(500.0).unwrap().unwrap().to_string(), "500kbit");
        assert_eq!(
            kbps_to_rate(1_500.0).unwrap().unwrap().to_string(),
            "1.5mbit"
        );
        assert_eq!(kbps_to_rate(0.0), Ok(None));
        assert!(kbps_to_rate(-5.0).is_err());
    }
}
