//! Replaces `${{ ... }}` references with their values.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use crate::topology::model::Command;
use crate::topology::template::{self, Part, Reference};

/// Values references can take: outputs and addresses per node.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub lab: String,
    pub outputs: HashMap<String, BTreeMap<String, String>>,
    pub addresses: HashMap<String, BTreeMap<String, Ipv4Addr>>,
    /// What earlier steps of the running test captured.
    pub test_outputs: BTreeMap<String, String>,
}

/// Each observed node's addresses by logical network; a stopped node's
/// unknown ones are left out.
pub fn observed_addresses(
    observed: &crate::backend::Observed,
) -> HashMap<String, BTreeMap<String, Ipv4Addr>> {
    observed
        .nodes
        .iter()
        .map(|n| {
            let ips = n
                .networks
                .iter()
                .filter_map(|(k, v)| v.map(|ip| (k.clone(), ip)));
            (n.name.clone(), ips.collect())
        })
        .collect()
}

impl Values {
    /// `text` with every reference replaced.
    ///
    /// # Errors
    ///
    /// A reference whose value is not known (validation makes this rare: an
    /// output whose step did not run, an address the backend did not give).
    pub fn substitute(&self, text: &str) -> Result<String, String> {
        self.substitute_with(text, str::to_string)
    }

    /// [`Values::substitute`] for a regex: each value is matched literally
    /// (a token with a `.` matches only a `.`).
    ///
    /// # Errors
    ///
    /// As [`Values::substitute`].
    pub fn substitute_regex(&self, text: &str) -> Result<String, String> {
        self.substitute_with(text, regex::escape)
    }

    fn substitute_with(
        &self,
        text: &str,
        value_as: impl Fn(&str) -> String,
    ) -> Result<String, String> {
        if !text.contains("${{") {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        for part in template::parse(text)? {
            match part {
                Part::Text(t) => out.push_str(&t),
                Part::Ref(Reference::LabName) => out.push_str(&value_as(&self.lab)),
                Part::Ref(Reference::Output { node, output }) => {
                    let value = self
                        .outputs
                        .get(&node)
                        .and_then(|o| o.get(&output))
                        .ok_or_else(|| {
                            format!("output `{output}` of node `{node}` is not known")
                        })?;
                    out.push_str(&value_as(value));
                }
                Part::Ref(Reference::TestOutput { name }) => {
                    let value = self
                        .test_outputs
                        .get(&name)
                        .ok_or_else(|| format!("test output `{name}` is not known"))?;
                    out.push_str(&value_as(value));
                }
                Part::Ref(Reference::Ip { node, network }) => {
                    let ip = self
                        .addresses
                        .get(&node)
                        .and_then(|a| a.get(&network))
                        .ok_or_else(|| {
                            format!("address of node `{node}` on `{network}` is not known")
                        })?;
                    out.push_str(&value_as(&ip.to_string()));
                }
            }
        }
        Ok(out)
    }

    /// The argv of a command: a shell string runs through `sh -c`.
    ///
    /// # Errors
    ///
    /// As [`Values::substitute`].
    pub fn argv(&self, command: &Command) -> Result<Vec<String>, String> {
        match command {
            Command::Shell(s) => Ok(vec!["sh".into(), "-c".into(), self.substitute(s)?]),
            Command::Argv(args) => args.iter().map(|a| self.substitute(a)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_outputs_addresses_and_lab_name() {
        let mut v = Values {
            lab: "demo".into(),
            ..Values::default()
        };
        v.outputs
            .insert("a".into(), [("id".to_string(), "42".to_string())].into());
        v.addresses.insert(
            "b".into(),
            [("lan".to_string(), Ipv4Addr::new(10, 0, 0, 5))].into(),
        );
        assert_eq!(
            v.substitute("${{ lab.name }}/${{ nodes.a.outputs.id }}@${{ nodes.b.ip.lan }}")
                .unwrap(),
            "demo/42@10.0.0.5"
        );
        assert!(v.substitute("${{ nodes.a.outputs.nope }}").is_err());
        assert_eq!(
            v.argv(&Command::Shell("echo ${{ nodes.a.outputs.id }}".into()))
                .unwrap(),
            ["sh", "-c", "echo 42"]
        );
    }

    #[test]
    fn a_regex_gets_values_matched_literally() {
        let mut v = Values::default();
        v.outputs.insert(
            "a".into(),
            [("t".to_string(), "1.5 (x)".to_string())].into(),
        );
        let regex = v
            .substitute_regex("^token ${{ nodes.a.outputs.t }}$")
            .unwrap();
        let re = regex::Regex::new(&regex).unwrap();
        assert!(re.is_match("token 1.5 (x)"));
        assert!(
            !re.is_match("token 1x5 (x)"),
            "the dot matched any character"
        );
    }
}
