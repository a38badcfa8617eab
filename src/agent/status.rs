//! Pod status in Kubernetes' shape, computed from what the runtime and the
//! probes report. Pure functions: the same observations give the same JSON,
//! so the agent can tell "nothing changed" and skip the Raft write.

use std::time::{SystemTime, UNIX_EPOCH};

use super::probe::ProbeStatus;
use crate::resource::status::{
    Condition, ContainerState as Status, ContainerStatus, PodPhase, PodStatus, PortMapping,
    StateRunning, StateTerminated, StateWaiting,
};
use crate::resource::time::rfc3339;
use crate::resource::types::{Container, RestartPolicy};
use crate::runtime::{ContainerInfo, ContainerState};

/// What a container is to its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One of `containers`.
    App,
    /// An init container that runs to completion before the app.
    Init,
    /// An init container with `restartPolicy: Always`, running beside the app.
    Sidecar,
}

/// Everything known about one container of a pod during a sync.
pub struct ContainerView<'a> {
    /// The container as the pod spec declares it.
    pub spec: &'a Container,
    /// App container, init container or sidecar.
    pub role: Role,
    /// Its newest runtime container, if any.
    pub current: Option<&'a ContainerInfo>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// What its probes say.
    pub probe: Option<ProbeStatus>,
    /// Why it is waiting (reason, message), when the agent holds it back.
    pub waiting: Option<(String, String)>,
    /// Its previous run.
    pub last_terminated: Option<StateTerminated>,
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

/// The `terminated` state of an exited container.
pub fn terminated(c: &ContainerInfo, runtime: &str) -> Option<StateTerminated> {
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
    Some(StateTerminated {
        exit_code: exit_code.unwrap_or(137),
        reason: Some(reason.into()),
        started_at: c.started_at.map(time),
        finished_at: finished_at.map(time),
        container_id: Some(format!("{runtime}://{}", c.id)),
        message: c.termination_message.clone(),
        ..StateTerminated::default()
    })
}

fn waiting(reason: &str, message: Option<&str>) -> Status {
    Status {
        waiting: Some(StateWaiting {
            reason: Some(reason.into()),
            message: message.map(str::to_string),
            ..StateWaiting::default()
        }),
        ..Status::default()
    }
}

/// One entry of `status.containerStatuses`.
pub fn container_status(v: &ContainerView<'_>) -> ContainerStatus {
    // Until its probes have reported, a container is only as ready as a
    // container without those probes would be.
    let probe = v.probe.clone().unwrap_or(ProbeStatus {
        started: v.spec.startup_probe.is_none(),
        ready: v.spec.startup_probe.is_none() && v.spec.readiness_probe.is_none(),
        ..Default::default()
    });
    let running = matches!(v.current.map(|c| &c.state), Some(ContainerState::Running));
    let creating = || waiting("ContainerCreating", None);
    let state = match (&v.waiting, v.current) {
        (Some((reason, message)), _) => waiting(reason, Some(message)),
        (None, Some(c)) => match &c.state {
            ContainerState::Running => Status {
                running: Some(StateRunning {
                    started_at: c.started_at.map(time),
                    ..StateRunning::default()
                }),
                ..Status::default()
            },
            ContainerState::Created => creating(),
            ContainerState::Exited { .. } => match terminated(c, v.runtime) {
                Some(t) => Status {
                    terminated: Some(t),
                    ..Status::default()
                },
                None => creating(),
            },
        },
        (None, None) => creating(),
    };
    ContainerStatus {
        name: v.spec.name.clone(),
        image: v.spec.image.clone(),
        state,
        last_state: v.last_terminated.clone().map(|t| Status {
            terminated: Some(t),
            ..Status::default()
        }),
        ready: running && probe.started && probe.ready,
        started: Some(running && probe.started),
        restart_count: v.restarts,
        container_id: v.current.map(|c| format!("{}://{}", v.runtime, c.id)),
        ..ContainerStatus::default()
    }
}

fn exit_code(v: &ContainerView<'_>) -> Option<Option<i64>> {
    match v.current.map(|c| &c.state) {
        Some(ContainerState::Exited { exit_code, .. }) => Some(*exit_code),
        _ => None,
    }
}

/// Whether the pod's initialisation is over: its app containers have been
/// started, or every init container succeeded and every sidecar runs.
pub fn initialized(views: &[ContainerView<'_>]) -> bool {
    let app_ran = views.iter().any(|v| {
        v.role == Role::App
            && (v.current.is_some() || v.restarts > 0 || v.last_terminated.is_some())
    });
    app_ran
        || views.iter().all(|v| match v.role {
            Role::App => true,
            Role::Init => exit_code(v) == Some(Some(0)),
            Role::Sidecar => matches!(v.current.map(|c| &c.state), Some(ContainerState::Running)),
        })
}

/// The pod's phase from its containers (Kubernetes' rules): Failed once a
/// regular init container failed for good; Pending until some app
/// container ran; Succeeded or Failed once every app container exited for
/// good (sidecars do not count); Running otherwise.
pub fn phase(views: &[ContainerView<'_>], policy: RestartPolicy) -> PodPhase {
    let init_failed = views.iter().any(|v| {
        v.role == Role::Init && !v.will_restart && exit_code(v).is_some_and(|code| code != Some(0))
    });
    if init_failed {
        return PodPhase::Failed;
    }
    let app = || views.iter().filter(|v| v.role == Role::App);
    let ever_ran = app().any(|v| {
        v.restarts > 0
            || matches!(
                v.current.map(|c| &c.state),
                Some(ContainerState::Running | ContainerState::Exited { .. })
            )
    });
    if !ever_ran {
        return PodPhase::Pending;
    }
    let finished: Option<Vec<Option<i64>>> = app()
        .map(|v| exit_code(v).filter(|_| !v.will_restart))
        .collect();
    match finished {
        Some(codes) if policy != RestartPolicy::Always => {
            if codes.iter().all(|c| *c == Some(0)) {
                PodPhase::Succeeded
            } else {
                PodPhase::Failed
            }
        }
        _ => PodPhase::Running,
    }
}

/// Builds a condition, keeping the previous transition time when its status is unchanged.
pub fn condition(prev: &PodStatus, kind: &str, ok: bool, now: &str) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .condition(kind)
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    Condition {
        type_: kind.into(),
        status: status.into(),
        last_transition_time: Some(since),
        ..Condition::default()
    }
}

/// A pod's whole status from its containers' views: the phase (the stored
/// one, once the pod has finished), conditions that keep their transition
/// time while they hold, the pod and host addresses, where each container
/// port is published, the start time and each container's status; the
/// reason and message a controller wrote on a finished pod, and fields
/// this node does not know, are kept. Returns it with whether the pod is Ready.
pub fn pod_status(
    views: &[ContainerView<'_>],
    prev: &PodStatus,
    policy: RestartPolicy,
    host_ip: &str,
    now: &str,
) -> (PodStatus, bool) {
    let terminal = prev.is_terminal();
    let phase = match prev.phase {
        Some(p) if terminal => p,
        _ => phase(views, policy),
    };
    let initialized = initialized(views);
    let mut statuses = Vec::new();
    let mut init_statuses = Vec::new();
    let mut all_ready = true;
    for v in views {
        let mut st = container_status(v);
        match v.role {
            Role::App => {
                // Kubernetes' word for an app container held back by init.
                if !initialized && v.current.is_none() {
                    st.state = waiting("PodInitializing", None);
                }
                all_ready &= st.ready;
                statuses.push(st);
            }
            Role::Sidecar => {
                all_ready &= st.ready;
                init_statuses.push(st);
            }
            Role::Init => init_statuses.push(st),
        }
    }
    let all_ready = all_ready && !statuses.is_empty();
    let ready = phase == PodPhase::Running && all_ready;
    let pod_ip = views
        .iter()
        .find_map(|v| v.current.and_then(|c| c.ip.clone()))
        .unwrap_or_else(|| host_ip.to_string());
    // Where each container port is published on the host: other nodes'
    // load balancers connect there (not part of Kubernetes' PodStatus).
    let mut port_mappings: Vec<PortMapping> = views
        .iter()
        .filter_map(|v| v.current)
        .flat_map(|c| c.ports.iter())
        .map(|p| PortMapping {
            container_port: p.container_port,
            host_port: p.host_port,
        })
        .collect();
    port_mappings.dedup();
    let status = PodStatus {
        phase: Some(phase),
        conditions: vec![
            condition(prev, "PodScheduled", true, now),
            condition(prev, "Initialized", initialized, now),
            condition(prev, "ContainersReady", ready, now),
            condition(prev, "Ready", ready, now),
        ],
        // Fields other components own (a controller's reason, ...) stay on
        // a finished pod.
        reason: prev.reason.clone().filter(|_| terminal),
        message: prev.message.clone().filter(|_| terminal),
        host_ip: Some(host_ip.to_string()),
        pod_ip: Some(pod_ip),
        port_mappings,
        start_time: Some(prev.start_time.clone().unwrap_or_else(|| now.to_string())),
        init_container_statuses: init_statuses,
        container_statuses: statuses,
        extra: prev.extra.clone(),
    };
    (status, ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    /// The JSON a status part is written as, so the assertions read as the API shows it.
    fn j(v: impl serde::Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn typed(v: Value) -> PodStatus {
        serde_json::from_value(v).unwrap()
    }

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
            termination_message: None,
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
            role: Role::App,
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
            phase(&[view(&spec, None)], RestartPolicy::Always).as_str(),
            "Pending"
        );
        let run = info(ContainerState::Running);
        assert_eq!(
            phase(&[view(&spec, Some(&run))], RestartPolicy::Never).as_str(),
            "Running"
        );
        let ok = info(exited(0, false));
        assert_eq!(
            phase(&[view(&spec, Some(&ok))], RestartPolicy::Never).as_str(),
            "Succeeded"
        );
        let bad = info(exited(1, false));
        assert_eq!(
            phase(&[view(&spec, Some(&bad))], RestartPolicy::Never).as_str(),
            "Failed"
        );
        let mut restarting = view(&spec, Some(&bad));
        restarting.will_restart = true;
        assert_eq!(
            phase(&[restarting], RestartPolicy::Always).as_str(),
            "Running"
        );
        // One container still running keeps the pod Running.
        assert_eq!(
            phase(
                &[view(&spec, Some(&ok)), view(&spec, Some(&run))],
                RestartPolicy::Never
            )
            .as_str(),
            "Running"
        );
    }

    #[test]
    fn init_containers_hold_the_phase_and_sidecars_do_not_count() {
        let spec = Container::default();
        fn as_role(mut v: ContainerView<'_>, role: Role) -> ContainerView<'_> {
            v.role = role;
            v
        }
        let run = info(ContainerState::Running);
        let ok = info(exited(0, false));
        let bad = info(exited(1, false));
        // Running an init container: Pending, not Initialized, the app waits.
        let views = [
            as_role(view(&spec, Some(&run)), Role::Init),
            view(&spec, None),
        ];
        assert_eq!(phase(&views, RestartPolicy::Never), PodPhase::Pending);
        assert!(!initialized(&views));
        let (st, _) = pod_status(
            &views,
            &PodStatus::default(),
            RestartPolicy::Never,
            "h",
            "T",
        );
        assert_eq!(
            j(&st.container_statuses[0].state),
            serde_json::json!({"waiting": {"reason": "PodInitializing"}})
        );
        assert_eq!(st.init_container_statuses.len(), 1);
        assert_eq!(st.condition("Initialized").unwrap().status, "False");
        // Failed for good (Never): the pod fails; to be retried: still Pending.
        let failed = [
            as_role(view(&spec, Some(&bad)), Role::Init),
            view(&spec, None),
        ];
        assert_eq!(phase(&failed, RestartPolicy::Never), PodPhase::Failed);
        let mut retried = as_role(view(&spec, Some(&bad)), Role::Init);
        retried.will_restart = true;
        assert_eq!(
            phase(&[retried, view(&spec, None)], RestartPolicy::OnFailure),
            PodPhase::Pending
        );
        // The app finished while its sidecar runs: the pod has succeeded.
        let done = [
            as_role(view(&spec, Some(&run)), Role::Sidecar),
            as_role(view(&spec, Some(&ok)), Role::Init),
            view(&spec, Some(&ok)),
        ];
        assert!(initialized(&done));
        assert_eq!(phase(&done, RestartPolicy::Never), PodPhase::Succeeded);
    }

    #[test]
    fn oom_and_errors_are_named() {
        let t = j(terminated(&info(exited(137, true)), "docker").unwrap());
        assert_eq!(t["reason"], "OOMKilled");
        let t = j(terminated(&info(exited(3, false)), "process").unwrap());
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
        let s = j(container_status(&v));
        assert_eq!(s["ready"], false);
        assert_eq!(s["started"], true);
        // Probes that have not reported yet do not make it ready.
        let probed = Container {
            readiness_probe: Some(Default::default()),
            ..Default::default()
        };
        let mut fresh = view(&probed, Some(&run));
        fresh.probe = None;
        assert_eq!(j(container_status(&fresh))["ready"], false);
        v.waiting = Some(("CrashLoopBackOff".into(), "back-off 10s".into()));
        let s = j(container_status(&v));
        assert_eq!(s["state"]["waiting"]["reason"], "CrashLoopBackOff");
    }

    #[test]
    fn transition_time_kept_while_status_holds() {
        let prev = typed(
            json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "T0"}]}),
        );
        assert_eq!(
            j(condition(&prev, "Ready", true, "T1"))["lastTransitionTime"],
            "T0"
        );
        assert_eq!(
            j(condition(&prev, "Ready", false, "T1"))["lastTransitionTime"],
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
        let (typed_st, ready) = pod_status(
            &views,
            &PodStatus::default(),
            RestartPolicy::Always,
            "10.0.0.1",
            "T1",
        );
        let st = j(&typed_st);
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
        let (again, _) = pod_status(&views, &typed_st, RestartPolicy::Always, "10.0.0.1", "T2");
        assert_eq!(again, typed_st);

        // A finished pod keeps its phase and the controller's reason, and
        // a process without its own address reports the host's.
        let prev =
            json!({"phase": "Failed", "reason": "NodeLost", "message": "gone", "startTime": "T0"});
        let idle = [view(&spec, None)];
        let (done, ready) =
            pod_status(&idle, &typed(prev), RestartPolicy::Always, "10.0.0.1", "T3");
        let done = j(done);
        assert!(!ready);
        assert_eq!(done["phase"], "Failed");
        assert_eq!(done["reason"], "NodeLost");
        assert_eq!(done["message"], "gone");
        assert_eq!(done["startTime"], "T0");
        assert_eq!(done["podIP"], "10.0.0.1");
        assert!(done.get("portMappings").is_none());
    }
}
