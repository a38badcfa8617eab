//! Probes: one task per running container that has any, running the startup
//! probe first, then liveness and readiness side by side, and publishing the
//! outcome in a table the pod workers read. A flip wakes the agent so the
//! Ready condition and liveness restarts follow within one probe period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::resource::types::{Container, HttpGetAction, IntOrString, Probe, Scheme};
use crate::runtime::DynRuntime;

mod grpc;

/// What the probes last concluded about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStatus {
    /// The startup probe has passed (or there is none).
    pub started: bool,
    /// The readiness probe passes (or there is none and the container started).
    pub ready: bool,
    /// Set when liveness or startup failed past its threshold: why.
    pub failed: Option<String>,
    /// The last readiness failure, for an event.
    pub unready_reason: Option<String>,
}

/// Probe results by container id, shared by the probe tasks and the pod workers.
#[derive(Clone, Default)]
pub struct ProbeTable {
    inner: Arc<Mutex<HashMap<String, ProbeStatus>>>,
}

impl ProbeTable {
    /// The status of a container, `None` when no probe task runs for it.
    pub fn get(&self, id: &str) -> Option<ProbeStatus> {
        self.inner.lock().ok()?.get(id).cloned()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ProbeStatus)) -> bool {
        let Ok(mut map) = self.inner.lock() else {
            return false;
        };
        let entry = map.entry(id.to_string()).or_default();
        let before = entry.clone();
        f(entry);
        *entry != before
    }

    /// Forgets a container.
    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(id);
        }
    }
}

/// Where a probe connects for a container without an address of its own.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The container's engine id.
    pub id: String,
    /// Its IP, or the host's loopback for host processes.
    pub ip: String,
    /// Its declared ports, to resolve named probe ports.
    pub container: Container,
}

/// Whether the container needs a probe task at all.
pub fn has_probes(c: &Container) -> bool {
    c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
}

/// Runs the probes of one container until aborted.
pub async fn run(
    target: ProbeTarget,
    runtime: DynRuntime,
    table: ProbeTable,
    wake: Arc<Notify>,
    http: reqwest::Client,
) {
    let c = target.container.clone();
    let changed = |f: &dyn Fn(&mut ProbeStatus)| {
        if table.update(&target.id, f) {
            wake.notify_one();
        }
    };
    changed(&|s| {
        s.started = c.startup_probe.is_none();
        s.ready = c.startup_probe.is_none() && c.readiness_probe.is_none();
    });
    if let Some(p) = &c.startup_probe {
        let mut fails = 0;
        tokio::time::sleep(secs(p.initial_delay_seconds.unwrap_or(0))).await;
        loop {
            match check(p, &target, &runtime, &http).await {
                Ok(()) => break,
                Err(why) => {
                    fails += 1;
                    if fails >= p.failure_threshold.unwrap_or(3).max(1) {
                        let msg = format!("Startup probe failed: {why}");
                        changed(&|s| s.failed = Some(msg.clone()));
                        return;
                    }
                }
            }
            tokio::time::sleep(secs(p.period_seconds.unwrap_or(10))).await;
        }
        changed(&|s| {
            s.started = true;
            s.ready = c.readiness_probe.is_none();
        });
    }
    let liveness = async {
        let Some(p) = &c.liveness_probe else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(secs(p.initial_delay_seconds.unwrap_or(0))).await;
        let mut fails = 0;
        loop {
            match check(p, &target, &runtime, &http).await {
                Ok(()) => fails = 0,
                Err(why) => {
                    fails += 1;
                    ::metrics::counter!(crate::agent::metrics::PROBE_FAILURES_TOTAL, "probe" => "liveness")
                        .increment(1);
                    if fails >= p.failure_threshold.unwrap_or(3).max(1) {
                        let msg = format!("Liveness probe failed: {why}");
                        changed(&|s| s.failed = Some(msg.clone()));
                        return std::future::pending::<()>().await;
                    }
                }
            }
            tokio::time::sleep(secs(p.period_seconds.unwrap_or(10))).await;
        }
    };
    let readiness = async {
        let Some(p) = &c.readiness_probe else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(secs(p.initial_delay_seconds.unwrap_or(0))).await;
        let (mut fails, mut oks) = (0u32, 0u32);
        loop {
            match check(p, &target, &runtime, &http).await {
                Ok(()) => {
                    fails = 0;
                    oks += 1;
                    if oks >= p.success_threshold.unwrap_or(1).max(1) {
                        changed(&|s| {
                            s.ready = true;
                            s.unready_reason = None;
                        });
                    }
                }
                Err(why) => {
                    oks = 0;
                    fails += 1;
                    ::metrics::counter!(crate::agent::metrics::PROBE_FAILURES_TOTAL, "probe" => "readiness")
                        .increment(1);
                    if fails >= p.failure_threshold.unwrap_or(3).max(1) {
                        let msg = format!("Readiness probe failed: {why}");
                        changed(&|s| {
                            s.ready = false;
                            s.unready_reason = Some(msg.clone());
                        });
                    }
                }
            }
            tokio::time::sleep(secs(p.period_seconds.unwrap_or(10))).await;
        }
    };
    tokio::join!(liveness, readiness);
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Runs a probe once; `Err` says why it failed.
async fn check(
    p: &Probe,
    t: &ProbeTarget,
    runtime: &DynRuntime,
    http: &reqwest::Client,
) -> Result<(), String> {
    let timeout = secs(p.timeout_seconds.unwrap_or(1).max(1));
    if let Some(h) = &p.http_get {
        let port = resolve_port(&h.port, &t.container)?;
        return http_get(h, port, &t.ip, http, timeout).await;
    }
    if let Some(tcp) = &p.tcp_socket {
        let port = resolve_port(&tcp.port, &t.container)?;
        let host = tcp.host.clone().unwrap_or_else(|| t.ip.clone());
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: timed out after {timeout:?}")),
        };
    }
    if let Some(g) = &p.grpc {
        // Checked as 1..=65535 when the pod was stored.
        let addr = format!("{}:{}", t.ip, g.port);
        return grpc::check(&addr, g.service.as_deref().unwrap_or_default(), timeout).await;
    }
    if let Some(e) = &p.exec {
        return exec(runtime, &t.id, &e.command, timeout).await;
    }
    Err("the probe has no handler".into())
}

/// An HTTP GET against the container (its `ip` unless the action names a
/// host); a status in 200..400 is success. Shared with lifecycle hooks.
pub(super) async fn http_get(
    h: &HttpGetAction,
    port: u16,
    ip: &str,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<(), String> {
    let host = h.host.clone().unwrap_or_else(|| ip.to_string());
    let scheme = match h.scheme.unwrap_or_default() {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let path = h.path.clone().unwrap_or_else(|| "/".into());
    let url = format!("{scheme}://{host}:{port}{path}");
    let mut req = http.get(&url).timeout(timeout);
    for hd in &h.http_headers {
        req = req.header(&hd.name, &hd.value);
    }
    match req.send().await {
        Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
        Ok(r) => Err(format!("HTTP probe failed with statuscode: {}", r.status())),
        Err(e) => Err(format!("Get {url:?}: {e}")),
    }
}

/// A command in the container; exit status 0 is success. Shared with
/// lifecycle hooks.
pub(super) async fn exec(
    runtime: &DynRuntime,
    id: &str,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    match runtime.exec(id, command, timeout).await {
        Ok(out) if out.exit_code == 0 => Ok(()),
        Ok(out) => Err(format!(
            "command {command:?} exited with {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.output).trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// A port number, or the number of the container's port of that name.
pub(super) fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} out of range")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .ok_or_else(|| format!("container {} has no port named {name:?}", c.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::ContainerPort;

    #[test]
    fn named_ports_resolve() {
        let c = Container {
            name: "web".into(),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        let err = resolve_port(&IntOrString::String("grpc".into()), &c).unwrap_err();
        assert!(err.contains("grpc"), "{err}");
    }

    #[test]
    fn table_reports_changes_only() {
        let t = ProbeTable::default();
        assert!(t.update("a", |s| s.ready = true));
        assert!(!t.update("a", |s| s.ready = true));
        assert_eq!(t.get("a").map(|s| s.ready), Some(true));
        t.remove("a");
        assert!(t.get("a").is_none());
    }
}
