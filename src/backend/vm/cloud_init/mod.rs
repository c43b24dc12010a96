//! The NoCloud seed's three documents: `meta-data`, `network-config` and
//! `user-data`.
//!
//! The engine's own `#cloud-config` creates the SSH user with the lab's
//! client key, installs the host key the engine made (so `known_hosts` can
//! be written before the first connection), and turns password logins off.
//! A user's `user_data` is added as a second MIME part; see
//! [`USER_MERGE_TYPE`] for how the two are merged.

use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use crate::backend::vm::keys::KeyPair;
use crate::backend::vm::mime::{Part, multipart};
use crate::backend::vm::yaml_emit::to_yaml;

/// How the user's `#cloud-config` is merged into the engine's, sent as the
/// part's `Merge-Type` header. cloud-init merges each part into what came
/// before with that part's own merge type, and the default replaces whole
/// keys, so a user's `users:` or `packages:` list would drop the engine's
/// SSH user. With this one lists are appended, mappings merged key by key,
/// and for a key both set to a scalar the engine's value stays (password
/// logins stay off). A `merge_how` in the user's own document comes first
/// in cloud-init's lookup and overrides this.
pub const USER_MERGE_TYPE: &str = "list(append)+dict(no_replace,recurse_list)+str()";

/// The line the engine's cloud-init prints on the serial console when its
/// last stage is done (`final_message`, `$UPTIME` filled in by cloud-init).
/// Until then cloud-init may still restart sshd (host keys, password
/// settings), so SSH waits for it: see [`settled`].
pub const FINISHED_MARKER: &str = "benchscale: cloud-init finished";

/// What cloud-init's console lines begin with: `Cloud-init v. 22.4.2
/// running 'init-local' at ...` when a stage starts, `Cloud-init v. 22.4.2
/// finished at ...` (the engine's final message keeps these words) when
/// it is done.
const CLOUD_INIT_LINE: &str = "Cloud-init v. ";

/// Whether a guest whose serial console shows `console` is done with
/// cloud-init: its last cloud-init line says `finished` (the engine's
/// [`FINISHED_MARKER`] line does, and so does cloud-init's own default
/// should a user's configuration replace it), or it shows no cloud-init at
/// all (an image without it, or a boot that has not reached it yet, where
/// SSH is not up either and is retried).
pub fn settled(console: &str) -> bool {
    let Some(last) = console.lines().rev().find(|l| l.contains(CLOUD_INIT_LINE)) else {
        return true;
    };
    last.split(CLOUD_INIT_LINE)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().nth(1))
        == Some("finished")
}

/// One network interface of the VM, in the order of its NICs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The NIC's MAC address (`52:54:00:...`), as given in the domain XML.
    pub mac: String,
    /// Address and prefix length; `None` means DHCP.
    pub static_address: Option<(Ipv4Addr, u8)>,
    /// The default route through this interface, if any. Give one to a
    /// single interface: each gets its own route metric, but two default
    /// routes still make outgoing traffic depend on metrics.
    pub gateway: Option<Ipv4Addr>,
    /// Name servers for this interface.
    pub dns: Vec<Ipv4Addr>,
}

/// Everything the seed says about one VM.
#[derive(Debug, Clone)]
pub struct SeedInput {
    /// cloud-init runs its once-per-instance modules again when this
    /// changes; the engine changes it whenever it re-creates the VM.
    pub instance_id: String,
    pub hostname: String,
    /// The SSH user the engine creates (passwordless sudo, bash).
    pub user: String,
    /// The lab's client public key, one OpenSSH line.
    pub authorized_key: String,
    /// The host key the VM's sshd will present.
    pub host_key: KeyPair,
    pub interfaces: Vec<Interface>,
    /// The user's own user data, substituted; any format cloud-init reads.
    pub user_data: Option<String>,
    /// Variables for `/etc/environment`, in file order, substituted; no
    /// value spans lines (resolution and the executor refuse those).
    pub env: Vec<(String, String)>,
}

/// The seed's documents, ready for [`crate::backend::vm::seed::build_seed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFiles {
    pub meta_data: String,
    pub user_data: String,
    pub network_config: String,
}

impl SeedFiles {
    /// File name and contents of each document, as NoCloud names them.
    pub fn files(&self) -> [(&'static str, &[u8]); 3] {
        [
            ("meta-data", self.meta_data.as_bytes()),
            ("user-data", self.user_data.as_bytes()),
            ("network-config", self.network_config.as_bytes()),
        ]
    }
}

/// Renders the three documents. Pure: the same input gives the same text.
pub fn render(input: &SeedInput) -> SeedFiles {
    let meta = json!({
        "instance-id": input.instance_id,
        "local-hostname": input.hostname,
    });
    SeedFiles {
        meta_data: to_yaml(&meta),
        user_data: user_data(input),
        network_config: to_yaml(&network_config(&input.interfaces)),
    }
}

/// `/etc/environment` lines for `env`: `NAME="value"`, which pam_env
/// (SSH and console logins) reads, and systemd's environment generator
/// too. pam_env takes what is between the outer quotes as is, without
/// escapes, so the value is written as given.
pub fn environment_lines(env: &[(String, String)]) -> String {
    env.iter().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect()
}

/// The engine's `#cloud-config` alone.
fn engine_cloud_config(input: &SeedInput) -> String {
    let mut config = json!({
        "users": [{
            "name": input.user,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "shell": "/bin/bash",
            "lock_passwd": true,
            "ssh_authorized_keys": [input.authorized_key.trim()],
        }],
        "ssh_pwauth": false,
        "disable_root": true,
        // Remove the image's host keys and generate none: the VM presents
        // exactly the key the engine pinned.
        "ssh_deletekeys": true,
        "ssh_genkeytypes": [],
        "ssh_keys": {
            "ed25519_private": input.host_key.private_openssh,
            "ed25519_public": input.host_key.public_openssh,
        },
        // Without an /etc/hosts entry for the hostname, every sudo prints
        // "unable to resolve host" on stderr, which steps would capture.
        "manage_etc_hosts": true,
        // Printed last, on the console: the engine waits for it before SSH.
        // It keeps cloud-init's own words first, which the default VM boot
        // condition (and users' console conditions) look for. No `.` may
        // follow a `$NAME`: cloud-init reads it as part of the name, fails
        // to render the message and prints nothing.
        "final_message": format!(
            "Cloud-init v. $VERSION finished at $TIMESTAMP; {FINISHED_MARKER} after $UPTIME s"
        ),
    });
    if !input.env.is_empty() {
        // Appended, not written over: an image's own /etc/environment
        // (Ubuntu's sets PATH there) stays. `write_files` runs once per
        // instance, and a changed env re-creates the VM with a new one.
        config["write_files"] = json!([{
            "path": "/etc/environment",
            "content": environment_lines(&input.env),
            "append": true,
        }]);
    }
    format!("#cloud-config\n{}", to_yaml(&config))
}

fn user_data(input: &SeedInput) -> String {
    let engine = engine_cloud_config(input);
    let Some(user) = input.user_data.as_deref().filter(|u| !u.trim().is_empty()) else {
        return engine;
    };
    let engine_part = Part::new("text/cloud-config", "benchscale.cfg", &engine);
    let user_part = if starts_with_ci(user, "content-type:") {
        // Already a MIME message: it becomes the second part as written,
        // its own headers heading the part, and cloud-init walks into it.
        Part::verbatim(user)
    } else {
        let kind = content_type(user);
        let part = Part::new(kind, "user-data", user);
        if kind == "text/cloud-config" {
            part.header("Merge-Type", USER_MERGE_TYPE)
        } else {
            part
        }
    };
    multipart(&[engine_part, user_part])
}

/// The MIME type cloud-init gives user data by its first line, longest
/// prefix first, as cloud-init's own matching does (lower case, leading
/// white space ignored). Unknown text goes as `text/plain`, which
/// cloud-init sniffs again itself.
fn content_type(text: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("#cloud-config-archive", "text/cloud-config-archive"),
        ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
        ("## template: jinja", "text/jinja2"),
        ("#cloud-boothook", "text/cloud-boothook"),
        ("#include-once", "text/x-include-once-url"),
        ("#cloud-config", "text/cloud-config"),
        ("#part-handler", "text/part-handler"),
        ("#upstart-job", "text/upstart-job"),
        ("#include", "text/x-include-url"),
        ("#!", "text/x-shellscript"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| starts_with_ci(text, prefix))
        .map_or("text/plain", |(_, kind)| kind)
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    let text = text.trim_start();
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Netplan-style version 2 configuration. Interfaces are matched by MAC
/// and named `eth0`, `eth1`, ... in NIC order, so steps and users can rely
/// on the names whatever the image's naming scheme.
fn network_config(interfaces: &[Interface]) -> Value {
    let mut ethernets = Map::new();
    for (index, nic) in interfaces.iter().enumerate() {
        let name = format!("eth{index}");
        let mut entry = Map::new();
        entry.insert(
            "match".into(),
            json!({ "macaddress": nic.mac.to_ascii_lowercase() }),
        );
        entry.insert("set-name".into(), json!(name));
        match nic.static_address {
            Some((address, prefix)) => {
                entry.insert("dhcp4".into(), json!(false));
                entry.insert("addresses".into(), json!([format!("{address}/{prefix}")]));
            }
            None => {
                entry.insert("dhcp4".into(), json!(true));
            }
        }
        if let Some(gateway) = nic.gateway {
            // `routes` with an explicit 0.0.0.0/0 rather than `gateway4`
            // (deprecated in netplan) or `to: default` (not understood by
            // older cloud-init renderers such as Debian 12's ifupdown one).
            entry.insert(
                "routes".into(),
                json!([{ "to": "0.0.0.0/0", "via": gateway.to_string(), "metric": 100 + index }]),
            );
        }
        if !nic.dns.is_empty() {
            let servers: Vec<String> = nic.dns.iter().map(Ipv4Addr::to_string).collect();
            entry.insert("nameservers".into(), json!({ "addresses": servers }));
        }
        ethernets.insert(name, Value::Object(entry));
    }
    json!({ "version": 2, "ethernets": ethernets })
}

#[cfg(test)]
mod tests;
