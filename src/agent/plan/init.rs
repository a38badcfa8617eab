//! Init containers and sidecars, as the kubelet runs them: one at a time,
//! in order, each to success before the next; a sidecar (an init container
//! with `restartPolicy: Always`) is started in its turn and kept running,
//! restarted whenever it exits, until the pod finishes; what follows a
//! sidecar waits until it runs and its startup probe, if any, has passed.
//! The app containers wait for all of it, once: after they have started, a
//! regular init container never runs again.

use super::{Observed, Plan, container};
use crate::resource::types::RestartPolicy;
use crate::runtime::{ContainerInfo, ContainerState, LABEL_SPEC_HASH};

/// Whether the app containers have ever been started: then initialisation
/// is over, even if the runtime no longer has what ran it.
pub(super) fn app_started(o: &Observed<'_, '_>) -> bool {
    o.spec.containers.iter().any(|c| {
        o.groups.contains_key(&c.name)
            || o.prev.container(&c.name).is_some_and(|s| {
                s.restart_count > 0 || s.state.running.is_some() || s.state.terminated.is_some()
            })
    })
}

/// The policy a regular init container runs under: a failed one is retried
/// unless the pod never restarts anything, as in Kubernetes.
pub fn init_policy(pod: Option<RestartPolicy>) -> RestartPolicy {
    match pod.unwrap_or_default() {
        RestartPolicy::Never => RestartPolicy::Never,
        RestartPolicy::Always | RestartPolicy::OnFailure => RestartPolicy::OnFailure,
    }
}

/// The newest instance of `name`, if it is of the current spec.
fn current<'a>(o: &Observed<'a, '_>, name: &str, hash: &str) -> Option<&'a ContainerInfo> {
    o.groups
        .get(name)
        .and_then(|l| l.first())
        .filter(|ci| ci.labels.get(LABEL_SPEC_HASH).map(String::as_str) == Some(hash))
}

/// Plans the init containers and sidecars; returns whether the app
/// containers may run (every init container has succeeded and every
/// sidecar before them runs, or they ran before).
pub(super) fn gate<'a>(o: &Observed<'a, '_>, p: &mut Plan<'a>) -> bool {
    let started = app_started(o);
    let policy = init_policy(o.spec.restart_policy);
    for c in &o.spec.init_containers {
        let hash = super::spec_hash(c);
        if c.is_sidecar() {
            container(o, c, RestartPolicy::Always, p);
            let running =
                current(o, &c.name, &hash).filter(|ci| ci.state == ContainerState::Running);
            // The next init container starts once this one runs and, when
            // it has a startup probe, once that probe has passed for this
            // instance, as the kubelet does (read from the last status the
            // agent wrote, which the probes update).
            let up = running.is_some_and(|ci| {
                c.startup_probe.is_none()
                    || o.prev.container(&c.name).is_some_and(|s| {
                        s.started == Some(true)
                            && s.container_id
                                .as_deref()
                                .is_some_and(|id| id.ends_with(&format!("://{}", ci.id)))
                    })
            });
            if !started && !up {
                return false;
            }
            continue;
        }
        if started {
            continue;
        }
        container(o, c, policy, p);
        let succeeded = current(o, &c.name, &hash).is_some_and(|ci| {
            matches!(
                ci.state,
                ContainerState::Exited {
                    exit_code: Some(0),
                    ..
                }
            )
        });
        if !succeeded {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::{Duration, Instant, SystemTime};

    use super::super::{Observed, Plan, Step, plan, spec_hash};
    use crate::agent::AgentConfig;
    use crate::resource::status::{
        ContainerState as Status, ContainerStatus, PodPhase, PodStatus, StateRunning,
    };
    use crate::resource::types::{Container, ContainerRestartPolicy, PodSpec, RestartPolicy};
    use crate::runtime::{ContainerInfo, ContainerState, LABEL_RESTARTS, LABEL_SPEC_HASH};

    fn c(name: &str) -> Container {
        Container {
            name: name.into(),
            image: "busybox".into(),
            ..Container::default()
        }
    }

    fn sidecar(name: &str) -> Container {
        Container {
            restart_policy: Some(ContainerRestartPolicy::Always),
            ..c(name)
        }
    }

    fn instance(spec: &Container, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("{}-id", spec.name),
            name: spec.name.clone(),
            image: spec.image.clone(),
            labels: BTreeMap::from([
                (LABEL_SPEC_HASH.to_string(), spec_hash(spec)),
                (LABEL_RESTARTS.to_string(), "0".to_string()),
            ]),
            state,
            started_at: Some(SystemTime::UNIX_EPOCH),
            created_at: None,
            ip: None,
            ports: Vec::new(),
            termination_message: None,
        }
    }

    fn exited(code: i64) -> ContainerState {
        ContainerState::Exited {
            exit_code: Some(code),
            oom_killed: false,
            finished_at: Some(SystemTime::UNIX_EPOCH),
        }
    }

    struct World {
        spec: PodSpec,
        groups: BTreeMap<String, Vec<ContainerInfo>>,
        prev: PodStatus,
        cfg: AgentConfig,
    }

    impl World {
        fn new(init: Vec<Container>, app: Vec<Container>, policy: RestartPolicy) -> World {
            World {
                spec: PodSpec {
                    init_containers: init,
                    containers: app,
                    restart_policy: Some(policy),
                    ..PodSpec::default()
                },
                groups: BTreeMap::new(),
                prev: PodStatus::default(),
                cfg: AgentConfig::default(),
            }
        }

        /// The runtime has this container of the spec in this state.
        fn has(mut self, name: &str, state: ContainerState) -> World {
            let spec = self.spec.container(name).expect("in the spec").clone();
            self.groups
                .insert(name.into(), vec![instance(&spec, state)]);
            self
        }

        fn plan(&self) -> Plan<'_> {
            plan(&Observed {
                pod_name: "p",
                spec: &self.spec,
                groups: &self.groups,
                prev: &self.prev,
                probe_failed: &HashMap::new(),
                backoff: &HashMap::new(),
                runtime: "docker",
                cfg: &self.cfg,
                now: Instant::now() + Duration::from_secs(3600),
                wall_now: SystemTime::UNIX_EPOCH + Duration::from_secs(3600),
            })
        }
    }

    /// The plan as words: `create NAME`, `stop NAME`, `start NAME`, `remove NAME`.
    fn words(p: &Plan<'_>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Create { spec, .. } => format!("create {}", spec.name),
                Step::StartCreated { spec, .. } => format!("start {}", spec.name),
                Step::Stop { current, .. } => format!("stop {}", current.name),
                Step::Remove(ci) => format!("remove {}", ci.name),
            })
            .collect()
    }

    #[test]
    fn init_containers_run_one_at_a_time_then_the_app() {
        let w = || {
            World::new(
                vec![c("migrate"), c("seed")],
                vec![c("app")],
                RestartPolicy::Always,
            )
        };
        assert_eq!(words(&w().plan()), ["create migrate"]);
        assert!(words(&w().has("migrate", ContainerState::Running).plan()).is_empty());
        assert_eq!(
            words(&w().has("migrate", exited(0)).plan()),
            ["create seed"]
        );
        assert_eq!(
            words(&w().has("migrate", exited(0)).has("seed", exited(0)).plan()),
            ["create app"]
        );
        // Once the app has started, init containers never run again, even
        // if the runtime lost them.
        let mut again = w();
        again.prev.container_statuses = vec![ContainerStatus {
            name: "app".into(),
            state: Status {
                running: Some(StateRunning::default()),
                ..Status::default()
            },
            ..ContainerStatus::default()
        }];
        assert_eq!(words(&again.plan()), ["create app"]);
    }

    #[test]
    fn a_failed_init_container_is_retried_unless_the_pod_never_restarts() {
        let failed =
            |policy| World::new(vec![c("init")], vec![c("app")], policy).has("init", exited(3));
        // Always and OnFailure: retried (after the back-off, long over here).
        assert_eq!(
            words(&failed(RestartPolicy::Always).plan()),
            ["create init"]
        );
        assert_eq!(
            words(&failed(RestartPolicy::OnFailure).plan()),
            ["create init"]
        );
        // Never: nothing more runs; the status makes the pod Failed.
        assert!(words(&failed(RestartPolicy::Never).plan()).is_empty());
    }

    #[test]
    fn what_follows_a_sidecar_waits_for_its_startup_probe() {
        let mut probed = sidecar("proxy");
        probed.startup_probe = Some(crate::resource::types::Probe::default());
        let w = |started: Option<bool>, id: &str| {
            let mut w = World::new(
                vec![probed.clone(), c("init")],
                vec![c("app")],
                RestartPolicy::Always,
            )
            .has("proxy", ContainerState::Running);
            w.prev.init_container_statuses = vec![ContainerStatus {
                name: "proxy".into(),
                started,
                container_id: Some(format!("docker://{id}")),
                ..ContainerStatus::default()
            }];
            w
        };
        assert!(
            words(&w(Some(false), "proxy-id").plan()).is_empty(),
            "probe not passed"
        );
        assert!(
            words(&w(None, "proxy-id").plan()).is_empty(),
            "not reported yet"
        );
        assert!(
            words(&w(Some(true), "old-id").plan()).is_empty(),
            "an earlier instance's probe does not count"
        );
        assert_eq!(words(&w(Some(true), "proxy-id").plan()), ["create init"]);
    }

    #[test]
    fn sidecars_start_in_order_and_keep_running() {
        let w = || {
            World::new(
                vec![sidecar("proxy"), c("init")],
                vec![c("app")],
                RestartPolicy::Never,
            )
        };
        assert_eq!(words(&w().plan()), ["create proxy"]);
        // The next init container waits until the sidecar runs.
        assert!(words(&w().has("proxy", ContainerState::Created).plan()) == ["start proxy"]);
        let running = || w().has("proxy", ContainerState::Running);
        assert_eq!(words(&running().plan()), ["create init"]);
        assert_eq!(
            words(&running().has("init", exited(0)).plan()),
            ["create app"]
        );
        // A sidecar that exits is restarted even in a Never pod, and the
        // app, once started, does not wait for it.
        let w2 = w()
            .has("proxy", exited(1))
            .has("init", exited(0))
            .has("app", ContainerState::Running);
        assert_eq!(words(&w2.plan()), ["create proxy"]);
        // When the pod has finished, the sidecar is stopped.
        let mut done = running().has("init", exited(0)).has("app", exited(0));
        done.prev.phase = Some(PodPhase::Succeeded);
        assert_eq!(words(&done.plan()), ["stop proxy"]);
    }

    #[test]
    fn a_changed_init_container_image_reruns_it_before_the_app() {
        let mut w = World::new(vec![c("init")], vec![c("app")], RestartPolicy::Always)
            .has("init", exited(0));
        w.spec.init_containers[0].image = "busybox:2".into();
        assert_eq!(words(&w.plan()), ["stop init", "create init"]);
    }
}
