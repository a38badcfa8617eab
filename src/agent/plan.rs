//! The deciding half of a pod sync: from the pod's spec and last status,
//! the runtime's containers and what the agent remembers (back-off, probe
//! results), which containers to remove, stop, start or create, and the
//! events, waiting reasons and back-off that go with it. Pure, so every
//! rule is tested without a runtime; `pod::sync` carries the steps out.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::AgentConfig;
use super::events::{EventKind, PendingEvent};
use super::status;

mod init;
use crate::resource::status::{PodStatus, StateTerminated};
use crate::resource::types::{Container, DnsPolicy, PodDnsConfig, PodSpec, RestartPolicy};
use crate::runtime::{ContainerInfo, ContainerState, LABEL_RESTARTS, LABEL_SPEC_HASH};
pub use init::init_policy;

/// Restart back-off of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// How long this exit waits before the container is created again.
    pub delay: Duration,
    /// When the wait ends.
    pub until: Instant,
    /// The exited container this back-off was computed for, so one exit is counted once.
    pub exit_of: String,
}

/// What a sync knows when it decides.
pub struct Observed<'a, 'b> {
    /// The pod's name (for messages).
    pub pod_name: &'b str,
    /// The pod's spec.
    pub spec: &'a PodSpec,
    /// The runtime's containers of the pod by container name, newest first.
    pub groups: &'a BTreeMap<String, Vec<ContainerInfo>>,
    /// The pod's stored status.
    pub prev: &'b PodStatus,
    /// Why a running container failed its liveness probe, by runtime id.
    pub probe_failed: &'b HashMap<String, String>,
    /// Restart back-off by container name, from earlier syncs.
    pub backoff: &'b HashMap<String, Backoff>,
    /// The runtime's name, for the terminated state it reports.
    pub runtime: &'b str,
    /// Back-off settings.
    pub cfg: &'b AgentConfig,
    /// Now, monotonic (back-off deadlines).
    pub now: Instant,
    /// Now, wall clock (the runtime's exit times).
    pub wall_now: SystemTime,
}

/// One thing to do to the runtime, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a> {
    /// Remove a container (stopping it first if it runs).
    Remove(&'a ContainerInfo),
    /// Stop a running container; it stays, so its exit is seen next sync.
    /// `forget_probe`: its probe results go too (it failed its liveness probe).
    Stop {
        current: &'a ContainerInfo,
        forget_probe: bool,
    },
    /// Start a container that was created but never started.
    StartCreated {
        spec: &'a Container,
        current: &'a ContainerInfo,
    },
    /// Create and start a container, having restarted `restarts` times.
    Create { spec: &'a Container, restarts: u32 },
}

/// The decision of one sync.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// What to do, in order.
    pub steps: Vec<Step<'a>>,
    /// Events to write (one with `about` set is written once per container).
    pub events: Vec<PendingEvent>,
    /// Why a container waits: (reason, message) by container name.
    pub waiting: HashMap<String, (String, String)>,
    /// Back-off to remember, by container name.
    pub backoff: Vec<(String, Backoff)>,
    /// The last terminated state to report, by container name.
    pub last_terminated: Vec<(String, StateTerminated)>,
}

/// A short hash of a container's spec; a change means the container is replaced.
pub fn spec_hash(c: &Container) -> String {
    let bytes = serde_json::to_vec(&super::serviceaccount::as_written(c)).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// The restart count a runtime container carries in its label.
pub fn restarts_of(c: &ContainerInfo) -> u32 {
    c.labels
        .get(LABEL_RESTARTS)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Decides one sync.
pub fn plan<'a>(o: &Observed<'a, '_>) -> Plan<'a> {
    let mut p = Plan::default();
    // Containers the spec no longer has.
    for (name, list) in o.groups {
        if o.spec.container(name).is_none() {
            p.steps.extend(list.iter().map(Step::Remove));
        }
    }
    if init::gate(o, &mut p) {
        let policy = o.spec.restart_policy.unwrap_or_default();
        for c in &o.spec.containers {
            container(o, c, policy, &mut p);
        }
    }
    p
}

fn event(p: &mut Plan<'_>, kind: EventKind, reason: &str, message: String) {
    p.events.push(PendingEvent::new(kind, reason, message, ""));
}

/// Decides one container under `policy` (the pod's, or the one an init
/// container runs under).
fn container<'a>(o: &Observed<'a, '_>, c: &'a Container, policy: RestartPolicy, p: &mut Plan<'a>) {
    let terminal = o.prev.is_terminal();
    let mine = o.groups.get(&c.name).map(Vec::as_slice).unwrap_or(&[]);
    let cur = mine.first();
    // The instance before the newest stays while it is stopped, so
    // `logs --previous` can read it after a restart; older ones go.
    let previous = mine.get(1).filter(|ci| {
        matches!(ci.state, ContainerState::Exited { .. })
            && cur.is_some_and(|c| restarts_of(ci) < restarts_of(c))
    });
    p.steps.extend(
        mine.iter()
            .skip(1)
            .filter(|ci| previous.is_none_or(|k| k.id != ci.id))
            .map(Step::Remove),
    );
    if terminal {
        if let Some(ci) = cur
            && ci.state == ContainerState::Running
        {
            event(
                p,
                EventKind::Normal,
                "Killing",
                format!("Stopping container {}: the pod has finished", c.name),
            );
            p.steps.push(Step::Stop {
                current: ci,
                forget_probe: false,
            });
        }
        return;
    }
    let Some(ci) = cur else {
        // Never created, or removed: a container that ran before comes
        // back as a restart.
        let prev = o.prev.container(&c.name);
        let prev_restarts = prev.map_or(0, |s| s.restart_count);
        let ran_before =
            prev.is_some_and(|s| s.state.running.is_some() || s.state.terminated.is_some());
        p.steps.push(Step::Create {
            spec: c,
            restarts: prev_restarts + u32::from(ran_before),
        });
        return;
    };
    if ci.labels.get(LABEL_SPEC_HASH) != Some(&spec_hash(c)) {
        event(
            p,
            EventKind::Normal,
            "Killing",
            format!("Container {} definition changed, will be restarted", c.name),
        );
        p.steps.push(Step::Stop {
            current: ci,
            forget_probe: false,
        });
        if let Some(t) = status::terminated(ci, o.runtime) {
            p.last_terminated.push((c.name.clone(), t));
        }
        // The stopped one becomes the previous instance; the one before goes.
        p.steps.extend(previous.map(Step::Remove));
        p.steps.push(Step::Create {
            spec: c,
            restarts: restarts_of(ci) + 1,
        });
        return;
    }
    match &ci.state {
        ContainerState::Created => p.steps.push(Step::StartCreated {
            spec: c,
            current: ci,
        }),
        ContainerState::Running => {
            if let Some(why) = o.probe_failed.get(&ci.id) {
                event(p, EventKind::Warning, "Unhealthy", why.clone());
                event(
                    p,
                    EventKind::Normal,
                    "Killing",
                    format!("Container {} failed a probe, will be restarted", c.name),
                );
                p.steps.push(Step::Stop {
                    current: ci,
                    forget_probe: true,
                });
            }
        }
        ContainerState::Exited {
            exit_code,
            oom_killed,
            finished_at,
        } => {
            if *oom_killed {
                let mut e = PendingEvent::new(
                    EventKind::Warning,
                    "OOMKilled",
                    format!("Container {} was killed: out of memory", c.name),
                    "",
                );
                e.about = Some(ci.id.clone());
                p.events.push(e);
            }
            if !status::should_restart(policy, *exit_code) {
                return;
            }
            let ran = match (ci.started_at, finished_at) {
                (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
                _ => Duration::ZERO,
            };
            let since_exit = finished_at
                .and_then(|f| o.wall_now.duration_since(f).ok())
                .unwrap_or_default();
            let b = next_backoff(
                o.backoff.get(&c.name),
                &ci.id,
                ran,
                since_exit,
                o.cfg,
                o.now,
            );
            p.backoff.push((c.name.clone(), b.clone()));
            if let Some(t) = status::terminated(ci, o.runtime) {
                p.last_terminated.push((c.name.clone(), t));
            }
            if o.now >= b.until {
                p.steps.extend(previous.map(Step::Remove));
                p.steps.push(Step::Create {
                    spec: c,
                    restarts: restarts_of(ci) + 1,
                });
            } else {
                event(
                    p,
                    EventKind::Warning,
                    "BackOff",
                    format!("Back-off restarting failed container {}", c.name),
                );
                p.waiting.insert(
                    c.name.clone(),
                    (
                        "CrashLoopBackOff".into(),
                        format!(
                            "back-off {}s restarting failed container={} pod={}",
                            b.delay.as_secs(),
                            c.name,
                            o.pod_name
                        ),
                    ),
                );
            }
        }
    }
}

/// Computes the back-off for an exited container, counting each exit once:
/// it doubles while the container keeps failing quickly, up to the
/// maximum, and starts again from the initial delay after a long run.
pub fn next_backoff(
    prev: Option<&Backoff>,
    exited_id: &str,
    ran: Duration,
    since_exit: Duration,
    cfg: &AgentConfig,
    now: Instant,
) -> Backoff {
    if let Some(p) = prev
        && p.exit_of == exited_id
    {
        return p.clone();
    }
    let initial = Duration::from_millis(cfg.restart_backoff_initial_ms);
    let max = Duration::from_millis(cfg.restart_backoff_max_ms);
    let delay = match prev {
        Some(p) if ran < Duration::from_millis(cfg.restart_backoff_reset_ms) => {
            (p.delay * 2).min(max)
        }
        _ => initial,
    };
    Backoff {
        delay,
        until: now + delay.saturating_sub(since_exit),
        exit_of: exited_id.to_string(),
    }
}

/// The resolver settings of a pod's containers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodDns {
    /// Name servers; the engine's (the node's) when empty.
    pub servers: Vec<String>,
    /// Search domains; the engine's when empty.
    pub search: Vec<String>,
    /// resolv.conf options (`ndots:2`).
    pub options: Vec<String>,
}

/// The resolver a pod's containers get: the policy's base (the cluster DNS
/// for ClusterFirst where this node serves one, else the node's own), then
/// what `dnsConfig` adds, without duplicates; an option named again takes
/// the later value, as the kubelet merges them.
pub fn pod_dns(
    policy: Option<DnsPolicy>,
    config: Option<&PodDnsConfig>,
    cluster: Option<(Vec<String>, Vec<String>)>,
) -> PodDns {
    let mut out = match policy.unwrap_or(DnsPolicy::ClusterFirst) {
        DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet => cluster
            .map(|(servers, search)| PodDns {
                servers,
                search,
                options: Vec::new(),
            })
            .unwrap_or_default(),
        DnsPolicy::Default | DnsPolicy::None => PodDns::default(),
    };
    let Some(c) = config else {
        return out;
    };
    for s in &c.nameservers {
        if !out.servers.contains(s) {
            out.servers.push(s.clone());
        }
    }
    for s in &c.searches {
        if !out.search.contains(s) {
            out.search.push(s.clone());
        }
    }
    for o in &c.options {
        out.options
            .retain(|have| have.split(':').next() != Some(o.name.as_str()));
        out.options.push(match &o.value {
            Some(v) => format!("{}:{v}", o.name),
            None => o.name.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::RestartPolicy;
    use crate::runtime::LABEL_CONTAINER;
    use serde_json::json;

    fn cfg() -> AgentConfig {
        AgentConfig {
            restart_backoff_initial_ms: 10_000,
            restart_backoff_max_ms: 40_000,
            restart_backoff_reset_ms: 600_000,
            ..AgentConfig::default()
        }
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let cfg = cfg();
        let now = Instant::now();
        let nb = |prev: Option<&Backoff>, id: &str, ran: Duration| {
            next_backoff(prev, id, ran, Duration::ZERO, &cfg, now)
        };
        let short = Duration::from_secs(1);
        let b1 = nb(None, "a", short);
        assert_eq!(b1.delay, Duration::from_secs(10));
        // The same exit seen again is not counted twice.
        let again = nb(Some(&b1), "a", short);
        assert_eq!(again.delay, b1.delay);
        let b2 = nb(Some(&b1), "b", short);
        assert_eq!(b2.delay, Duration::from_secs(20));
        let b3 = nb(Some(&b2), "c", short);
        let b4 = nb(Some(&b3), "d", short);
        assert_eq!(b4.delay, Duration::from_secs(40), "capped");
        let long = Duration::from_secs(601);
        let fresh = nb(Some(&b4), "e", long);
        assert_eq!(
            fresh.delay,
            Duration::from_secs(10),
            "reset after a long run"
        );
        // Time already spent since the exit counts against the wait.
        let late = next_backoff(None, "f", short, Duration::from_secs(4), &cfg, now);
        assert_eq!(late.until, now + Duration::from_secs(6));
    }

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: image.into(),
            ..Default::default()
        }
    }

    /// A runtime container of `spec`, with its restart count, in `state`.
    fn running(id: &str, spec: &Container, restarts: u32, state: ContainerState) -> ContainerInfo {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        ContainerInfo {
            id: id.into(),
            name: format!("shoal-{id}"),
            image: spec.image.clone(),
            labels: BTreeMap::from([
                (LABEL_CONTAINER.to_string(), spec.name.clone()),
                (LABEL_RESTARTS.to_string(), restarts.to_string()),
                (LABEL_SPEC_HASH.to_string(), spec_hash(spec)),
            ]),
            state,
            started_at: Some(t0),
            created_at: Some(t0),
            ip: None,
            ports: Vec::new(),
            termination_message: None,
        }
    }

    fn exited(code: i64, oom: bool, ran_secs: u64) -> ContainerState {
        ContainerState::Exited {
            exit_code: Some(code),
            oom_killed: oom,
            finished_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + ran_secs)),
        }
    }

    struct World {
        spec: PodSpec,
        groups: BTreeMap<String, Vec<ContainerInfo>>,
        prev: PodStatus,
        probe_failed: HashMap<String, String>,
        backoff: HashMap<String, Backoff>,
        cfg: AgentConfig,
        now: Instant,
        /// Seconds after the container's exit that the sync runs.
        wall_secs: u64,
    }

    impl World {
        fn new(containers: Vec<Container>, policy: RestartPolicy) -> World {
            World {
                spec: PodSpec {
                    containers,
                    restart_policy: Some(policy),
                    ..Default::default()
                },
                groups: BTreeMap::new(),
                prev: PodStatus::default(),
                probe_failed: HashMap::new(),
                backoff: HashMap::new(),
                cfg: cfg(),
                now: Instant::now(),
                wall_secs: 2_000,
            }
        }

        fn with(mut self, c: ContainerInfo) -> World {
            let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
            self.groups.entry(name).or_default().push(c);
            self
        }

        fn plan(&self) -> Plan<'_> {
            plan(&Observed {
                pod_name: "web",
                spec: &self.spec,
                groups: &self.groups,
                prev: &self.prev,
                probe_failed: &self.probe_failed,
                backoff: &self.backoff,
                runtime: "process",
                cfg: &self.cfg,
                now: self.now,
                wall_now: SystemTime::UNIX_EPOCH + Duration::from_secs(self.wall_secs),
            })
        }
    }

    /// Steps as short words, for the table.
    fn words(p: &Plan<'_>) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::Remove(c) => format!("remove {}", c.id),
                Step::Stop {
                    current,
                    forget_probe,
                } => format!(
                    "stop {}{}",
                    current.id,
                    if *forget_probe { " forget-probe" } else { "" }
                ),
                Step::StartCreated { current, .. } => format!("start {}", current.id),
                Step::Create { spec, restarts } => format!("create {} #{restarts}", spec.name),
            })
            .collect()
    }

    fn reasons<'p>(p: &'p Plan<'_>) -> Vec<&'p str> {
        p.events.iter().map(PendingEvent::reason).collect()
    }

    #[test]
    fn plan_table() {
        let main = container("main", "img:1");
        let always = RestartPolicy::Always;
        let cases: Vec<(&str, World, Vec<&str>, Vec<&str>)> = vec![
            (
                "nothing runs yet: create",
                World::new(vec![main.clone()], always),
                vec!["create main #0"],
                vec![],
            ),
            (
                "running as specified: nothing to do",
                World::new(vec![main.clone()], always).with(running(
                    "c1",
                    &main,
                    0,
                    ContainerState::Running,
                )),
                vec![],
                vec![],
            ),
            (
                "created but not started: start it",
                World::new(vec![main.clone()], always).with(running(
                    "c1",
                    &main,
                    0,
                    ContainerState::Created,
                )),
                vec!["start c1"],
                vec![],
            ),
            (
                "the spec changed: stop (kept as the previous), create as a restart",
                World::new(vec![container("main", "img:2")], always).with(running(
                    "c1",
                    &main,
                    3,
                    ContainerState::Running,
                )),
                vec!["stop c1", "create main #4"],
                vec!["Killing"],
            ),
            (
                "a container the spec no longer has, and duplicates older than the previous, go",
                World::new(vec![main.clone()], always)
                    .with(running("c3", &main, 2, ContainerState::Running))
                    .with(running("c2", &main, 1, exited(0, false, 5)))
                    .with(running("c1", &main, 0, exited(0, false, 5)))
                    .with(running(
                        "x",
                        &container("sidecar", "img:1"),
                        0,
                        ContainerState::Running,
                    )),
                vec!["remove x", "remove c1"],
                vec![],
            ),
            (
                "a running duplicate is no previous instance: it goes",
                World::new(vec![main.clone()], always)
                    .with(running("c2", &main, 1, ContainerState::Running))
                    .with(running("c1", &main, 0, ContainerState::Running)),
                vec!["remove c1"],
                vec![],
            ),
            (
                "restarted: the exited one becomes the previous, the one before it goes",
                World::new(vec![main.clone()], always)
                    .with(running("c2", &main, 1, exited(1, false, 5)))
                    .with(running("c1", &main, 0, exited(1, false, 5))),
                vec!["remove c1", "create main #2"],
                vec![],
            ),
            (
                "exited long ago under Always: restarted",
                World::new(vec![main.clone()], always).with(running(
                    "c1",
                    &main,
                    2,
                    exited(1, false, 5),
                )),
                vec!["create main #3"],
                vec![],
            ),
            (
                "exited with 0 under OnFailure: left as it is",
                World::new(vec![main.clone()], RestartPolicy::OnFailure).with(running(
                    "c1",
                    &main,
                    0,
                    exited(0, false, 5),
                )),
                vec![],
                vec![],
            ),
            (
                "killed for memory under Never: said once, not restarted",
                World::new(vec![main.clone()], RestartPolicy::Never).with(running(
                    "c1",
                    &main,
                    0,
                    exited(137, true, 5),
                )),
                vec![],
                vec!["OOMKilled"],
            ),
            (
                "failed its liveness probe: stopped, its probe results forgotten",
                {
                    let mut w = World::new(vec![main.clone()], always).with(running(
                        "c1",
                        &main,
                        0,
                        ContainerState::Running,
                    ));
                    w.probe_failed
                        .insert("c1".into(), "Liveness probe failed".into());
                    w
                },
                vec!["stop c1 forget-probe"],
                vec!["Unhealthy", "Killing"],
            ),
            (
                "the pod finished: a running container is stopped, nothing created",
                {
                    let mut w = World::new(vec![main.clone(), container("b", "img:1")], always)
                        .with(running("c1", &main, 0, ContainerState::Running));
                    w.prev = serde_json::from_value(json!({"phase": "Failed"})).unwrap();
                    w
                },
                vec!["stop c1"],
                vec!["Killing"],
            ),
            (
                "gone from the runtime after it ran: created as a restart",
                {
                    let mut w = World::new(vec![main.clone()], always);
                    w.prev = serde_json::from_value(json!({"containerStatuses": [
                        {"name": "main", "restartCount": 4, "state": {"running": {}}}
                    ]}))
                    .unwrap();
                    w
                },
                vec!["create main #5"],
                vec![],
            ),
        ];
        for (what, world, steps, events) in cases {
            let p = world.plan();
            assert_eq!(words(&p), steps, "{what}");
            assert_eq!(reasons(&p), events, "{what}");
        }
    }

    #[test]
    fn a_crash_loop_waits_out_its_back_off() {
        let main = container("main", "img:1");
        // Exited 1 s after it started, and the sync runs 2 s after the exit:
        // the first back-off (10 s) is not over.
        let mut w = World::new(vec![main.clone()], RestartPolicy::Always).with(running(
            "c1",
            &main,
            0,
            exited(1, false, 1),
        ));
        w.wall_secs = 1_003;
        let p = w.plan();
        assert!(p.steps.is_empty(), "{:?}", words(&p));
        assert_eq!(reasons(&p), ["BackOff"]);
        let (reason, msg) = &p.waiting["main"];
        assert_eq!(reason, "CrashLoopBackOff");
        assert_eq!(msg, "back-off 10s restarting failed container=main pod=web");
        let (name, b) = &p.backoff[0];
        assert_eq!(name, "main");
        assert_eq!(b.until, w.now + Duration::from_secs(8));
        assert_eq!(p.last_terminated.len(), 1, "the exit is reported meanwhile");

        // Once the wait is over the same exit restarts it, counted once.
        w.backoff.insert("main".into(), b.clone());
        w.now = b.until;
        let p = w.plan();
        assert_eq!(words(&p), ["create main #1"]);
        assert_eq!(p.backoff[0].1.delay, Duration::from_secs(10));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::resource::types::RestartPolicy;
    use crate::runtime::LABEL_CONTAINER;
    use proptest::prelude::*;

    prop_compose! {
        /// Up to three containers in the spec; in the runtime, up to four
        /// containers named from a larger set (some the spec does not
        /// have), each created, running or exited, current or stale.
        fn world()(
            in_spec in proptest::collection::btree_set(0usize..3, 1..=3),
            running in proptest::collection::vec(
                (0usize..4, 0u8..3, any::<bool>(), 0u32..5, 0i64..3, 0u64..5000),
                0..5,
            ),
            policy in prop_oneof![
                Just(RestartPolicy::Always),
                Just(RestartPolicy::OnFailure),
                Just(RestartPolicy::Never)
            ],
            terminal in any::<bool>(),
        ) -> (Vec<usize>, Vec<(usize, u8, bool, u32, i64, u64)>, RestartPolicy, bool) {
            (in_spec.into_iter().collect(), running, policy, terminal)
        }
    }

    fn spec_container(i: usize) -> Container {
        Container {
            name: ["a", "b", "c", "gone"][i].into(),
            image: "img:1".into(),
            ..Default::default()
        }
    }

    proptest! {
        #[test]
        fn one_current_container_each_and_nothing_left_over(
            (in_spec, running, policy, terminal) in world()
        ) {
            let spec = PodSpec {
                containers: in_spec.iter().map(|i| spec_container(*i)).collect(),
                restart_policy: Some(policy),
                ..Default::default()
            };
            let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
            let mut groups: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
            for (n, (name, state, current, restarts, code, ran)) in running.iter().enumerate() {
                let c = spec_container(*name);
                let hash = if *current {
                    spec_hash(&c)
                } else {
                    "stale".into()
                };
                let state = match state {
                    0 => ContainerState::Created,
                    1 => ContainerState::Running,
                    _ => ContainerState::Exited {
                        exit_code: Some(*code),
                        oom_killed: false,
                        finished_at: Some(t0 + Duration::from_millis(*ran)),
                    },
                };
                groups.entry(c.name.clone()).or_default().push(ContainerInfo {
                    id: format!("id{n}"),
                    name: format!("shoal-{n}"),
                    image: c.image.clone(),
                    labels: BTreeMap::from([
                        (LABEL_CONTAINER.to_string(), c.name.clone()),
                        (LABEL_RESTARTS.to_string(), restarts.to_string()),
                        (LABEL_SPEC_HASH.to_string(), hash),
                    ]),
                    state,
                    started_at: Some(t0),
                    created_at: Some(t0),
                    ip: None,
                    ports: Vec::new(),
                    termination_message: None,
                });
            }
            let prev = if terminal {
                serde_json::from_value(serde_json::json!({"phase": "Failed"})).unwrap()
            } else {
                PodStatus::default()
            };
            let cfg = AgentConfig::default();
            let p = plan(&Observed {
                pod_name: "p",
                spec: &spec,
                groups: &groups,
                prev: &prev,
                probe_failed: &HashMap::new(),
                backoff: &HashMap::new(),
                runtime: "process",
                cfg: &cfg,
                now: Instant::now(),
                wall_now: t0 + Duration::from_secs(3_600),
            });
            let removed: Vec<&str> = p
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Remove(c) => Some(c.id.as_str()),
                    _ => None,
                })
                .collect();
            for (name, list) in &groups {
                let wanted = spec.containers.iter().any(|c| &c.name == name);
                let created = p
                    .steps
                    .iter()
                    .any(|s| matches!(s, Step::Create { spec, .. } if &spec.name == name));
                for (i, c) in list.iter().enumerate() {
                    // The exited instance before the newest stays for
                    // `logs --previous`, until a restart makes the newest
                    // the previous one.
                    let kept = i == 1
                        && !created
                        && matches!(c.state, ContainerState::Exited { .. })
                        && restarts_of(c) < restarts_of(&list[0]);
                    // What the spec does not have, and every other older duplicate, goes.
                    if !wanted || (i > 0 && !kept) {
                        prop_assert!(removed.contains(&c.id.as_str()), "{} kept", c.id);
                    } else if i > 0 {
                        prop_assert!(!removed.contains(&c.id.as_str()), "previous {} removed", c.id);
                    }
                }
            }
            for c in &spec.containers {
                let creates = p
                    .steps
                    .iter()
                    .filter(|s| matches!(s, Step::Create { spec, .. } if spec.name == c.name))
                    .count();
                prop_assert!(creates <= 1, "{} created {creates} times", c.name);
                if terminal {
                    prop_assert_eq!(creates, 0, "a finished pod starts nothing");
                }
                // A create replaces the current container: it stays as the
                // previous instance, and the count goes up from it.
                let newest = groups.get(&c.name).and_then(|l| l.first());
                if let (1, Some(cur)) = (creates, newest) {
                    prop_assert!(!removed.contains(&cur.id.as_str()));
                    let restarts = p.steps.iter().find_map(|s| match s {
                        Step::Create { spec, restarts } if spec.name == c.name => Some(*restarts),
                        _ => None,
                    });
                    prop_assert_eq!(restarts, Some(restarts_of(cur) + 1));
                }
                // A current running container is left alone.
                if let Some(cur) = newest
                    && cur.state == ContainerState::Running
                    && cur.labels.get(LABEL_SPEC_HASH) == Some(&spec_hash(c))
                    && !terminal
                {
                    let touched = p.steps.iter().any(|s| match s {
                        Step::Remove(x) | Step::Stop { current: x, .. } => x.id == cur.id,
                        _ => false,
                    });
                    prop_assert!(!touched, "a current running container was touched");
                }
            }
        }
    }

    #[test]
    fn dns_follows_the_policy_then_the_config() {
        use crate::resource::types::PodDnsConfigOption;
        let cluster = || {
            Some((
                vec!["10.0.0.10".to_string()],
                vec!["ns.svc.shoal".to_string()],
            ))
        };
        let first = pod_dns(None, None, cluster());
        assert_eq!(first.servers, vec!["10.0.0.10"]);
        assert_eq!(first.search, vec!["ns.svc.shoal"]);
        // No cluster DNS on this node: the engine's.
        assert_eq!(pod_dns(None, None, None), PodDns::default());
        assert_eq!(
            pod_dns(Some(DnsPolicy::Default), None, cluster()),
            PodDns::default()
        );
        let config = PodDnsConfig {
            nameservers: vec!["1.1.1.1".into(), "10.0.0.10".into()],
            searches: vec!["corp.example".into()],
            options: vec![
                PodDnsConfigOption {
                    name: "ndots".into(),
                    value: Some("5".into()),
                },
                PodDnsConfigOption {
                    name: "edns0".into(),
                    value: None,
                },
                PodDnsConfigOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
            ],
        };
        let merged = pod_dns(Some(DnsPolicy::ClusterFirst), Some(&config), cluster());
        assert_eq!(merged.servers, vec!["10.0.0.10", "1.1.1.1"]);
        assert_eq!(merged.search, vec!["ns.svc.shoal", "corp.example"]);
        assert_eq!(merged.options, vec!["edns0", "ndots:2"]);
        let only = pod_dns(Some(DnsPolicy::None), Some(&config), cluster());
        assert_eq!(only.servers, vec!["1.1.1.1", "10.0.0.10"]);
        assert_eq!(only.search, vec!["corp.example"]);
    }
}
