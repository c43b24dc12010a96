//! Which data plane carries the conditions, and the probe that picks one.

use std::fmt;
use std::str::FromStr;

use tokio::sync::OnceCell;

use super::command::Cmd;

/// The kernel objects that carry a lab's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    /// netem does everything (distribution kernels).
    Netem,
    /// tbf for rate, iptables for loss, and the userspace delay line (fed
    /// by NFQUEUE) for delay, jitter, corruption, duplicates and
    /// reordering: for kernels built without netem.
    Userspace,
}

impl Plane {
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Netem => "netem",
            Plane::Userspace => "userspace",
        }
    }
}

impl fmt::Display for Plane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for (`BENCHSCALE_CONDITIONS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaneChoice {
    /// netem when the kernel has it, else the userspace plane.
    #[default]
    Auto,
    Netem,
    Userspace,
}

impl PlaneChoice {
    /// The plane to use: a forced one as it is (netem on a kernel without
    /// it fails when applied, with an error that says so), `auto` by
    /// [`probe`].
    pub async fn resolve(self) -> Plane {
        match self {
            PlaneChoice::Auto => probe().await,
            PlaneChoice::Netem => Plane::Netem,
            PlaneChoice::Userspace => Plane::Userspace,
        }
    }
}

impl FromStr for PlaneChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(PlaneChoice::Auto),
            "netem" => Ok(PlaneChoice::Netem),
            "userspace" => Ok(PlaneChoice::Userspace),
            other => Err(format!(
                "`{other}` is not a conditions plane: use auto, netem or userspace"
            )),
        }
    }
}

impl fmt::Display for PlaneChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlaneChoice::Auto => "auto",
            PlaneChoice::Netem => "netem",
            PlaneChoice::Userspace => "userspace",
        })
    }
}

static PROBED: OnceCell<Plane> = OnceCell::const_new();

/// Whether this kernel has netem, asked once per process.
///
/// The question is put to a veth pair in a scratch network namespace, so
/// that no real interface is touched; the namespace goes with everything
/// in it. A veth, not a dummy: kernels without netem are often built
/// without dummy too. When the probe itself cannot run (no right to
/// make namespaces), the answer is netem, the common case, and applying
/// will say clearly if the kernel lacks it.
pub async fn probe() -> Plane {
    *PROBED.get_or_init(probe_uncached).await
}

async fn probe_uncached() -> Plane {
    let ns = format!("bs-probe-{}", std::process::id());
    let made = Cmd::new("ip", &["netns", "add"]).arg(&ns).run().await;
    if let Err(e) = made {
        tracing::warn!("cannot probe for netem ({e}); assuming the kernel has it");
        return Plane::Netem;
    }
    let answer = async {
        Cmd::new("ip", &["-n"])
            .arg(&ns)
            .args([
                "link", "add", "bsprobe", "type", "veth", "peer", "name", "bsprobe1",
            ])
            .run()
            .await?;
        Cmd::new("tc", &["-n"])
            .arg(&ns)
            .args([
                "qdisc", "add", "dev", "bsprobe", "root", "netem", "delay", "1ms",
            ])
            .run()
            .await
    }
    .await;
    if let Err(e) = Cmd::new("ip", &["netns", "del"]).arg(&ns).run().await {
        tracing::warn!("cannot remove the probe's namespace {ns}: {e}");
    }
    match answer {
        Ok(_) => Plane::Netem,
        Err(e) => {
            tracing::debug!("no netem: {e}");
            Plane::Userspace
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_from_their_names() {
        for choice in [
            PlaneChoice::Auto,
            PlaneChoice::Netem,
            PlaneChoice::Userspace,
        ] {
            assert_eq!(choice.to_string().parse::<PlaneChoice>(), Ok(choice));
        }
        assert!(
            "tc".parse::<PlaneChoice>()
                .unwrap_err()
                .contains("auto, netem or userspace")
        );
    }
}
