//! Tiny VMs: benchscale against the libvirt floor.

use super::*;

/// The results of one guest count, and the error that stopped it early.
pub(crate) fn vms(ctx: &Ctx, n: usize) -> (VmResult, Option<String>) {
    let mut r = VmResult {
        vms: n,
        ..VmResult::default()
    };
    let error = vms_into(ctx, n, &mut r).err();
    (r, error)
}

pub(crate) fn vms_into(ctx: &Ctx, n: usize, r: &mut VmResult) -> Result<(), String> {
    let overlays = ctx.scratch.join("vm-overlays");
    let overlay_env = overlays.display().to_string();
    let kvm = Path::new("/dev/kvm").exists();
    for run in 1..=ctx.settings.runs {
        let tag = format!("[{n} VMs, run {run}/{}]", ctx.settings.runs);
        let k = ctx.counter.fetch_add(1, Ordering::SeqCst);
        let lab = TinyVms::new(&format!("bench-vm{n}-{}{k}", ctx.tag), n);
        let mut floor_lab = TinyVms::new(&format!("bench-vmfloor{n}-{}{k}", ctx.tag), n);
        floor_lab.third_octet = 1;
        let file = ctx.write(&format!("{}.yaml", lab.lab), &tiny_vm_topology(&lab))?;
        let file_arg = file.display().to_string();
        let env = [("BENCHSCALE_OVERLAY_DIR", overlay_env.as_str())];
        let up = ctx.run_bs(&["apply", &file_arg], &env, "benchscale VM apply")?;
        let logs: Vec<PathBuf> = (0..n)
            .map(|i| {
                overlays
                    .join(&lab.lab)
                    .join(format!("{}.console.log", TinyVms::vm_name(i)))
            })
            .collect();
        if let Some(boot) = vm::boot_uptime(&logs) {
            r.bs_boot.push(boot);
        }
        let first = benchscale::backend::resource_name(&lab.lab, &TinyVms::vm_name(0));
        r.domain_type = vm::domain_type_of(&first).unwrap_or_else(|| "qemu".into());
        let down = ctx.run_bs(&["destroy", &file_arg], &env, "benchscale VM destroy")?;
        r.bs.push(up.secs());
        r.bs_destroy.push(down.secs());
        r.bs_rss = r.bs_rss.max(up.max_rss_kib);
        let mut line = format!(
            "{tag} benchscale: apply {:.2}s (domain type {}), destroy {:.2}s",
            up.secs(),
            r.domain_type,
            down.secs()
        );
        if kvm {
            let preset = [
                ("BENCHSCALE_OVERLAY_DIR", overlay_env.as_str()),
                ("BENCHSCALE_LIBVIRT_DOMAIN_TYPE", r.domain_type.as_str()),
            ];
            let up = ctx.run_bs(
                &["apply", &file_arg],
                &preset,
                "benchscale VM apply (type preset)",
            )?;
            ctx.run_bs(&["destroy", &file_arg], &preset, "benchscale VM destroy")?;
            r.bs_preset.push(up.secs());
            line.push_str(&format!("; domain type preset: apply {:.2}s", up.secs()));
        }
        let floor = vm::VmFloor::new(&floor_lab, &ctx.scratch.join("vm-floor"), &r.domain_type)?;
        let result = floor.up(LIMIT);
        if let Some(boot) = vm::boot_uptime(&floor.logs()) {
            r.floor_boot.push(boot);
        }
        let down = floor.down();
        let up = result?;
        let down = down?;
        r.floor.push(up.as_secs_f64());
        r.floor_down.push(down.as_secs_f64());
        say(format!(
            "{line}; floor: up {:.2}s, down {:.2}s",
            up.as_secs_f64(),
            down.as_secs_f64()
        ));
    }
    Ok(())
}
