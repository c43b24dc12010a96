//! Container labs of one size: benchscale, the floor and docker-compose,
//! run after run, and the no-change apply's API calls.

use super::*;

/// The results of one size, and the error that stopped it early.
pub(crate) fn containers(ctx: &Ctx, size: usize) -> (SizeResult, Option<String>) {
    let mut r = SizeResult {
        size,
        ..SizeResult::default()
    };
    let error = containers_into(ctx, size, &mut r).err();
    (r, error)
}

pub(crate) fn containers_into(ctx: &Ctx, size: usize, r: &mut SizeResult) -> Result<(), String> {
    let runs = ctx.settings.runs;
    for run in 1..=runs {
        let tag = format!("[{size} containers, run {run}/{runs}]");
        // benchscale
        let bs_lab = ctx.plain("bs", size)?;
        let file = ctx.write(&format!("{}.yaml", bs_lab.lab), &plain_topology(&bs_lab))?;
        let file_arg = file.display().to_string();
        let cold = ctx.run_bs(&["apply", &file_arg], &[], "benchscale cold apply")?;
        ctx.expect_running(&bs_lab.lab, size)?;
        let nochange = ctx.run_bs(&["apply", &file_arg], &[], "benchscale no-change apply")?;
        if !nochange.stdout.contains("no changes") {
            return Err(format!(
                "the second apply changed something: {}",
                nochange.stdout
            ));
        }
        if r.nochange_calls.is_none() {
            r.nochange_calls = Some(count_nochange(ctx, &file_arg)?);
        }
        let mut changed = bs_lab.clone();
        changed.changed = Some(size / 2);
        std::fs::write(&file, plain_topology(&changed)).map_err(|e| e.to_string())?;
        let change = ctx.run_bs(
            &["apply", &file_arg],
            &[],
            "benchscale one-node change apply",
        )?;
        ctx.expect_running(&bs_lab.lab, size)?;
        let destroy = ctx.removed(
            ctx.run_bs_raw(&["destroy", &file_arg], &[])?,
            "benchscale destroy",
            &bs_lab.lab,
        )?;
        ctx.expect_running(&bs_lab.lab, 0)?;
        say(format!(
            "{tag} benchscale: cold {:.2}s, no-change {:.2}s, change {:.2}s, destroy {:.2}s, peak RSS {:.1} MiB",
            cold.secs(),
            nochange.secs(),
            change.secs(),
            destroy.secs(),
            cold.rss_mib()
        ));
        r.bs_cold.push(cold.secs());
        r.bs_nochange.push(nochange.secs());
        r.bs_change.push(change.secs());
        r.bs_destroy.push(destroy.secs());
        rss(&mut r.bs_rss, "cold apply", &cold);
        rss(&mut r.bs_rss, "no-change apply", &nochange);
        rss(&mut r.bs_rss, "change apply", &change);
        rss(&mut r.bs_rss, "destroy", &destroy);
        ctx.rt.block_on(docker::settle());

        // the floor
        let floor_lab = ctx.plain("floor", size)?;
        let create = ctx
            .rt
            .block_on(docker::floor_create(&ctx.docker, &floor_lab))?;
        ctx.expect_running(&floor_lab.lab, size)?;
        let (remove, stale) = ctx
            .rt
            .block_on(docker::floor_remove(&ctx.docker, &floor_lab))?;
        for s in stale {
            ctx.incident(s);
        }
        say(format!(
            "{tag} floor: create {:.2}s, remove {:.2}s",
            create.as_secs_f64(),
            remove.as_secs_f64()
        ));
        r.floor_create.push(create.as_secs_f64());
        r.floor_remove.push(remove.as_secs_f64());
        ctx.rt.block_on(docker::settle());

        // docker-compose
        let (compose_lab, compose) = ctx.compose_lab(size)?;
        let project = compose_lab.lab.as_str();
        let up = ctx.run_compose(&compose, project, &["up", "-d"], None)?;
        ctx.expect_running(project, size)?;
        let up2 = ctx.run_compose(&compose, project, &["up", "-d"], None)?;
        let down = ctx.removed(
            ctx.run_compose_raw(&compose, project, &["down", "-t", "0"], None)?,
            "docker-compose down",
            project,
        )?;
        ctx.expect_running(project, 0)?;
        say(format!(
            "{tag} compose: up {:.2}s, second up {:.2}s, down {:.2}s",
            up.secs(),
            up2.secs(),
            down.secs()
        ));
        r.compose_up.push(up.secs());
        r.compose_up2.push(up2.secs());
        r.compose_down.push(down.secs());
        r.compose_rss = r.compose_rss.max(up.max_rss_kib);
        ctx.rt.block_on(docker::settle());
    }
    Ok(())
}

/// Starts a proxy on the harness's socket.
pub(crate) fn proxy(ctx: &Ctx) -> Result<proxy::Proxy, String> {
    proxy::Proxy::start(
        &ctx.rt,
        &ctx.scratch.join("docker-proxy.sock"),
        Path::new(DOCKER_SOCKET),
    )
    .map_err(|e| format!("start the proxy: {e}"))
}

/// A no-change apply through the proxy: its calls, and how many mutate.
pub(crate) fn count_nochange(
    ctx: &Ctx,
    file: &str,
) -> Result<(BTreeMap<String, usize>, usize), String> {
    let proxy = proxy(ctx)?;
    let url = proxy.url();
    let run = ctx.run_bs(
        &["apply", file],
        &[("BENCHSCALE_DOCKER_HOST", url.as_str())],
        "benchscale no-change apply (through the proxy)",
    )?;
    if !run.stdout.contains("no changes") {
        return Err(format!(
            "the counted apply changed something: {}",
            run.stdout
        ));
    }
    let calls = proxy.take();
    let mutating = calls.iter().filter(|c| c.mutating()).count();
    let mut by_key = BTreeMap::new();
    for c in &calls {
        *by_key.entry(c.key()).or_insert(0) += 1;
    }
    Ok((by_key, mutating))
}
