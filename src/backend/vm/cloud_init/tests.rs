use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::*;
use crate::topology::yaml::load;

fn host_key() -> KeyPair {
    KeyPair {
        private_openssh:
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n".into(),
        public_openssh: "ssh-ed25519 AAAAhost node-a".into(),
    }
}

fn input(user_data: Option<&str>) -> SeedInput {
    SeedInput {
        instance_id: "bs-lab-a-1".into(),
        hostname: "a".into(),
        user: "bench".into(),
        authorized_key: "ssh-ed25519 AAAAclient lab\n".into(),
        host_key: host_key(),
        interfaces: vec![
            Interface {
                mac: "52:54:00:AA:00:01".into(),
                static_address: Some(("10.210.0.21".parse().unwrap(), 24)),
                gateway: Some("10.210.0.1".parse().unwrap()),
                dns: vec!["10.210.0.1".parse().unwrap()],
            },
            Interface {
                mac: "52:54:00:aa:00:02".into(),
                static_address: None,
                gateway: None,
                dns: vec![],
            },
        ],
        user_data: user_data.map(str::to_owned),
        env: Vec::new(),
    }
}

fn yaml(text: &str) -> Value {
    let loaded = load(text, &Default::default());
    assert!(
        loaded.diagnostics.is_empty(),
        "{text}\n{:?}",
        loaded.diagnostics
    );
    loaded.document.expect("a document").value
}

/// The parts of a multipart message: (headers, decoded body).
fn parts(message: &str) -> Vec<(String, String)> {
    let boundary = message
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a boundary");
    let delimiter = format!("\n--{boundary}");
    let (_, rest) = message.split_once(&format!("--{boundary}\n")).unwrap();
    let body = rest.strip_suffix(&format!("{delimiter}--\n")).unwrap();
    body.split(&format!("{delimiter}\n"))
        .map(|part| {
            let (headers, body) = part.split_once("\n\n").unwrap();
            let body = if headers.contains("Content-Transfer-Encoding: base64") {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8(STANDARD.decode(compact).unwrap()).unwrap()
            } else {
                body.to_owned()
            };
            (headers.to_owned(), body)
        })
        .collect()
}

#[test]
fn meta_data_names_instance_and_host() {
    let files = render(&input(None));
    assert_eq!(
        yaml(&files.meta_data),
        json!({"instance-id": "bs-lab-a-1", "local-hostname": "a"})
    );
}

#[test]
fn network_config_matches_by_mac_static_and_dhcp() {
    let files = render(&input(None));
    let expected = json!({
        "version": 2,
        "ethernets": {
            "eth0": {
                "match": {"macaddress": "52:54:00:aa:00:01"},
                "set-name": "eth0",
                "dhcp4": false,
                "addresses": ["10.210.0.21/24"],
                "routes": [{"to": "0.0.0.0/0", "via": "10.210.0.1", "metric": 100}],
                "nameservers": {"addresses": ["10.210.0.1"]},
            },
            "eth1": {
                "match": {"macaddress": "52:54:00:aa:00:02"},
                "set-name": "eth1",
                "dhcp4": true,
            },
        },
    });
    assert_eq!(yaml(&files.network_config), expected);
}

#[test]
fn user_data_without_user_part_is_the_engine_cloud_config() {
    let files = render(&input(None));
    assert!(files.user_data.starts_with("#cloud-config\n"));
    let config = yaml(&files.user_data);
    assert_eq!(
        config["users"],
        json!([{
            "name": "bench",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "shell": "/bin/bash",
            "lock_passwd": true,
            "ssh_authorized_keys": ["ssh-ed25519 AAAAclient lab"],
        }])
    );
    assert_eq!(config["ssh_pwauth"], json!(false));
    assert_eq!(config["ssh_deletekeys"], json!(true));
    assert_eq!(config["ssh_genkeytypes"], json!([]));
    assert_eq!(
        config["ssh_keys"],
        json!({
            "ed25519_private": host_key().private_openssh,
            "ed25519_public": "ssh-ed25519 AAAAhost node-a",
        })
    );
    assert_eq!(config["manage_etc_hosts"], json!(true));
    assert_eq!(
        config["final_message"],
        json!(
            "Cloud-init v. $VERSION finished at $TIMESTAMP; benchscale: cloud-init finished after $UPTIME s"
        )
    );
    // cloud-init's basic templates take `[A-Za-z0-9_.]+` after `$` as the
    // name: one followed by a `.` names nothing, and the message is lost.
    let message = config["final_message"].as_str().unwrap();
    let names = regex::Regex::new(r"\$([A-Za-z0-9_.]+)").unwrap();
    for name in names.captures_iter(message) {
        assert!(
            ["VERSION", "TIMESTAMP", "UPTIME"].contains(&&name[1]),
            "`${}` is not one of cloud-init's names",
            &name[1]
        );
    }
    // What cloud-init prints of it still matches the default VM boot
    // condition, and settles the guest.
    let printed = "Cloud-init v. 22.4.2 finished at Mon, 01 Dec 2026 10:00:00 +0000; benchscale: cloud-init finished after 54.2 s";
    let boot = regex::Regex::new(crate::topology::DEFAULT_VM_BOOT_PATTERN).unwrap();
    assert!(boot.is_match(printed));
    assert!(settled(&format!(
        "Cloud-init v. 22.4.2 running 'modules:final' at Mon\n{printed}\n"
    )));
    // Blank user data is no user data.
    assert_eq!(render(&input(Some("  \n"))).user_data, files.user_data);
}

#[test]
fn user_cloud_config_is_a_second_part_with_append_merging() {
    let user = "#cloud-config\npackages: [htop]\nusers: [default]\n";
    let files = render(&input(Some(user)));
    assert!(
        files
            .user_data
            .starts_with("Content-Type: multipart/mixed; boundary=")
    );
    let parts = parts(&files.user_data);
    assert_eq!(parts.len(), 2);
    let (engine_headers, engine_body) = &parts[0];
    assert!(engine_headers.contains("Content-Type: text/cloud-config;"));
    assert!(!engine_headers.contains("Merge-Type"));
    assert_eq!(yaml(engine_body)["users"][0]["name"], json!("bench"));
    let (user_headers, user_body) = &parts[1];
    assert!(user_headers.contains("Content-Type: text/cloud-config;"));
    assert!(user_headers.contains(&format!("Merge-Type: {USER_MERGE_TYPE}")));
    assert_eq!(user_body, user);
    assert_eq!(yaml(user_body)["packages"], json!(["htop"]));
}

#[test]
fn user_part_type_follows_its_first_line() {
    for (text, kind) in [
        ("#!/bin/bash\necho hi\n", "text/x-shellscript"),
        ("  #Cloud-Config\na: 1\n", "text/cloud-config"),
        (
            "#cloud-config-archive\n- type: x\n",
            "text/cloud-config-archive",
        ),
        ("#cloud-boothook\n#!/bin/sh\n", "text/cloud-boothook"),
        ("#include\nhttp://x\n", "text/x-include-url"),
        ("## template: jinja\n#cloud-config\n", "text/jinja2"),
        ("just words", "text/plain"),
    ] {
        let files = render(&input(Some(text)));
        let parts = parts(&files.user_data);
        assert!(
            parts[1].0.contains(&format!("Content-Type: {kind};")),
            "{text}: {}",
            parts[1].0
        );
        assert_eq!(
            parts[1].0.contains("Merge-Type"),
            kind == "text/cloud-config"
        );
        assert_eq!(parts[1].1, text);
    }
}

#[test]
fn user_mime_message_is_nested_verbatim() {
    let user = "Content-Type: multipart/mixed; boundary=\"inner\"\nMIME-Version: 1.0\n\n\
        --inner\nContent-Type: text/x-shellscript\n\n#!/bin/sh\ntrue\n--inner--\n";
    let files = render(&input(Some(user)));
    let parts = parts(&files.user_data);
    assert_eq!(parts.len(), 2);
    assert_eq!(format!("{}\n\n{}", parts[1].0, parts[1].1), user);
}

#[test]
fn non_ascii_user_data_survives_base64() {
    let user = "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: \"grüße ✓\"\n";
    let files = render(&input(Some(user)));
    assert!(files.user_data.is_ascii());
    let parts = parts(&files.user_data);
    assert_eq!(parts[1].1, user);
}

#[test]
fn files_are_named_as_nocloud_expects() {
    let files = render(&input(None));
    let names: Vec<&str> = files.files().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["meta-data", "user-data", "network-config"]);
}

#[test]
fn a_guest_is_settled_once_cloud_init_printed_the_marker_after_its_last_stage() {
    let init = "[  OK  ] Started ssh.service\nCloud-init v. 22.4.2 running 'init-local' at Mon\n";
    let login = "debian login: \n";
    let config = "Cloud-init v. 22.4.2 running 'modules:config' at Mon\n";
    let done =
        "Cloud-init v. 22.4.2 finished at Mon; benchscale: cloud-init finished after 54.2 s\n";
    // Before cloud-init, and on images without it, nothing to wait for.
    assert!(settled("Booting the kernel\n"));
    assert!(!settled(init));
    // `login:` comes before cloud-init's later stages: not settled yet.
    assert!(!settled(&format!("{init}{login}{config}")));
    assert!(settled(&format!("{init}{login}{config}{done}")));
    // A reboot runs cloud-init again: the earlier marker no longer counts.
    assert!(!settled(&format!("{init}{config}{done}{init}")));
}

#[test]
fn env_is_appended_to_etc_environment_and_left_out_when_empty() {
    let mut with_env = input(None);
    with_env.env = vec![
        ("PRODUCT_MODE".into(), "test".into()),
        ("GREETING".into(), "hello world".into()),
    ];
    let config = yaml(&render(&with_env).user_data);
    assert_eq!(
        config["write_files"],
        json!([{
            "path": "/etc/environment",
            "content": "PRODUCT_MODE=\"test\"\nGREETING=\"hello world\"\n",
            "append": true,
        }])
    );
    // A user's own write_files are appended to the engine's list (the
    // merge type's `list(append)`), so neither replaces the other.
    let merged = render(&SeedInput {
        user_data: Some("#cloud-config\nwrite_files: [{path: /etc/x, content: y}]\n".into()),
        ..with_env
    });
    assert!(merged.user_data.contains("list(append)"));
    let plain = yaml(&render(&input(None)).user_data);
    assert!(plain.get("write_files").is_none(), "{plain:#}");
}
