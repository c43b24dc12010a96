use std::collections::HashMap;
use std::path::Path;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_then_file_then_environment() {
    let file = "ssh_port = 2222\nssh_user = \"alice\"\n";
    let env = env(&[("BENCHSCALE_SSH_USER", "bob"), ("HOME", "/home/x")]);
    let config = Config::from_sources(&env, Some((Path::new("/etc/b.toml"), file))).unwrap();
    assert_eq!(config.ssh_port.value, 2222);
    assert_eq!(
        config.ssh_port.origin,
        Origin::File {
            path: "/etc/b.toml".into(),
            line: 1
        }
    );
    assert_eq!(config.ssh_user.value, "bob");
    assert_eq!(
        config.ssh_user.origin,
        Origin::Env {
            var: "BENCHSCALE_SSH_USER".into()
        }
    );
    assert_eq!(config.libvirt_uri.value, "qemu:///system");
    assert_eq!(config.libvirt_uri.origin, Origin::Default);
    assert_eq!(
        config.state_dir.value,
        Path::new("/home/x/.local/state/benchscale")
    );
    assert_eq!(config.libvirt_domain_type.value, DomainType::Auto);
}

#[test]
fn a_bad_variable_is_named() {
    let env = env(&[("BENCHSCALE_SSH_PORT", "70000")]);
    let err = Config::from_sources(&env, None).unwrap_err().to_string();
    assert!(err.contains("BENCHSCALE_SSH_PORT"), "{err}");
    assert!(err.contains("70000"), "{err}");
    let env2 = self::env(&[("BENCHSCALE_LIBVIRT_DOMAIN_TYPE", "xen")]);
    let err = Config::from_sources(&env2, None).unwrap_err().to_string();
    assert!(err.contains("BENCHSCALE_LIBVIRT_DOMAIN_TYPE"), "{err}");
}

#[test]
fn a_bad_file_value_names_file_and_line() {
    let file = "# comment\n\nssh_timeout_secs = 0\n";
    let err = Config::from_sources(&env(&[]), Some((Path::new("c.toml"), file)))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("c.toml:3:"), "{err}");
}

#[test]
fn unknown_keys_and_syntax_errors_have_positions() {
    let err = Config::from_sources(&env(&[]), Some((Path::new("c.toml"), "\nssh_prot = 1\n")))
        .unwrap_err();
    match err {
        ConfigError::Parse {
            line,
            message,
            help,
            ..
        } => {
            assert_eq!(line, 2);
            assert!(message.contains("ssh_prot"));
            assert!(help.contains("ssh_port"));
        }
        other => panic!("{other:?}"),
    }
    let err =
        Config::from_sources(&env(&[]), Some((Path::new("c.toml"), "a = = 1\n"))).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { line: 1, .. }), "{err:?}");
}

#[test]
fn a_named_file_must_exist() {
    let env = env(&[("BENCHSCALE_CONFIG", "/nonexistent/benchscale.toml")]);
    let err = sources::find_file(None, &env).unwrap_err().to_string();
    assert!(err.contains("BENCHSCALE_CONFIG"), "{err}");
}
