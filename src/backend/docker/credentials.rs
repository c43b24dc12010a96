//! Registry credentials, from the user's Docker configuration, as the
//! docker CLI finds them: `config.json` in `$DOCKER_CONFIG` or
//! `~/.docker`, where a registry's credentials come from its credential
//! helper (`credHelpers`), else the store of all registries
//! (`credsStore`), else its `auths` entry (`auth`, base64 of
//! `user:password`, or `identitytoken`). A helper is the program
//! `docker-credential-NAME`, run with `get` and the registry on stdin.
//!
//! No configuration, or nothing for the registry, means an anonymous
//! pull, as with `docker pull`. The parsing and the choice are plain
//! functions, tested without files or programs; [`for_image`] does the
//! I/O.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use serde::Deserialize;

/// The name the docker CLI files Docker Hub's credentials under, and the
/// address its helpers are asked for.
const HUB_ADDRESS: &str = "https://index.docker.io/v1/";

/// What benchscale calls Docker Hub in messages.
pub(super) const HUB: &str = "docker.io";

/// How long a credential helper may take: one that waits for a desktop
/// keyring prompt nobody answers must not hang the apply.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The registry an image reference names: its first component when that
/// looks like a host (a `.` or `:` in it, or `localhost`), as Docker
/// decides; Docker Hub otherwise.
pub(super) fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => HUB,
    }
}

/// The reference as the engine should pull it: with `:latest` when it
/// names neither a tag nor a digest, as `docker pull` does (the API pulls
/// every tag of a name without one).
pub(super) fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// The parts of `config.json` that hold credentials.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    identitytoken: Option<String>,
}

/// Where a registry's credentials come from.
#[derive(Debug, PartialEq)]
pub(super) enum Source {
    /// None: pull anonymously.
    Anonymous,
    /// Written in `config.json`.
    Inline(DockerCredentials),
    /// Asked of `docker-credential-<helper>`, for `server`; `fallback` is
    /// the `auths` entry, used when the helper is not installed.
    Helper {
        helper: String,
        server: String,
        fallback: Option<DockerCredentials>,
    },
}

/// The folder of `config.json`: `$DOCKER_CONFIG`, else `~/.docker`.
pub(super) fn config_dir(docker_config: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    docker_config
        .filter(|d| !d.as_os_str().is_empty())
        .or_else(|| home.map(|h| h.join(".docker")))
}

pub(super) fn parse(text: &str) -> Result<ConfigFile, String> {
    serde_json::from_str(text).map_err(|e| format!("it is not a Docker configuration: {e}"))
}

/// The host a key of `auths` or `credHelpers` stands for: keys may be
/// written as URLs (`https://index.docker.io/v1/`) or bare hosts.
fn host_of(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" => HUB,
        other => other,
    }
}

/// Where `registry`'s credentials come from, by `config`.
///
/// # Errors
///
/// An `auth` that is not base64 of `user:password`.
pub(super) fn source_for(config: &ConfigFile, registry: &str) -> Result<Source, String> {
    let server = if registry == HUB {
        HUB_ADDRESS.to_owned()
    } else {
        registry.to_owned()
    };
    let inline = config
        .auths
        .iter()
        .find(|(key, _)| host_of(key) == registry)
        .map(|(_, entry)| inline(entry, &server))
        .transpose()?
        .flatten();
    let helper = config
        .cred_helpers
        .iter()
        .find(|(key, _)| host_of(key) == registry)
        .map(|(_, helper)| helper.clone())
        .or_else(|| config.creds_store.clone())
        .filter(|h| !h.is_empty());
    Ok(match (helper, inline) {
        (Some(helper), fallback) => Source::Helper {
            helper,
            server,
            fallback,
        },
        (None, Some(credentials)) => Source::Inline(credentials),
        (None, None) => Source::Anonymous,
    })
}

/// The credentials of one `auths` entry; `None` for an empty one (the
/// docker CLI writes `{}` for registries whose secrets a store keeps).
fn inline(entry: &AuthEntry, server: &str) -> Result<Option<DockerCredentials>, String> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(DockerCredentials {
            identitytoken: Some(token.to_owned()),
            serveraddress: Some(server.to_owned()),
            ..Default::default()
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = || format!("the `auth` of {server} is not base64 of user:password");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some(DockerCredentials {
        username: Some(user.to_owned()),
        password: Some(password.to_owned()),
        serveraddress: Some(server.to_owned()),
        ..Default::default()
    }))
}

/// What a helper's `get` prints.
#[derive(Debug, Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The credentials in a helper's answer; a user name of `<token>` marks
/// an identity token, as the docker CLI has it.
pub(super) fn from_helper(stdout: &str, server: &str) -> Result<DockerCredentials, String> {
    let answer: HelperAnswer = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("its answer is not the JSON of a credential helper: {e}"))?;
    let serveraddress = Some(server.to_owned());
    Ok(if answer.username == "<token>" {
        DockerCredentials {
            identitytoken: Some(answer.secret),
            serveraddress,
            ..Default::default()
        }
    } else {
        DockerCredentials {
            username: Some(answer.username),
            password: Some(answer.secret),
            serveraddress,
            ..Default::default()
        }
    })
}

/// The credentials for pulling `image`, or `None` to pull anonymously.
///
/// # Errors
///
/// `config.json` exists but cannot be read or parsed, or a credential
/// helper fails other than by not knowing the registry; the message names
/// the file or the helper.
pub(super) async fn for_image(image: &str) -> Result<Option<DockerCredentials>, String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let Some(dir) = config_dir(std::env::var_os("DOCKER_CONFIG").map(PathBuf::from), home) else {
        return Ok(None);
    };
    let file = dir.join("config.json");
    let text = match tokio::fs::read_to_string(&file).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let in_file = |e: String| format!("{}: {e}", file.display());
    let config = parse(&text).map_err(in_file)?;
    match source_for(&config, registry_of(image)).map_err(in_file)? {
        Source::Anonymous => Ok(None),
        Source::Inline(credentials) => Ok(Some(credentials)),
        Source::Helper {
            helper,
            server,
            fallback,
        } => ask_helper(&format!("docker-credential-{helper}"), &server, fallback).await,
    }
}

/// Runs `program get` (a credential helper) for `server`.
async fn ask_helper(
    program: &str,
    server: &str,
    fallback: Option<DockerCredentials>,
) -> Result<Option<DockerCredentials>, String> {
    use tokio::io::AsyncWriteExt;
    let spawned = tokio::process::Command::new(program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        // Named in the configuration but not installed: the docker CLI
        // fails here; an anonymous pull (or the file's own entry) is what
        // works for public images, and a private one fails with the
        // registry's refusal, whose help says to log in.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(%program, "credential helper not found; pulling without it");
            return Ok(fallback);
        }
        Err(e) => return Err(format!("cannot run {program}: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit
        // status says what went wrong.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let output = match tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("{program} get failed: {e}")),
        Err(_) => {
            return Err(format!(
                "{program} get did not answer within {} s",
                HELPER_TIMEOUT.as_secs()
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // Helpers say so on stdout when they hold nothing for the server.
        if stdout.contains("credentials not found") {
            return Ok(fallback);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{program} get failed ({}): {}",
            output.status,
            [stdout.trim(), stderr.trim()].join(" ").trim()
        ));
    }
    from_helper(&stdout, server)
        .map(Some)
        .map_err(|e| format!("{program} get: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }

    #[test]
    fn registries_are_the_first_component_when_it_is_a_host() {
        assert_eq!(registry_of("busybox"), HUB);
        assert_eq!(registry_of("library/busybox:1"), HUB);
        assert_eq!(registry_of("127.0.0.1:5000/a/b:c"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/r"), "ghcr.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
    }

    #[test]
    fn a_reference_without_tag_or_digest_gets_latest() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b:latest");
        assert_eq!(with_tag("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000/a/b:1");
        assert_eq!(with_tag("a/b@sha256:00"), "a/b@sha256:00");
    }

    #[test]
    fn docker_config_overrides_the_home_folder() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            config_dir(None, home.clone()),
            Some(PathBuf::from("/home/u/.docker"))
        );
        assert_eq!(
            config_dir(Some("/etc/d".into()), home.clone()),
            Some(PathBuf::from("/etc/d"))
        );
        assert_eq!(
            config_dir(Some("".into()), home),
            Some(PathBuf::from("/home/u/.docker"))
        );
        assert_eq!(config_dir(None, None), None);
    }

    #[test]
    fn auths_entries_give_user_and_password_or_a_token() {
        let text = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"identitytoken": "tok"}},
                "http://reg.example/v2/": {{}}
            }}}}"#,
            basic("alice", "s:cret")
        );
        let config = parse(&text).unwrap();
        let Source::Inline(local) = source_for(&config, "127.0.0.1:5000").unwrap() else {
            panic!("inline credentials");
        };
        assert_eq!(local.username.as_deref(), Some("alice"));
        assert_eq!(local.password.as_deref(), Some("s:cret"));
        assert_eq!(local.serveraddress.as_deref(), Some("127.0.0.1:5000"));
        let Source::Inline(hub) = source_for(&config, HUB).unwrap() else {
            panic!("inline token");
        };
        assert_eq!(hub.identitytoken.as_deref(), Some("tok"));
        assert_eq!(hub.serveraddress.as_deref(), Some(HUB_ADDRESS));
        // An empty entry and an unknown registry: anonymous.
        assert_eq!(
            source_for(&config, "reg.example").unwrap(),
            Source::Anonymous
        );
        assert_eq!(source_for(&config, "ghcr.io").unwrap(), Source::Anonymous);
    }

    #[test]
    fn a_registry_s_helper_wins_over_the_store_and_the_store_over_auths() {
        let text = format!(
            r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{}"}}}},
                "credsStore": "desktop",
                "credHelpers": {{"ghcr.io": "gh"}}}}"#,
            basic("bob", "pw")
        );
        let config = parse(&text).unwrap();
        let helper = |registry| match source_for(&config, registry).unwrap() {
            Source::Helper {
                helper,
                server,
                fallback,
            } => (helper, server, fallback.is_some()),
            other => panic!("a helper, not {other:?}"),
        };
        assert_eq!(helper("ghcr.io"), ("gh".into(), "ghcr.io".into(), false));
        assert_eq!(helper(HUB), ("desktop".into(), HUB_ADDRESS.into(), false));
        assert_eq!(
            helper("127.0.0.1:5000"),
            ("desktop".into(), "127.0.0.1:5000".into(), true)
        );
    }

    #[test]
    fn a_bad_auth_is_an_error_that_names_the_registry() {
        let config = parse(r#"{"auths": {"r.example": {"auth": "%%%"}}}"#).unwrap();
        let err = source_for(&config, "r.example").unwrap_err();
        assert!(err.contains("r.example") && err.contains("base64"), "{err}");
        let config = parse(&format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            base64::engine::general_purpose::STANDARD.encode("no-colon")
        ))
        .unwrap();
        assert!(source_for(&config, "r.example").is_err());
        assert!(parse("[1, 2]").is_err());
    }

    #[test]
    fn helper_answers_give_a_password_or_an_identity_token() {
        let password = from_helper(
            r#"{"ServerURL":"r","Username":"carol","Secret":"pw"}"#,
            "r.example",
        )
        .unwrap();
        assert_eq!(password.username.as_deref(), Some("carol"));
        assert_eq!(password.password.as_deref(), Some("pw"));
        let token = from_helper(r#"{"Username":"<token>","Secret":"t"}"#, "r.example").unwrap();
        assert_eq!(token.identitytoken.as_deref(), Some("t"));
        assert!(token.username.is_none());
        assert!(from_helper("not json", "r").is_err());
    }

    /// A helper script that answers as `body` says.
    fn helper_script(dir: &std::path::Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[tokio::test]
    async fn helpers_are_run_with_the_server_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        // Echoes the server it was asked for as the user name.
        let echo = helper_script(
            dir.path(),
            "echo",
            r#"[ "$1" = get ] || exit 3; read s; printf '{"Username":"%s","Secret":"pw"}' "$s""#,
        );
        let got = ask_helper(&echo, "r.example", None).await.unwrap().unwrap();
        assert_eq!(got.username.as_deref(), Some("r.example"));
        let none = helper_script(
            dir.path(),
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        assert_eq!(ask_helper(&none, "r", None).await.unwrap(), None);
        let broken = helper_script(dir.path(), "broken", "echo 'keyring locked' >&2; exit 1");
        let err = ask_helper(&broken, "r", None).await.unwrap_err();
        assert!(err.contains("keyring locked"), "{err}");
        let absent = dir.path().join("docker-credential-absent");
        let fallback = DockerCredentials {
            username: Some("u".into()),
            ..Default::default()
        };
        let absent = absent.display().to_string();
        let got = ask_helper(&absent, "r", Some(fallback.clone())).await;
        assert_eq!(got.unwrap(), Some(fallback));
    }
}
