//! The private `ssh_config` each session is started with (`ssh -F`).

use std::fmt::Write as _;
use std::path::Path;

use super::SshTarget;

/// The session's `ssh_config`: key-only, strict, and nothing from the
/// environment (no agent, no global known hosts, no host key updates).
pub(super) fn ssh_config(target: &SshTarget) -> Result<String, String> {
    let mut text = String::from("# benchscale: one SSH session to a lab VM\nHost *\n");
    let options = [
        ("BatchMode", "yes".to_owned()),
        ("IdentitiesOnly", "yes".to_owned()),
        ("IdentityAgent", "none".to_owned()),
        ("IdentityFile", config_path(&target.key)?),
        ("PreferredAuthentications", "publickey".to_owned()),
        ("PubkeyAuthentication", "yes".to_owned()),
        ("PasswordAuthentication", "no".to_owned()),
        ("KbdInteractiveAuthentication", "no".to_owned()),
        ("StrictHostKeyChecking", "yes".to_owned()),
        ("UserKnownHostsFile", config_path(&target.known_hosts)?),
        ("GlobalKnownHostsFile", "/dev/null".to_owned()),
        // Keep known_hosts exactly as the engine wrote it.
        ("UpdateHostKeys", "no".to_owned()),
        ("CheckHostIP", "no".to_owned()),
        ("ForwardAgent", "no".to_owned()),
        ("ForwardX11", "no".to_owned()),
    ];
    for (name, value) in options {
        let _ = writeln!(text, "    {name} {value}");
    }
    if let Some(socket) = &target.via {
        let _ = writeln!(text, "    ProxyCommand {}", proxy_command(socket)?);
    }
    Ok(text)
}

/// Reaches the host through the master connection at `socket` (`ssh -W`
/// over its control socket: no second login). ssh runs it with `sh -c`
/// after expanding `%` tokens, so the path is quoted for both.
fn proxy_command(socket: &Path) -> Result<String, String> {
    Ok(format!(
        "ssh -F /dev/null -o BatchMode=yes -S {} -W %h:%p benchscale-hop",
        quoted(socket, '\'')?
    ))
}

/// A path as an `ssh_config` value: quoted (it may hold spaces) and with
/// `%` doubled, since ssh expands `%` tokens in these options.
fn config_path(path: &Path) -> Result<String, String> {
    quoted(path, '"')
}

/// `path` between `quote`s, `%` doubled; refused when it holds the quote or
/// a line break, which no quoting here can carry.
fn quoted(path: &Path, quote: char) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if text.contains([quote, '\n', '\r']) {
        return Err(format!("{text:?} cannot be written in an ssh_config"));
    }
    Ok(format!("{quote}{}{quote}", text.replace('%', "%%")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn config_is_strict_key_only_and_quotes_paths() {
        let target = SshTarget {
            host: "10.0.0.5".into(),
            port: 22,
            user: "bench".into(),
            key: "/state/my lab/id_ed25519".into(),
            known_hosts: "/state/100%/known_hosts".into(),
            connect_timeout: Duration::from_secs(5),
            via: None,
        };
        let text = ssh_config(&target).unwrap();
        for line in [
            "IdentityFile \"/state/my lab/id_ed25519\"",
            "UserKnownHostsFile \"/state/100%%/known_hosts\"",
            "StrictHostKeyChecking yes",
            "GlobalKnownHostsFile /dev/null",
            "PasswordAuthentication no",
            "IdentitiesOnly yes",
            "BatchMode yes",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("ProxyCommand"), "{text}");
        let hop = SshTarget {
            via: Some("/tmp/bs-ssh-1%x/master".into()),
            ..target.clone()
        };
        let text = ssh_config(&hop).unwrap();
        assert!(
            text.contains(
                "ProxyCommand ssh -F /dev/null -o BatchMode=yes -S '/tmp/bs-ssh-1%%x/master' -W %h:%p benchscale-hop"
            ),
            "{text}"
        );
        let bad_hop = SshTarget {
            via: Some("/tmp/it's".into()),
            ..target.clone()
        };
        assert!(ssh_config(&bad_hop).is_err());
        let bad = SshTarget {
            key: "/a\"b".into(),
            ..target
        };
        assert!(ssh_config(&bad).is_err());
    }
}
