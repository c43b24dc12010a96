//! The host tools the kernel plane runs (`tc`, `ip`, `iptables`), as
//! values: a [`Cmd`] is built by pure code, printed in golden files and
//! error messages, and run by [`Cmd::run`].

use std::fmt;
use std::sync::Arc;

use super::KernelError;

/// One run of a host tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
    /// A piece of stderr that means "already done" (an `iptables -N` of a
    /// chain that another attachment of the lab created first): such a
    /// failure counts as success, so that the step is idempotent.
    pub ok_if: Option<&'static str>,
}

impl Cmd {
    pub fn new(program: &'static str, args: &[&str]) -> Cmd {
        Cmd {
            program,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ok_if: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn ok_if(mut self, stderr_part: &'static str) -> Cmd {
        self.ok_if = Some(stderr_part);
        self
    }

    /// Runs the command and returns its stdout.
    ///
    /// # Errors
    ///
    /// [`KernelError::Spawn`] when the tool cannot be started (not
    /// installed), [`KernelError::Command`] when it exits with a failure,
    /// with its stderr.
    pub async fn run(&self) -> Result<String, KernelError> {
        let output = tokio::process::Command::new(self.program)
            .args(&self.args)
            .env("LC_ALL", "C")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| KernelError::Spawn {
                program: self.program.to_owned(),
                source: Arc::new(e),
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if !output.status.success() && !self.ok_if.is_some_and(|part| stderr.contains(part)) {
            return Err(KernelError::Command {
                command: self.to_string(),
                code: output.status.code(),
                stderr,
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// As a shell would take it: arguments with spaces or quotes are quoted.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program)?;
        for arg in &self.args {
            let plain = !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/=%+@,".contains(&b));
            if plain {
                write!(f, " {arg}")?;
            } else {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_a_shell_line() {
        let cmd = Cmd::new("ip", &["link", "set", "dev", "bs0"])
            .arg("alias")
            .arg("benchscale lab=a node=b network=c");
        assert_eq!(
            cmd.to_string(),
            "ip link set dev bs0 alias 'benchscale lab=a node=b network=c'"
        );
    }

    #[tokio::test]
    async fn failures_name_the_command_and_its_stderr() {
        let err = Cmd::new("sh", &["-c", "echo nope >&2; exit 3"])
            .run()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo nope >&2; exit 3'` failed (exit 3): nope"
        );
        let ok = Cmd::new("sh", &["-c", "echo exists >&2; exit 1"])
            .ok_if("exists")
            .run()
            .await;
        assert!(ok.is_ok());
    }
}
