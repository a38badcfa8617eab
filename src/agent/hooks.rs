//! Lifecycle hooks, as the kubelet runs them: `postStart` right after a
//! container starts (a failure kills the container, which then restarts
//! under its pod's policy), `preStop` before a running container is
//! stopped, inside the pod's grace period, whatever stops it: its pod
//! deleted or finished, a failed liveness probe, a changed spec.
//!
//! The preStop hook travels in a label of the container, with named ports
//! resolved, because a deleted pod's containers are stopped after the pod
//! is gone from the store.

use std::time::{Duration, Instant};

use tracing::warn;

use super::probe;
use crate::resource::types::{Container, IntOrString, LifecycleHandler};
use crate::runtime::{ContainerInfo, ContainerState, DynRuntime};

/// Label carrying a container's preStop hook as JSON.
pub const LABEL_PRE_STOP: &str = "io.shoal.pre-stop";

/// How long a postStart hook may run before it counts as failed (the
/// kubelet waits without bound; a hook that never ends would hold the
/// container in ContainerCreating for good).
const POST_START_TIMEOUT: Duration = Duration::from_secs(120);

/// What a stop gets after a preStop hook used up the grace period: the
/// kubelet's one-off two-second extension.
const AFTER_HOOK_GRACE: Duration = Duration::from_secs(2);

/// The container's postStart hook, if any.
fn post_start(c: &Container) -> Option<&LifecycleHandler> {
    c.lifecycle.as_ref()?.post_start.as_ref()
}

/// The label value carrying the container's preStop hook, its named port
/// resolved; `None` without a hook.
pub fn pre_stop_label(c: &Container) -> Option<String> {
    let mut h = c.lifecycle.as_ref()?.pre_stop.clone()?;
    if let Some(g) = &mut h.http_get
        && let IntOrString::String(_) = g.port
    {
        // Validation checked the name is one of the container's ports.
        let port = probe::resolve_port(&g.port, c).ok()?;
        g.port = IntOrString::Int(i32::from(port));
    }
    serde_json::to_string(&h).ok()
}

/// Runs a handler against the container `id` (reached at `ip` for
/// httpGet), for at most `timeout`.
pub async fn run(
    h: &LifecycleHandler,
    id: &str,
    ip: &str,
    runtime: &DynRuntime,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(s) = &h.sleep {
        let secs = u64::try_from(s.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return Ok(());
    }
    if let Some(e) = &h.exec {
        return probe::exec(runtime, id, &e.command, timeout).await;
    }
    if let Some(g) = &h.http_get {
        let port = match &g.port {
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| format!("port {n} out of range"))?
            }
            IntOrString::String(name) => return Err(format!("unresolved port name {name:?}")),
        };
        let run = probe::http_get(g, port, ip, http, timeout);
        return tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")));
    }
    Err("the hook has no handler".into())
}

/// Runs the container's postStart hook, if it has one, right after the
/// container `id` started; on failure the container is stopped (without
/// its preStop hook, as the kubelet kills it), to be restarted under its
/// pod's policy, and the failure is returned.
pub async fn after_start(
    c: &Container,
    id: &str,
    runtime: &DynRuntime,
    http: &reqwest::Client,
    grace: Duration,
) -> Option<String> {
    let h = post_start(c)?;
    let ip = match runtime.inspect(id).await {
        Ok(info) => info.ip.unwrap_or_else(|| "127.0.0.1".into()),
        Err(_) => "127.0.0.1".into(),
    };
    let why = run(h, id, &ip, runtime, http, POST_START_TIMEOUT)
        .await
        .err()?;
    if let Err(e) = runtime.stop(id, grace).await {
        warn!(container = %c.name, "stop after a failed postStart hook failed: {e}");
    }
    Some(why)
}

/// Runs a running container's preStop hook (from its label) within
/// `grace`; returns the grace left for the stop itself and, if the hook
/// failed, why.
pub async fn pre_stop(
    c: &ContainerInfo,
    grace: Duration,
    runtime: &DynRuntime,
    http: &reqwest::Client,
) -> (Duration, Option<String>) {
    if c.state != ContainerState::Running {
        return (grace, None);
    }
    let Some(json) = c.labels.get(LABEL_PRE_STOP) else {
        return (grace, None);
    };
    let h: LifecycleHandler = match serde_json::from_str(json) {
        Ok(h) => h,
        Err(e) => {
            warn!(container = %c.name, "unreadable preStop label, stopping without the hook: {e}");
            return (grace, Some(format!("unreadable preStop hook: {e}")));
        }
    };
    let ip = c.ip.as_deref().unwrap_or("127.0.0.1");
    let started = Instant::now();
    let failed = run(&h, &c.id, ip, runtime, http, grace).await.err();
    let left = grace
        .checked_sub(started.elapsed())
        .filter(|d| !d.is_zero())
        .unwrap_or(AFTER_HOOK_GRACE);
    (left, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::{ContainerPort, HttpGetAction, Lifecycle, SleepAction};

    #[test]
    fn the_label_resolves_named_ports() {
        let c = Container {
            name: "web".into(),
            ports: vec![ContainerPort {
                name: Some("admin".into()),
                container_port: 9000,
                ..Default::default()
            }],
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    http_get: Some(HttpGetAction {
                        port: IntOrString::String("admin".into()),
                        path: Some("/drain".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let label = pre_stop_label(&c).expect("a hook");
        let back: LifecycleHandler = serde_json::from_str(&label).unwrap();
        assert_eq!(back.http_get.unwrap().port, IntOrString::Int(9000));
        assert_eq!(pre_stop_label(&Container::default()), None);
        let sleeps = Container {
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction { seconds: 5 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            pre_stop_label(&sleeps).as_deref(),
            Some(r#"{"sleep":{"seconds":5}}"#)
        );
    }
}
