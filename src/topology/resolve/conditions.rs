//! Network conditions: the file's `presets`, and each `conditions` and
//! `ingress` resolved to a [`ConditionSet`] with its units checked.

use indexmap::IndexMap;

use super::Ctx;
use crate::conditions::{ConditionSet, presets, units};
use crate::diagnostics::Diagnostic;
use crate::topology::raw::{RawConditionSet, RawConditions, RawValue};
use crate::topology::schema::suggest;
use crate::topology::spans::pointer;

/// The file's presets, resolved; a preset with a problem is reported once
/// and is absent here, so that its users are not reported again.
pub(super) struct Presets {
    resolved: IndexMap<String, ConditionSet>,
    /// Every name the file declares, valid or not.
    declared: Vec<String>,
}

impl Presets {
    /// Resolves the file's `presets`. A preset may start from a built-in
    /// one or from another of the file's (without cycles).
    pub fn resolve(raw: &IndexMap<String, RawConditionSet>, ctx: &mut Ctx<'_>) -> Presets {
        let mut presets = Presets {
            resolved: IndexMap::new(),
            declared: raw.keys().cloned().collect(),
        };
        for name in raw.keys() {
            if presets::built_in(name).is_some() {
                ctx.at_key(
                    &pointer(&["presets", name]),
                    Diagnostic::new(
                        "benchscale::conditions::preset_shadows_built_in",
                        format!("preset `{name}` has the name of a built-in preset"),
                    )
                    .with_help(format!(
                        "rename it (such as `my-{name}`), or use the built-in `{name}` and override its keys: `{{ preset: {name}, delay: 80ms }}`"
                    )),
                    "a built-in preset's name",
                );
            }
        }
        for name in raw.keys() {
            let mut chain = Vec::new();
            presets.resolve_one(name, raw, &mut chain, ctx);
        }
        presets
    }

    fn resolve_one(
        &mut self,
        name: &str,
        raw: &IndexMap<String, RawConditionSet>,
        chain: &mut Vec<String>,
        ctx: &mut Ctx<'_>,
    ) -> Option<ConditionSet> {
        if presets::built_in(name).is_some() && chain.is_empty() {
            return None;
        }
        if let Some(set) = self.resolved.get(name) {
            return Some(*set);
        }
        let set = raw.get(name)?;
        let at = pointer(&["presets", name]);
        if chain.iter().any(|n| n == name) {
            chain.push(name.to_string());
            ctx.at_key(
                &at,
                Diagnostic::new(
                    "benchscale::conditions::preset_cycle",
                    format!(
                        "presets start from each other in a cycle: {}",
                        chain.join(" -> ")
                    ),
                )
                .with_help("let one of them give its values instead of `preset`"),
                "part of the cycle",
            );
            return None;
        }
        chain.push(name.to_string());
        let base = match &set.preset {
            None => Some(ConditionSet::default()),
            Some(base) if raw.contains_key(base) && presets::built_in(base).is_none() => {
                self.resolve_one(base, raw, chain, ctx)
            }
            Some(base) => self.lookup(base, &format!("{at}/preset"), ctx),
        };
        chain.pop();
        let resolved = values(set, &at, ctx)
            .zip(base)
            .map(|(v, b)| b.overridden_by(&v));
        let resolved = resolved.and_then(|s| check(s, set, &at, ctx));
        if let Some(s) = resolved {
            self.resolved.insert(name.to_string(), s);
        }
        resolved
    }

    /// A preset by name: the file's, then the built-in ones. An unknown
    /// name is reported at `at` with the closest known one.
    fn lookup(&self, name: &str, at: &str, ctx: &mut Ctx<'_>) -> Option<ConditionSet> {
        if let Some(set) = presets::built_in(name) {
            return Some(set);
        }
        if let Some(set) = self.resolved.get(name) {
            return Some(*set);
        }
        if self.declared.iter().any(|d| d == name) {
            // Declared but invalid: reported where it is declared.
            return None;
        }
        let mut known: Vec<String> = presets::BUILT_IN
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        known.extend(self.declared.iter().cloned());
        let help = match suggest(name, &known) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!(
                "use a built-in preset ({}) or declare `{name}` under `presets:`",
                presets::BUILT_IN
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        ctx.at_value(
            at,
            Diagnostic::new(
                "benchscale::conditions::unknown_preset",
                format!("`{name}` is not a preset"),
            )
            .with_help(help),
            "unknown preset",
        );
        None
    }

    /// Resolves `conditions` or `ingress` at `at`; `None` after reporting
    /// a problem.
    pub fn conditions(
        &self,
        raw: &RawConditions,
        at: &str,
        ctx: &mut Ctx<'_>,
    ) -> Option<ConditionSet> {
        match raw {
            RawConditions::Preset(name) => self.lookup(name, at, ctx),
            RawConditions::Set(set) => {
                let base = match &set.preset {
                    None => Some(ConditionSet::default()),
                    Some(name) => self.lookup(name, &format!("{at}/preset"), ctx),
                };
                let own = values(set, at, ctx);
                let merged = base.zip(own).map(|(b, v)| b.overridden_by(&v));
                merged.and_then(|s| check(s, set, at, ctx))
            }
        }
    }
}

/// The values a set gives itself, each with its unit checked; `None` after
/// reporting every problem.
fn values(set: &RawConditionSet, at: &str, ctx: &mut Ctx<'_>) -> Option<ConditionSet> {
    let mut ok = true;
    let texts = [
        ("delay", &set.delay),
        ("jitter", &set.jitter),
        ("loss", &set.loss),
        ("rate", &set.rate),
        ("corrupt", &set.corrupt),
        ("duplicate", &set.duplicate),
        ("reorder", &set.reorder),
    ];
    let mut out = ConditionSet::default();
    for (key, text) in texts {
        let Some(text) = text.as_ref().map(RawValue::text) else {
            continue;
        };
        let parsed = match key {
            "delay" => units::parse_duration(key, &text).map(|v| out.delay = Some(v)),
            "jitter" => units::parse_duration(key, &text).map(|v| out.jitter = Some(v)),
            "rate" => units::parse_rate(key, &text).map(|v| out.rate = Some(v)),
            "loss" => units::parse_percent(key, &text).map(|v| out.loss = Some(v)),
            "corrupt" => units::parse_percent(key, &text).map(|v| out.corrupt = Some(v)),
            "duplicate" => units::parse_percent(key, &text).map(|v| out.duplicate = Some(v)),
            _ => units::parse_percent(key, &text).map(|v| out.reorder = Some(v)),
        };
        if let Err(e) = parsed {
            ok = false;
            ctx.at_value(
                &format!("{at}/{key}"),
                Diagnostic::new("benchscale::conditions::invalid_value", e.message)
                    .with_help(e.help),
                "invalid value",
            );
        }
    }
    ok.then_some(out)
}

/// Checks what only the merged set can tell: `jitter` and `reorder` need a
/// delay (as netem's do), whether from the set itself or from its preset.
fn check(
    merged: ConditionSet,
    raw: &RawConditionSet,
    at: &str,
    ctx: &mut Ctx<'_>,
) -> Option<ConditionSet> {
    let mut ok = true;
    let has_delay = merged.normalized().delay.is_some();
    for (key, given, set) in [
        (
            "jitter",
            raw.jitter.is_some(),
            merged.normalized().jitter.is_some(),
        ),
        (
            "reorder",
            raw.reorder.is_some(),
            merged.normalized().reorder.is_some(),
        ),
    ] {
        if set && !has_delay {
            ok = false;
            let at = if given {
                format!("{at}/{key}")
            } else {
                at.to_string()
            };
            ctx.at_value(
                &at,
                Diagnostic::new(
                    "benchscale::conditions::needs_delay",
                    format!("`{key}` needs a `delay` to vary"),
                )
                .with_help(format!(
                    "add a delay such as `delay: 40ms`, or leave `{key}` out"
                )),
                "without delay",
            );
        }
    }
    ok.then_some(merged)
}

/// Resolves each network's `conditions`.
pub(super) fn networks(
    raw: &IndexMap<String, crate::topology::raw::RawNetwork>,
    presets: &Presets,
    networks: &mut IndexMap<String, crate::topology::model::Network>,
    ctx: &mut Ctx<'_>,
) {
    for (name, net) in raw {
        let Some(conditions) = &net.conditions else {
            continue;
        };
        let at = pointer(&["networks", name, "conditions"]);
        if let Some(set) = presets.conditions(conditions, &at, ctx)
            && let Some(network) = networks.get_mut(name)
        {
            network.conditions = set.normalized();
        }
    }
}

/// Gives each attachment its sets: its own `conditions` or else its
/// network's, and its `ingress`.
pub(super) fn attachments(
    raw: &crate::topology::raw::RawTopology,
    presets: &Presets,
    networks: &IndexMap<String, crate::topology::model::Network>,
    nodes: &mut IndexMap<String, crate::topology::model::Node>,
    ctx: &mut Ctx<'_>,
) {
    use crate::topology::raw::RawAttachments;
    for (name, node) in nodes.iter_mut() {
        let raw_map = match raw.nodes.get(name).and_then(|n| n.networks.as_ref()) {
            Some(RawAttachments::Map(map)) => Some(map),
            _ => None,
        };
        for a in &mut node.networks {
            let own = raw_map
                .and_then(|m| m.get(&a.network))
                .and_then(Option::as_ref);
            let at = pointer(&["nodes", name, "networks", &a.network]);
            a.conditions = match own.and_then(|o| o.conditions.as_ref()) {
                Some(c) => presets
                    .conditions(c, &format!("{at}/conditions"), ctx)
                    .unwrap_or_default(),
                None => networks
                    .get(&a.network)
                    .map(|n| n.conditions)
                    .unwrap_or_default(),
            }
            .normalized();
            a.ingress = own
                .and_then(|o| o.ingress.as_ref())
                .and_then(|c| presets.conditions(c, &format!("{at}/ingress"), ctx))
                .unwrap_or_default()
                .normalized();
        }
    }
}
