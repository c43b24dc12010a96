//! Stage: make a new instance when the plan creates or replaces the node.

use super::{Flow, Job, fail};
use crate::backend::{Backend, ContainerRequest, CreateRequest, VmRequest};
use crate::exec::Event;
use crate::exec::node::JobCtx;
use crate::lifecycle::Stage;
use crate::plan::hash::node_hash;
use crate::topology::model::{Node, NodeSpec};

pub(super) async fn run<B: Backend>(ctx: &JobCtx<B>, job: &mut Job<'_>) -> Flow {
    if !job.fresh() {
        // The instance exists; dependents waiting for `created` may go.
        job.tx
            .send_replace(crate::exec::node::Progress::At(Stage::Created));
        return Ok(());
    }
    let request = create_request(ctx, job.node).map_err(|e| fail(ctx, job, e))?;
    let created = {
        let _permit = ctx.semaphore.acquire().await;
        ctx.backend.create(&request).await
    };
    match created {
        Ok(id) => job.outcome.id = Some(id),
        Err(e) => return Err(fail(ctx, job, format!("create: {e}"))),
    }
    // A new instance has run no step and captured nothing.
    job.outcome.outputs.clear();
    job.outcome.steps_done.clear();
    job.outcome.health = crate::lifecycle::Health::Unknown;
    ctx.events.send(Event::NodeCreated {
        name: job.name().to_string(),
    });
    job.reach(Stage::Created);
    Ok(())
}

/// The backend's request for the node, every `${{ ... }}` substituted.
fn create_request<B>(ctx: &JobCtx<B>, node: &Node) -> Result<CreateRequest, String> {
    let values = ctx.values();
    let (command, env, vm, container) = match &node.spec {
        NodeSpec::Container(c) => {
            let command = match &c.command {
                Some(args) => Some(
                    args.iter()
                        .map(|a| values.substitute(a))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => None,
            };
            let env = c
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), values.substitute(v)?)))
                .collect::<Result<Vec<_>, String>>()?;
            let container = ContainerRequest {
                memory_mib: c.memory_mib,
                // Docker takes whole billionths; 0.5 CPUs is 500000000.
                nano_cpus: c.cpus.map(|cpus| (cpus * 1e9).round() as i64),
                volumes: c.volumes.clone(),
                read_only: c.read_only,
                tmpfs: c.tmpfs.clone(),
                cap_add: c.cap_add.clone(),
                privileged: c.privileged,
                dns: c.dns.clone(),
            };
            (command, env, None, Some(container))
        }
        NodeSpec::Vm(v) => {
            let user_data = v
                .user_data
                .as_deref()
                .map(|u| values.substitute(u))
                .transpose()?;
            let env = v
                .env
                .iter()
                .map(|(k, v)| {
                    let value = values.substitute(v)?;
                    // A literal value was checked when the file was
                    // loaded; one made by a substitution is checked here.
                    if value.contains(['\n', '\r', '\0']) {
                        return Err(format!(
                            "env `{k}` spans lines once substituted, which /etc/environment cannot hold"
                        ));
                    }
                    Ok((k.clone(), value))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let vm = VmRequest {
                memory_mib: v.memory_mib,
                vcpus: v.vcpus,
                disk_gib: v.disk_gib,
                kernel: v.boot.as_ref().map(|b| b.kernel.clone()),
                initrd: v.boot.as_ref().and_then(|b| b.initrd.clone()),
                cmdline: v.boot.as_ref().and_then(|b| b.cmdline.clone()),
                user_data,
                display: v.display,
            };
            (None, env, Some(vm), None)
        }
    };
    let networks = node
        .networks
        .iter()
        .map(|a| {
            let id = ctx
                .network_ids
                .get(&a.network)
                .cloned()
                .ok_or_else(|| format!("network `{}` was not created", a.network))?;
            Ok((a.network.clone(), id, a.ip))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(CreateRequest {
        lab: ctx.topology.name.clone(),
        node: node.name.clone(),
        image: node.image.clone(),
        command,
        env,
        networks,
        spec_hash: node_hash(node),
        vm,
        container,
    })
}
