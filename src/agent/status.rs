//! Pod status in Kubernetes' shape, computed from what the runtime and the
//! probes report. Pure functions: the same observations give the same JSON,
//! so the agent can tell "nothing changed" and skip the Raft write.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::probe::ProbeStatus;
use crate::resource::time::rfc3339;
use crate::resource::types::{Container, RestartPolicy};
use crate::runtime::{ContainerInfo, ContainerState};

/// Everything known about one container of a pod during a sync.
pub struct ContainerView<'a> {
    /// The container as the pod spec declares it.
    pub spec: &'a Container,
    /// Its newest runtime container, if any.
    pub current: Option<&'a ContainerInfo>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// What its probes say.
    pub probe: Option<ProbeStatus>,
    /// Why it is waiting (reason, message), when the agent holds it back.
    pub waiting: Option<(String, String)>,
    /// Its previous run, as a `terminated` state object.
    pub last_terminated: Option<Value>,
    /// Whether an exited container will be started again.
    pub will_restart: bool,
    /// `docker` or `process`, the scheme of container ids.
    pub runtime: &'a str,
}

/// Formats a time as Kubernetes does.
pub fn time(t: SystemTime) -> String {
    rfc3339(
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// Whether a container that exited with `code` is started again under `policy`.
pub fn should_restart(policy: RestartPolicy, code: Option<i64>) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != Some(0),
        RestartPolicy::Never => false,
    }
}

/// The `terminated` state object of an exited container.
pub fn terminated(c: &ContainerInfo, runtime: &str) -> Option<Value> {
    let ContainerState::Exited {
        exit_code,
        oom_killed,
        finished_at,
    } = &c.state
    else {
        return None;
    };
    let reason = match (oom_killed, exit_code) {
        (true, _) => "OOMKilled",
        (false, Some(0)) => "Completed",
        (false, Some(_)) => "Error",
        (false, None) => "ContainerStatusUnknown",
    };
    let mut t = Map::new();
    t.insert("exitCode".into(), json!(exit_code.unwrap_or(137)));
    t.insert("reason".into(), json!(reason));
    if let Some(s) = c.started_at {
        t.insert("startedAt".into(), json!(time(s)));
    }
    if let Some(f) = finished_at {
        t.insert("finishedAt".into(), json!(time(*f)));
    }
    t.insert("containerID".into(), json!(format!("{runtime}://{}", c.id)));
    Some(Value::Object(t))
}

/// One entry of `status.containerStatuses`.
pub fn container_status(v: &ContainerView<'_>) -> Value {
    // Until its probes have reported, a container is only as ready as a
    // container without those probes would be.
    let probe = v.probe.clone().unwrap_or(ProbeStatus {
        started: v.spec.startup_probe.is_none(),
        ready: v.spec.startup_probe.is_none() && v.spec.readiness_probe.is_none(),
        ..Default::default()
    });
    let running = matches!(v.current.map(|c| &c.state), Some(ContainerState::Running));
    let state = match (&v.waiting, v.current) {
        (Some((reason, message)), _) => json!({"waiting": {"reason": reason, "message": message}}),
        (None, Some(c)) => match &c.state {
            ContainerState::Running => {
                json!({"running": {"startedAt": c.started_at.map(time)}})
            }
            ContainerState::Created => json!({"waiting": {"reason": "ContainerCreating"}}),
            ContainerState::Exited { .. } => match terminated(c, v.runtime) {
                Some(t) => json!({ "terminated": t }),
                None => json!({"waiting": {"reason": "ContainerCreating"}}),
            },
        },
        (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let mut s = Map::new();
    s.insert("name".into(), json!(v.spec.name));
    s.insert("image".into(), json!(v.spec.image));
    s.insert("state".into(), state);
    if let Some(last) = &v.last_terminated {
        s.insert("lastState".into(), json!({ "terminated": last }));
    }
    s.insert(
        "ready".into(),
        json!(running && probe.started && probe.ready),
    );
    s.insert("started".into(), json!(running && probe.started));
    s.insert("restartCount".into(), json!(v.restarts));
    if let Some(c) = v.current {
        s.insert(
            "containerID".into(),
            json!(format!("{}://{}", v.runtime, c.id)),
        );
    }
    Value::Object(s)
}

/// The pod's phase from its containers (Kubernetes' rules): Pending until
/// some container ran; Succeeded or Failed once every container exited for
/// good; Running otherwise.
pub fn phase(views: &[ContainerView<'_>], policy: RestartPolicy) -> &'static str {
    let ever_ran = views.iter().any(|v| {
        v.restarts > 0
            || matches!(
                v.current.map(|c| &c.state),
                Some(ContainerState::Running | ContainerState::Exited { .. })
            )
    });
    if !ever_ran {
        return "Pending";
    }
    let finished: Option<Vec<Option<i64>>> = views
        .iter()
        .map(|v| match v.current.map(|c| &c.state) {
            Some(ContainerState::Exited { exit_code, .. }) if !v.will_restart => Some(*exit_code),
            _ => None,
        })
        .collect();
    match finished {
        Some(codes) if policy != RestartPolicy::Always => {
            if codes.iter().all(|c| *c == Some(0)) {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        _ => "Running",
    }
}

/// Builds a condition, keeping the previous transition time when its status is unchanged.
pub fn condition(prev: Option<&Value>, kind: &str, ok: bool, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .unwrap_or(now)
        .to_string();
    json!({"type": kind, "status": status, "lastTransitionTime": since})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info(state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "n".into(),
            image: "i".into(),
            labels: BTreeMap::new(),
            state,
            started_at: Some(UNIX_EPOCH),
            created_at: None,
            ip: None,
            ports: Vec::new(),
        }
    }

    fn exited(code: i64, oom: bool) -> ContainerState {
        ContainerState::Exited {
            exit_code: Some(code),
            oom_killed: oom,
            finished_at: Some(UNIX_EPOCH),
        }
    }

    fn view<'a>(spec: &'a Container, cur: Option<&'a ContainerInfo>) -> ContainerView<'a> {
        ContainerView {
            spec,
            current: cur,
            restarts: 0,
            probe: None,
            waiting: None,
            last_terminated: None,
            will_restart: false,
            runtime: "docker",
        }
    }

    #[test]
    fn phases_follow_kubernetes() {
        let spec = Container::default();
        assert_eq!(
            phase(&[view(&spec, None)], RestartPolicy::Always),
            "Pending"
        );
        let run = info(ContainerState::Running);
        assert_eq!(
            phase(&[view(&spec, Some(&run))], RestartPolicy::Never),
            "Running"
        );
        let ok = info(exited(0, false));
        assert_eq!(
            phase(&[view(&spec, Some(&ok))], RestartPolicy::Never),
            "Succeeded"
        );
        let bad = info(exited(1, false));
        assert_eq!(
            phase(&[view(&spec, Some(&bad))], RestartPolicy::Never),
            "Failed"
        );
        let mut restarting = view(&spec, Some(&bad));
        restarting.will_restart = true;
        assert_eq!(phase(&[restarting], RestartPolicy::Always), "Running");
        // One container still running keeps the pod Running.
        assert_eq!(
            phase(
                &[view(&spec, Some(&ok)), view(&spec, Some(&run))],
                RestartPolicy::Never
            ),
            "Running"
        );
    }

    #[test]
    fn oom_and_errors_are_named() {
        let t = terminated(&info(exited(137, true)), "docker").unwrap();
        assert_eq!(t["reason"], "OOMKilled");
        let t = terminated(&info(exited(3, false)), "process").unwrap();
        assert_eq!(t["reason"], "Error");
        assert_eq!(t["exitCode"], 3);
        assert_eq!(t["containerID"], "process://abc");
    }

    #[test]
    fn waiting_reason_wins_and_ready_needs_probe() {
        let spec = Container::default();
        let run = info(ContainerState::Running);
        let mut v = view(&spec, Some(&run));
        v.probe = Some(ProbeStatus {
            started: true,
            ready: false,
            ..Default::default()
        });
        let s = container_status(&v);
        assert_eq!(s["ready"], false);
        assert_eq!(s["started"], true);
        // Probes that have not reported yet do not make it ready.
        let probed = Container {
            readiness_probe: Some(Default::default()),
            ..Default::default()
        };
        let mut fresh = view(&probed, Some(&run));
        fresh.probe = None;
        assert_eq!(container_status(&fresh)["ready"], false);
        v.waiting = Some(("CrashLoopBackOff".into(), "back-off 10s".into()));
        let s = container_status(&v);
        assert_eq!(s["state"]["waiting"]["reason"], "CrashLoopBackOff");
    }

    #[test]
    fn transition_time_kept_while_status_holds() {
        let prev = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "T0"}]});
        assert_eq!(
            condition(Some(&prev), "Ready", true, "T1")["lastTransitionTime"],
            "T0"
        );
        assert_eq!(
            condition(Some(&prev), "Ready", false, "T1")["lastTransitionTime"],
            "T1"
        );
    }
}
