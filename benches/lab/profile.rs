//! Where the time goes: each tool once through the recording proxy, and
//! a sweep of `--parallelism`.

use super::*;

pub(crate) fn profile(ctx: &Ctx, size: usize) -> Result<Profile, String> {
    let mut p = Profile {
        size,
        ..Profile::default()
    };
    say(format!("[profile, {size} containers] through the proxy"));
    let proxy = proxy(ctx)?;
    let url = proxy.url();
    let host = [("BENCHSCALE_DOCKER_HOST", url.as_str())];
    let timeline = |label: &str, m: &Measured| Timeline {
        label: label.into(),
        wall: m.wall,
        calls: proxy.take(),
        t0: m.started,
        end: m.ended,
    };

    let bs_lab = ctx.plain("bs", size)?;
    let file = ctx.write(&format!("{}.yaml", bs_lab.lab), &plain_topology(&bs_lab))?;
    let file_arg = file.display().to_string();
    let m = ctx.run_bs(
        &["apply", &file_arg],
        &host,
        "benchscale cold apply (proxy)",
    )?;
    p.timelines.push(timeline("benchscale cold apply", &m));
    let m = ctx.run_bs(
        &["apply", &file_arg],
        &host,
        "benchscale no-change apply (proxy)",
    )?;
    p.timelines.push(timeline("benchscale no-change apply", &m));
    let m = ctx.removed(
        ctx.run_bs_raw(&["destroy", &file_arg], &host)?,
        "benchscale destroy (proxy)",
        &bs_lab.lab,
    )?;
    p.timelines.push(timeline("benchscale destroy", &m));
    ctx.rt.block_on(docker::settle());

    let floor_lab = ctx.plain("floor", size)?;
    let via = docker::client(&url, &ctx.api)?;
    let t0 = Instant::now();
    let took = ctx.rt.block_on(docker::floor_create(&via, &floor_lab))?;
    p.timelines.push(Timeline {
        label: "floor create".into(),
        wall: took,
        calls: proxy.take(),
        t0,
        end: Instant::now(),
    });
    let t0 = Instant::now();
    let (took, stale) = ctx.rt.block_on(docker::floor_remove(&via, &floor_lab))?;
    for s in stale {
        ctx.incident(s);
    }
    p.timelines.push(Timeline {
        label: "floor remove".into(),
        wall: took,
        calls: proxy.take(),
        t0,
        end: Instant::now(),
    });
    ctx.rt.block_on(docker::settle());

    let (compose_lab, compose) = ctx.compose_lab(size)?;
    let project = compose_lab.lab.as_str();
    let m = ctx.run_compose(&compose, project, &["up", "-d"], Some(&url))?;
    p.timelines.push(timeline("compose up -d", &m));
    let m = ctx.removed(
        ctx.run_compose_raw(&compose, project, &["down", "-t", "0"], Some(&url))?,
        "docker-compose down (proxy)",
        project,
    )?;
    p.timelines.push(timeline("compose down -t 0", &m));
    drop(proxy);
    ctx.rt.block_on(docker::settle());

    // The floor again without the proxy, then the parallelism sweep.
    for _ in 0..ctx.settings.runs {
        let floor_lab = ctx.plain("floor", size)?;
        let took = ctx
            .rt
            .block_on(docker::floor_create(&ctx.docker, &floor_lab))?;
        p.floor.push(took.as_secs_f64());
        let (_, stale) = ctx
            .rt
            .block_on(docker::floor_remove(&ctx.docker, &floor_lab))?;
        for s in stale {
            ctx.incident(s);
        }
        ctx.rt.block_on(docker::settle());
    }
    for &parallelism in &ctx.settings.sweep {
        let mut samples = Samples::default();
        let n = parallelism.to_string();
        for _ in 0..ctx.settings.runs {
            let lab = ctx.plain("bs", size)?;
            let file = ctx.write(&format!("{}.yaml", lab.lab), &plain_topology(&lab))?;
            let file_arg = file.display().to_string();
            let m = ctx.run_bs(
                &["apply", "--parallelism", &n, &file_arg],
                &[],
                "benchscale cold apply (sweep)",
            )?;
            ctx.removed(
                ctx.run_bs_raw(&["destroy", &file_arg], &[])?,
                "benchscale destroy (sweep)",
                &lab.lab,
            )?;
            samples.push(m.secs());
            ctx.rt.block_on(docker::settle());
        }
        say(format!(
            "[profile, {size} containers] --parallelism {parallelism}: {:.2}s",
            samples.median().unwrap_or_default()
        ));
        p.sweep.push((parallelism, samples));
    }
    Ok(p)
}
