//! v1 names to names of this format: `^[a-z][a-z0-9-]{0,62}$`.

/// `name` made valid: lower case, `_`, spaces and dots to `-`, other
/// characters dropped, runs of `-` made one, a leading non-letter gets
/// `fallback-` in front, at most 63 characters. Empty becomes `fallback`.
pub fn fix(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        let c = match c {
            '_' | ' ' | '.' | '-' => '-',
            c if c.is_ascii_lowercase() || c.is_ascii_digit() => c,
            _ => continue,
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        return fallback.to_string();
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out = format!("{fallback}-{out}");
    }
    out.truncate(63);
    out.trim_end_matches('-').to_string()
}

/// `name`, or `name-2`, `name-3`... when `taken` has it already; the
/// suffix replaces the end of a long name so it stays within 63.
pub fn unique(name: String, taken: &[String]) -> String {
    if !taken.contains(&name) {
        return name;
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let mut base = name.clone();
            base.truncate(63 - suffix.len());
            format!("{}{suffix}", base.trim_end_matches('-'))
        })
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid() {
        assert_eq!(fix("my-lab", "lab"), "my-lab");
        assert_eq!(fix("My_Lab v2.1", "lab"), "my-lab-v2-1");
        assert_eq!(fix("__Web__", "node"), "web");
        assert_eq!(fix("01-web", "node"), "node-01-web");
        assert_eq!(fix("!!!", "node"), "node");
        assert_eq!(fix("Ünïcode-ok", "node"), "ncode-ok");
        let long = "a".repeat(100);
        assert_eq!(fix(&long, "lab").len(), 63);
    }

    #[test]
    fn duplicates_get_a_number() {
        let taken = vec!["web".to_string(), "web-2".to_string()];
        assert_eq!(unique("web".into(), &taken), "web-3");
        assert_eq!(unique("db".into(), &taken), "db");
        let long = "a".repeat(63);
        let got = unique(long.clone(), &[long]);
        assert_eq!(got.len(), 63);
        assert!(got.ends_with("-2"));
    }
}
