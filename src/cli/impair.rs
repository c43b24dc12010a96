//! `benchscale impair`: conditions changed by hand on a running lab.

use super::args::{ImpairArgs, OutputFormat};
use super::{EXIT_ERROR, EXIT_OK};
use crate::conditions::{ConditionSet, Direction, presets, units};
use crate::config::Config;
use crate::engine::Impairment;

/// The set the options give: a preset overridden by the values, checked
/// as the file's are. The error says which option is wrong and how to fix it.
fn set_of(o: &ImpairArgs) -> Result<ConditionSet, String> {
    if o.clear {
        return Ok(ConditionSet::default());
    }
    let given = [&o.preset, &o.delay, &o.jitter, &o.loss, &o.rate];
    if given.iter().all(|v| v.is_none()) {
        return Err(
            "nothing to change: give --preset, --delay, --jitter, --loss or --rate, or --clear"
                .into(),
        );
    }
    let mut set = match &o.preset {
        None => ConditionSet::default(),
        Some(name) => presets::built_in(name).ok_or_else(|| {
            let names: Vec<String> = presets::BUILT_IN
                .iter()
                .map(|p| p.name.to_string())
                .collect();
            match crate::topology::schema::suggest(name, &names) {
                Some(best) => {
                    format!("--preset {name}: not a built-in preset; did you mean `{best}`?")
                }
                None => format!(
                    "--preset {name}: not a built-in preset; use one of {}",
                    names.join(", ")
                ),
            }
        })?,
    };
    let flag = |e: units::UnitError| format!("{}; {}", e.message, e.help);
    if let Some(d) = &o.delay {
        set.delay = Some(units::parse_duration("delay", d).map_err(flag)?);
    }
    if let Some(j) = &o.jitter {
        set.jitter = Some(units::parse_duration("jitter", j).map_err(flag)?);
    }
    if let Some(l) = &o.loss {
        set.loss = Some(units::parse_percent("loss", l).map_err(flag)?);
    }
    if let Some(r) = &o.rate {
        set.rate = Some(units::parse_rate("rate", r).map_err(flag)?);
    }
    let set = set.normalized();
    if set.jitter.is_some() && set.delay.is_none() {
        return Err("--jitter needs a delay: add --delay (or a --preset with one)".into());
    }
    Ok(set)
}

pub(super) async fn run(config: &Config, o: ImpairArgs) -> u8 {
    let set = match set_of(&o) {
        Ok(set) => set,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_ERROR;
        }
    };
    let engine = match super::lab::engine(config, &[]).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let direction = if o.ingress {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    match engine
        .impair(&o.lab, &o.node, &o.network, Impairment { direction, set })
        .await
    {
        Ok(found) => {
            match o.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&found).unwrap_or_default()
                ),
                OutputFormat::Text => {
                    println!(
                        "{} on {}: sends {}; receives {}",
                        o.node, o.network, found.egress, found.ingress
                    );
                    eprintln!(
                        "the lab now differs from its file: `benchscale plan` shows it, `benchscale apply` restores it"
                    );
                }
            }
            EXIT_OK
        }
        Err(e) => super::lab::report(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut ImpairArgs)) -> ImpairArgs {
        let mut a = ImpairArgs {
            lab: "l".into(),
            node: "n".into(),
            network: "w".into(),
            preset: None,
            delay: None,
            jitter: None,
            loss: None,
            rate: None,
            ingress: false,
            clear: false,
            output: OutputFormat::Text,
        };
        f(&mut a);
        a
    }

    #[test]
    fn a_preset_with_overrides_is_checked_as_the_file_is() {
        let set = set_of(&args(|a| {
            a.preset = Some("mobile_cell".into());
            a.loss = Some("5%".into());
        }))
        .unwrap();
        assert_eq!(
            set.to_string(),
            "delay 100ms jitter 30ms loss 5% rate 10mbit"
        );
        let bare = set_of(&args(|a| a.loss = Some("5".into()))).unwrap_err();
        assert!(bare.contains("write `loss: 5%`"), "{bare}");
        let typo = set_of(&args(|a| a.preset = Some("satelite".into()))).unwrap_err();
        assert!(typo.contains("did you mean `satellite`"), "{typo}");
        let jitter = set_of(&args(|a| a.jitter = Some("5ms".into()))).unwrap_err();
        assert!(jitter.contains("--jitter needs a delay"), "{jitter}");
    }

    #[test]
    fn nothing_given_is_an_error_and_clear_is_the_empty_set() {
        assert!(
            set_of(&args(|_| {}))
                .unwrap_err()
                .contains("nothing to change")
        );
        assert!(set_of(&args(|a| a.clear = true)).unwrap().is_empty());
    }
}
