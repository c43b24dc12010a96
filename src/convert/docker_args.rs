//! `metadata.docker_args` of a v1 node: the `docker run` flags that have a
//! key in this format (`memory_mib`, `cpus`, `read_only`, `tmpfs`,
//! `cap_add`, `privileged`). Anything else is handed back to be listed as
//! left out, since guessing at a flag's meaning would change the lab.

/// What the understood flags set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory_mib: Option<u64>,
    pub cpus: Option<f64>,
    pub read_only: Option<bool>,
    pub tmpfs: Vec<String>,
    pub cap_add: Vec<String>,
    pub privileged: Option<bool>,
}

/// One list item that was not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The index of the item in `docker_args`.
    pub index: usize,
    pub reason: String,
}

/// The smallest memory limit this format takes (its schema's minimum).
const MIN_MEMORY_MIB: u64 = 64;
/// The smallest CPU limit Docker takes.
const MIN_CPUS: f64 = 0.01;

/// Reads the flags. Each flag's value may follow `=` (`--memory=512m`), a
/// space in the same item (`--memory 512m`), or be the next item
/// (`["--memory", "512m"]`), as people write all three.
pub fn parse(args: &[String]) -> (Limits, Vec<Skipped>) {
    let mut limits = Limits::default();
    let mut skipped = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let index = i;
        let item = args[i].trim();
        i += 1;
        let (flag, inline) = split_flag(item);
        let takes_value = matches!(flag, "--memory" | "-m" | "--cpus" | "--tmpfs" | "--cap-add");
        let value = if takes_value && inline.is_none() {
            // The value is the next item, unless that is a flag itself.
            match args.get(i).map(|s| s.trim()) {
                Some(next) if !next.starts_with('-') => {
                    i += 1;
                    Some(next.to_string())
                }
                _ => None,
            }
        } else {
            inline.map(str::to_string)
        };
        if let Err(reason) = apply(flag, value.as_deref(), takes_value, &mut limits) {
            skipped.push(Skipped { index, reason });
        }
    }
    (limits, skipped)
}

/// `--memory=512m` and `--memory 512m` to the flag and its value.
fn split_flag(item: &str) -> (&str, Option<&str>) {
    if let Some((flag, value)) = item.split_once('=')
        && flag.starts_with('-')
        && !flag.contains(char::is_whitespace)
    {
        return (flag, Some(value.trim()));
    }
    match item.split_once(char::is_whitespace) {
        Some((flag, value)) => (flag, Some(value.trim())),
        None => (item, None),
    }
}

fn apply(
    flag: &str,
    value: Option<&str>,
    takes_value: bool,
    limits: &mut Limits,
) -> Result<(), String> {
    let value = match (takes_value, value) {
        (true, None) | (true, Some("")) => {
            return Err(format!("`{flag}` has no value"));
        }
        (_, v) => v,
    };
    match (flag, value) {
        ("--memory" | "-m", Some(v)) => {
            limits.memory_mib = Some(memory_mib(v)?);
        }
        ("--cpus", Some(v)) => {
            let cpus: f64 = v
                .parse()
                .map_err(|_| format!("`--cpus {v}` is not a number of CPUs"))?;
            if !(cpus.is_finite() && cpus >= MIN_CPUS) {
                return Err(format!(
                    "`--cpus {v}` is less than {MIN_CPUS}, the smallest CPU limit Docker takes"
                ));
            }
            limits.cpus = Some(cpus);
        }
        ("--tmpfs", Some(v)) => {
            let path = v.split_once(':').map_or(v, |(p, _)| p);
            if !path.starts_with('/') || path.trim_end_matches('/').is_empty() {
                return Err(format!(
                    "`--tmpfs {v}` does not mount on an absolute path below `/`"
                ));
            }
            limits.tmpfs.push(v.to_string());
        }
        ("--cap-add", Some(v)) => limits.cap_add.push(v.to_string()),
        ("--read-only", v) => limits.read_only = Some(boolean(flag, v)?),
        ("--privileged", v) => limits.privileged = Some(boolean(flag, v)?),
        _ => {
            return Err(format!(
                "`{}` is not a docker flag this format has a key for",
                match value {
                    Some(v) => format!("{flag} {v}"),
                    None => flag.to_string(),
                }
            ));
        }
    }
    Ok(())
}

/// `--read-only`, `--read-only=true`, `--read-only=false`.
fn boolean(flag: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!("`{flag}={other}` is neither true nor false")),
    }
}

/// Docker's memory sizes: a number with `b`, `k`, `m` or `g` (binary
/// multiples, as Docker reads them; `kb`, `mib` and the like too), bytes
/// without a unit. A size that is not a whole number of MiB is rounded
/// down, which Docker would have done to a page anyway.
pub fn memory_mib(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`--memory {text}` is not a size"))?;
    let scale: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{other}` in `--memory {text}` is not a unit (b, k, m or g)"
            ));
        }
    };
    let mib = (number * scale / (1024.0 * 1024.0)).floor();
    if !mib.is_finite() || mib > 1.0e12 {
        return Err(format!("`--memory {text}` is too large"));
    }
    let mib = mib as u64;
    if mib < MIN_MEMORY_MIB {
        return Err(format!(
            "`--memory {text}` is less than {MIN_MEMORY_MIB} MiB, the smallest `memory_mib` this format takes"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn memory_sizes_take_docker_units() {
        assert_eq!(memory_mib("512m"), Ok(512));
        assert_eq!(memory_mib("512M"), Ok(512));
        assert_eq!(memory_mib("1g"), Ok(1024));
        assert_eq!(memory_mib("1.5g"), Ok(1536));
        assert_eq!(memory_mib("262144k"), Ok(256));
        assert_eq!(memory_mib("536870912"), Ok(512));
        assert_eq!(memory_mib("128mb"), Ok(128));
        assert!(memory_mib("32m").is_err());
        assert!(memory_mib("lots").is_err());
        assert!(memory_mib("5q").is_err());
    }

    #[test]
    fn every_spelling_of_a_flag_and_its_value_is_read() {
        let (limits, skipped) = parse(&args(&[
            "--memory=512m",
            "--cpus 0.5",
            "--read-only",
            "--tmpfs",
            "/run",
            "--tmpfs=/tmp:size=64m",
            "--cap-add NET_ADMIN",
            "--cap-add=SYS_TIME",
            "--privileged",
        ]));
        assert_eq!(skipped, vec![]);
        assert_eq!(
            limits,
            Limits {
                memory_mib: Some(512),
                cpus: Some(0.5),
                read_only: Some(true),
                tmpfs: vec!["/run".into(), "/tmp:size=64m".into()],
                cap_add: vec!["NET_ADMIN".into(), "SYS_TIME".into()],
                privileged: Some(true),
            }
        );
        let (limits, _) = parse(&args(&["-m", "1g", "--read-only=false"]));
        assert_eq!(limits.memory_mib, Some(1024));
        assert_eq!(limits.read_only, Some(false));
    }

    #[test]
    fn flags_without_a_key_or_with_bad_values_are_handed_back() {
        let (limits, skipped) = parse(&args(&[
            "--network host",
            "--cpus=none",
            "--memory",
            "--tmpfs relative",
            "--rm",
            "--cpus=2",
        ]));
        assert_eq!(limits.cpus, Some(2.0));
        let indexes: Vec<usize> = skipped.iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![0, 1, 2, 3, 4]);
        assert!(skipped[0].reason.contains("--network host"));
        assert!(skipped[2].reason.contains("no value"));
    }
}
