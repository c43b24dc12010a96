//! Running benchscale and docker-compose as a user does, and writing
//! the lab files they read.

use super::*;

impl Ctx {
    /// The benchscale binary with `args`, the harness's state folder and
    /// configuration, and none of the caller's `BENCHSCALE_*` variables
    /// but the base image path.
    pub(crate) fn benchscale(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(&self.scratch);
        for (key, _) in std::env::vars() {
            if key.starts_with("BENCHSCALE_") && key != "BENCHSCALE_BASE_IMAGE_PATH" {
                cmd.env_remove(key);
            }
        }
        cmd.env("BENCHSCALE_CONFIG", &self.config)
            .env("BENCHSCALE_STATE_DIR", self.scratch.join("state"))
            .env("NO_COLOR", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    pub(crate) fn run_bs(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
        what: &str,
    ) -> Result<Measured, String> {
        self.run_bs_raw(args, extra)?.ok(what)
    }

    /// Like [`Ctx::run_bs`], whatever the exit code.
    pub(crate) fn run_bs_raw(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<Measured, String> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        self.launcher
            .run(&self.benchscale(args, extra), &self.scratch, LIMIT)
    }

    /// A fresh container lab of `tool` (`bs`, `floor`, `compose`) on
    /// subnets no network uses right now.
    pub(crate) fn plain(&self, tool: &str, size: usize) -> Result<PlainLab, String> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut lab = PlainLab::new(
            &format!("bench-{tool}{size}-{}{n}", self.tag),
            size,
            NETWORKS,
        );
        lab.third_octet = self
            .rt
            .block_on(docker::free_thirds(&self.docker, NETWORKS))?;
        Ok(lab)
    }

    /// A fresh container lab for docker-compose of `size` services, and
    /// its compose file (the project is named after the lab).
    pub(crate) fn compose_lab(&self, size: usize) -> Result<(PlainLab, PathBuf), String> {
        let lab = self.plain("compose", size)?;
        let file = self.write(&format!("{}.yml", lab.lab), &compose_file(&lab))?;
        Ok((lab, file))
    }

    pub(crate) fn incident(&self, text: String) {
        say(format!("daemon incident: {text}"));
        self.incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }

    /// A removal that failed only because the daemon kept a stale endpoint
    /// on a network (every container is gone) is an incident, not a
    /// failure: its time still counts.
    pub(crate) fn removed(&self, m: Measured, what: &str, lab: &str) -> Result<Measured, String> {
        if m.code == Some(0) {
            return Ok(m);
        }
        let text = format!("{}\n{}", m.stdout, m.stderr);
        if text.contains(docker::STALE_ENDPOINT)
            && self.rt.block_on(docker::count(&self.docker, lab))?.0 == 0
        {
            let line = text
                .lines()
                .find(|l| l.contains(docker::STALE_ENDPOINT))
                .unwrap_or_default();
            self.incident(format!("{what} of {lab}: {}", line.trim()));
            return Ok(m);
        }
        m.ok(what)
    }

    pub(crate) fn compose(
        &self,
        file: &Path,
        project: &str,
        args: &[&str],
        host: Option<&str>,
    ) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-p")
            .arg(project)
            .arg("-f")
            .arg(file)
            .args(args)
            .current_dir(&self.scratch)
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
            // compose 1.29's limit bounds one thread pool that its nested
            // tasks share, so any limit below about twice the number of
            // services deadlocks for good (docker/compose#5864, #8226): the
            // default 64 does at 100 services, 8 at 10. Above every size
            // here, compose runs as it does for a small project.
            .env("COMPOSE_PARALLEL_LIMIT", "1024");
        if let Some(host) = host {
            cmd.env("DOCKER_HOST", host);
        } else {
            cmd.env_remove("DOCKER_HOST");
        }
        cmd
    }

    pub(crate) fn run_compose(
        &self,
        file: &Path,
        project: &str,
        args: &[&str],
        host: Option<&str>,
    ) -> Result<Measured, String> {
        let what = format!("docker-compose {}", args.join(" "));
        self.run_compose_raw(file, project, args, host)?.ok(&what)
    }

    /// Like [`Ctx::run_compose`], whatever the exit code.
    pub(crate) fn run_compose_raw(
        &self,
        file: &Path,
        project: &str,
        args: &[&str],
        host: Option<&str>,
    ) -> Result<Measured, String> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        self.launcher.run(
            &self.compose(file, project, args, host),
            &self.scratch,
            LIMIT,
        )
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.scratch.join(name);
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Checks that `lab` has `want` running containers.
    pub(crate) fn expect_running(&self, lab: &str, want: usize) -> Result<(), String> {
        let (all, running) = self.rt.block_on(docker::count(&self.docker, lab))?;
        if all == want && running == want {
            Ok(())
        } else {
            Err(format!(
                "lab {lab}: {running} of {all} containers run, {want} expected"
            ))
        }
    }
}

pub(crate) fn rss(map: &mut BTreeMap<&'static str, u64>, key: &'static str, m: &Measured) {
    let e = map.entry(key).or_default();
    *e = (*e).max(m.max_rss_kib);
}
