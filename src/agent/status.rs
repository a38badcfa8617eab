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

/// Whether the stored status says the pod has finished for good.
pub fn is_terminal(prev: Option<&Value>) -> bool {
    matches!(
        prev.and_then(|s| s.get("phase")).and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's whole status from its containers' views: the phase (the stored
/// one, once the pod has finished), conditions that keep their transition
/// time while they hold, the pod and host addresses, where each container
/// port is published, the start time and each container's status; the
/// reason and message a controller wrote on a finished pod are kept.
/// Returns it with whether the pod is Ready.
pub fn pod_status(
    views: &[ContainerView<'_>],
    prev: Option<&Value>,
    policy: RestartPolicy,
    host_ip: &str,
    now: &str,
) -> (Value, bool) {
    let terminal = is_terminal(prev);
    let phase = if terminal {
        prev.and_then(|s| s.get("phase"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        phase(views, policy).to_string()
    };
    let statuses: Vec<Value> = views.iter().map(container_status).collect();
    let all_ready = !statuses.is_empty()
        && statuses
            .iter()
            .all(|s| s.get("ready") == Some(&Value::Bool(true)));
    let ready = phase == "Running" && all_ready;
    let pod_ip = views
        .iter()
        .find_map(|v| v.current.and_then(|c| c.ip.clone()))
        .unwrap_or_else(|| host_ip.to_string());
    let mut s = Map::new();
    s.insert("phase".into(), json!(phase));
    s.insert(
        "conditions".into(),
        json!([
            condition(prev, "PodScheduled", true, now),
            condition(prev, "Initialized", true, now),
            condition(prev, "ContainersReady", ready, now),
            condition(prev, "Ready", ready, now),
        ]),
    );
    s.insert("hostIP".into(), json!(host_ip));
    s.insert("podIP".into(), json!(pod_ip));
    // Where each container port is published on the host: other nodes'
    // load balancers connect there (not part of Kubernetes' PodStatus).
    let mut mappings: Vec<Value> = views
        .iter()
        .filter_map(|v| v.current)
        .flat_map(|c| c.ports.iter())
        .map(|p| json!({"containerPort": p.container_port, "hostPort": p.host_port}))
        .collect();
    mappings.dedup();
    if !mappings.is_empty() {
        s.insert("portMappings".into(), Value::Array(mappings));
    }
    let start = prev
        .and_then(|p| p.get("startTime"))
        .cloned()
        .unwrap_or_else(|| json!(now));
    s.insert("startTime".into(), start);
    s.insert("containerStatuses".into(), json!(statuses));
    // Carry over fields other components own (a controller's reason, ...).
    if terminal && let Some(Value::Object(p)) = prev {
        for k in ["reason", "message"] {
            if let Some(v) = p.get(k) {
                s.insert(k.into(), v.clone());
            }
        }
    }
    (Value::Object(s), ready)
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

    #[test]
    fn pod_status_whole() {
        let spec = Container {
            name: "main".into(),
            ..Default::default()
        };
        let mut running = info(ContainerState::Running);
        running.ip = Some("172.17.0.5".into());
        running.ports = vec![crate::runtime::PortBinding {
            container_port: 80,
            host_port: 31000,
            host_ip: String::new(),
        }];
        let views = [view(&spec, Some(&running))];
        let (st, ready) = pod_status(&views, None, RestartPolicy::Always, "10.0.0.1", "T1");
        assert!(ready);
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIP"], "172.17.0.5");
        assert_eq!(st["hostIP"], "10.0.0.1");
        assert_eq!(st["startTime"], "T1");
        assert_eq!(
            st["portMappings"],
            json!([{"containerPort": 80, "hostPort": 31000}])
        );
        assert_eq!(st["conditions"][3]["type"], "Ready");
        assert_eq!(st["conditions"][3]["status"], "True");

        // Again later: the same status, transition and start times kept.
        let (again, _) = pod_status(&views, Some(&st), RestartPolicy::Always, "10.0.0.1", "T2");
        assert_eq!(again, st);

        // A finished pod keeps its phase and the controller's reason, and
        // a process without its own address reports the host's.
        let prev =
            json!({"phase": "Failed", "reason": "NodeLost", "message": "gone", "startTime": "T0"});
        let idle = [view(&spec, None)];
        let (done, ready) = pod_status(&idle, Some(&prev), RestartPolicy::Always, "10.0.0.1", "T3");
        assert!(!ready);
        assert_eq!(done["phase"], "Failed");
        assert_eq!(done["reason"], "NodeLost");
        assert_eq!(done["message"], "gone");
        assert_eq!(done["startTime"], "T0");
        assert_eq!(done["podIP"], "10.0.0.1");
        assert!(done.get("portMappings").is_none());
    }
}
