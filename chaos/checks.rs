//! The checks run once every fault is healed: no acknowledged write lost,
//! registers linearizable, the Deployment back at its replicas, no pod
//! running twice or without its pod object, at most one leader per term,
//! and no leader deposed unless a fault touched it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::cluster::{Cluster, NodeState, RunningContainer};
use crate::record::FaultRecord;
use crate::workload::{APP, WriteLog, app_pods, is_ready, is_terminal};

/// Restarts what is down, resumes what is paused, lifts any partition.
pub fn heal(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let mut did = Vec::new();
    cluster.set_partition(&BTreeSet::new())?;
    for i in 0..cluster.len() {
        match cluster.state(i) {
            NodeState::Paused => {
                cluster.resume(i)?;
                did.push(format!("resumed {}", cluster.specs[i].name));
            }
            NodeState::Down => {
                cluster.start(i)?;
                did.push(format!("started {}", cluster.specs[i].name));
            }
            NodeState::Running => {}
        }
    }
    Ok(did)
}

/// GETs `path` from node `i` (linearizable), retrying transient failures for up to 30 s.
async fn get_retry(cluster: &Cluster, i: usize, path: &str) -> Result<Value, String> {
    let client = cluster.client(i).ok_or_else(|| format!("no node {i}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match client
            .send_within(
                reqwest::Method::GET,
                path,
                None,
                Some(Duration::from_secs(20)),
            )
            .await
        {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("{} {path}: {last}", cluster.specs[i].name))
}

/// What became of the writers' creates.
#[derive(Debug, Default, Serialize)]
pub struct WriteCheck {
    /// Acknowledged creates.
    pub acknowledged: usize,
    /// Ambiguous creates.
    pub ambiguous: usize,
    /// Ambiguous creates found present on the first node.
    pub ambiguous_present: usize,
    /// Creates that never reached a node.
    pub refused: u64,
    /// Acknowledged creates missing (or with another value) on at least one node.
    pub lost: usize,
    /// Lost creates per node.
    pub lost_per_node: BTreeMap<String, usize>,
    /// The first lost names.
    pub lost_names: Vec<String>,
    /// Nodes that could not be read.
    pub unreadable: Vec<String>,
}

/// Reads every ConfigMap back from every node and compares with what was acknowledged.
pub async fn writes(cluster: &Cluster, log: &WriteLog) -> WriteCheck {
    let mut out = WriteCheck {
        acknowledged: log.acknowledged.len(),
        ambiguous: log.ambiguous.len(),
        refused: log.refused,
        ..Default::default()
    };
    let mut lost: BTreeSet<String> = BTreeSet::new();
    for i in 0..cluster.len() {
        let name = cluster.specs[i].name.clone();
        let list = match get_retry(cluster, i, "/v1/namespaces/default/configmaps").await {
            Ok(v) => v,
            Err(e) => {
                out.unreadable.push(e);
                continue;
            }
        };
        let present: BTreeMap<&str, &str> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| {
                Some((
                    o["metadata"]["name"].as_str()?,
                    o["data"]["value"].as_str().unwrap_or(""),
                ))
            })
            .collect();
        let mut here = 0;
        for (n, v) in &log.acknowledged {
            if present.get(n.as_str()) != Some(&v.as_str()) {
                here += 1;
                lost.insert(n.clone());
            }
        }
        if here > 0 {
            out.lost_per_node.insert(name, here);
        }
        if i == 0 {
            out.ambiguous_present = log
                .ambiguous
                .iter()
                .filter(|(n, v)| present.get(n.as_str()) == Some(&v.as_str()))
                .count();
        }
    }
    out.lost = lost.len();
    out.lost_names = lost.into_iter().take(20).collect();
    out
}

/// Waits until the Deployment has exactly `replicas` pods, all Running and
/// Ready, and says so in its status; the time it took, or the last state.
pub async fn converge(
    cluster: &Cluster,
    replicas: usize,
    limit: Duration,
) -> Result<Duration, String> {
    let t = Instant::now();
    let mut last = String::from("never read");
    while t.elapsed() < limit {
        let node = (0..cluster.len())
            .find(|i| cluster.state(*i) == NodeState::Running)
            .unwrap_or(0);
        let dep = cluster
            .get_json(
                node,
                &format!("/v1/namespaces/default/deployments/{APP}"),
                Duration::from_secs(5),
            )
            .await;
        if let (Some(dep), Some(pods)) = (dep, app_pods(cluster, node, true).await) {
            let ready = pods.iter().filter(|p| p.2).count();
            let available = dep["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize;
            last = format!(
                "{} pods, {ready} running and ready, status availableReplicas {available}",
                pods.len()
            );
            if ready == replicas && pods.len() == replicas && available == replicas {
                return Ok(t.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(last)
}

/// What the nodes' runtimes hold compared with the pod objects.
#[derive(Debug, Default, Serialize)]
pub struct RuntimeCheck {
    /// Pod containers running on the nodes at the last look.
    pub containers: usize,
    /// Pods running on more than one node, or one container running twice.
    pub duplicates: Vec<String>,
    /// Containers whose pod is gone, replaced, finished or bound elsewhere.
    pub orphans: Vec<String>,
    /// Pods Running and Ready with no container on their node.
    pub ghosts: Vec<String>,
    /// Seconds after the check began until everything was clean.
    pub clean_after_secs: Option<f64>,
    /// Why the check could not look, if it never could.
    pub error: Option<String>,
}

impl RuntimeCheck {
    /// No duplicate, orphan or ghost.
    pub fn clean(&self) -> bool {
        self.duplicates.is_empty()
            && self.orphans.is_empty()
            && self.ghosts.is_empty()
            && self.error.is_none()
    }
}

async fn runtime_once(cluster: &Cluster) -> Option<RuntimeCheck> {
    let node = (0..cluster.len()).find(|i| cluster.state(*i) == NodeState::Running)?;
    let pods = cluster
        .get_json(node, "/v1/pods", Duration::from_secs(5))
        .await?;
    // Pods by "namespace/name": (uid, node, terminal, running-and-ready).
    let mut by_name: BTreeMap<String, (String, String, bool, bool)> = BTreeMap::new();
    for p in pods["items"].as_array()? {
        let m = &p["metadata"];
        let key = format!(
            "{}/{}",
            m["namespace"].as_str().unwrap_or("default"),
            m["name"].as_str().unwrap_or("")
        );
        by_name.insert(
            key,
            (
                m["uid"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                is_terminal(p),
                p["status"]["phase"] == "Running" && is_ready(p),
            ),
        );
    }
    let running: Vec<RunningContainer> = (0..cluster.len())
        .flat_map(|i| cluster.running_containers(i))
        .collect();
    let mut out = RuntimeCheck {
        containers: running.len(),
        ..Default::default()
    };
    let mut nodes_of_pod: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut copies: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for c in &running {
        nodes_of_pod.entry(&c.pod).or_default().insert(&c.node);
        copies
            .entry((&c.uid, &c.container))
            .or_default()
            .push(&c.node);
        let why = match by_name.get(&c.pod) {
            None => Some("its pod does not exist".to_string()),
            Some((uid, _, _, _)) if *uid != c.uid => {
                Some("its pod was replaced (other uid)".into())
            }
            Some((_, bound, _, _)) if *bound != c.node => {
                Some(format!("its pod is bound to {bound:?}"))
            }
            Some((_, _, true, _)) => Some("its pod has finished".into()),
            _ => None,
        };
        if let Some(why) = why {
            out.orphans
                .push(format!("{} {} on {}: {why}", c.pod, c.container, c.node));
        }
    }
    for (pod, nodes) in nodes_of_pod {
        if nodes.len() > 1 {
            let list: Vec<&str> = nodes.into_iter().collect();
            out.duplicates
                .push(format!("{pod} runs on {}", list.join(", ")));
        }
    }
    for ((uid, container), nodes) in copies {
        if nodes.len() > 1 {
            out.duplicates.push(format!(
                "container {container} of pod uid {uid} runs {} times ({})",
                nodes.len(),
                nodes.join(", ")
            ));
        }
    }
    for (pod, (_, node, _, ready)) in &by_name {
        if *ready && !running.iter().any(|c| c.pod == *pod && c.node == *node) {
            out.ghosts.push(format!(
                "{pod} is Running and Ready on {node} but nothing runs there"
            ));
        }
    }
    Some(out)
}

/// Looks until the runtimes match the pod objects or `limit` passes.
pub async fn runtime(cluster: &Cluster, limit: Duration) -> RuntimeCheck {
    let t = Instant::now();
    let mut last = RuntimeCheck {
        error: Some("the pod list could not be read".into()),
        ..Default::default()
    };
    loop {
        if let Some(mut c) = runtime_once(cluster).await {
            if c.clean() {
                c.clean_after_secs = Some(t.elapsed().as_secs_f64());
                return c;
            }
            last = c;
        }
        if t.elapsed() > limit {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Seconds after a fault heals during which it may still explain a new
/// leader: a leader killed and restarted quickly can lose its term to an
/// election that began while it was away.
pub const LEADER_CHANGE_GRACE_SECS: f64 = 15.0;

/// Leader changes that no fault explains: the leader before the change was
/// not hit by a fault active then (a partition with a bridge and a rolling
/// restart touch every node). Each is a healthy leader deposed, the
/// disruption a pre-vote exists to prevent.
pub fn unexplained_leader_changes(
    changes: &[(f64, u64, String)],
    faults: &[FaultRecord],
) -> Vec<String> {
    let mut out = Vec::new();
    for w in changes.windows(2) {
        let ((_, old_term, old), (t, term, new)) = (&w[0], &w[1]);
        let explained = faults.iter().any(|f| {
            let end = f.healed_at_secs.unwrap_or(f64::INFINITY) + LEADER_CHANGE_GRACE_SECS;
            let touches = f.kind == "partition-bridge"
                || f.kind == "rolling-restart"
                || f.targets.contains(old);
            touches && f.at_secs <= *t && *t <= end
        });
        if !explained {
            out.push(format!(
                "{new} took term {term} from {old} (term {old_term}) at {t:.1}s"
            ));
        }
    }
    out
}

/// Seconds after an intruder's window during which a term or leader
/// change still counts against it (a vote it won just before it died would
/// show up a poll or two later).
pub const INTRUDER_GRACE_SECS: f64 = 3.0;

/// Term rises and leader changes inside an intruder's window (or just
/// after it). The intruder scenarios inject nothing else during a window,
/// and a fault-free cluster keeps its leader and term, so any is a failure.
pub fn intruder_disturbances(
    faults: &[FaultRecord],
    changes: &[(f64, u64, String)],
    term_rises: &[(f64, u64)],
) -> Vec<String> {
    let mut out = Vec::new();
    for f in faults {
        let Some(r) = &f.intruder else { continue };
        let Some((w0, w1)) = r.window else { continue };
        let inside = |t: f64| w0 <= t && t <= w1 + INTRUDER_GRACE_SECS;
        let during = format!("during {} {} ({w0:.1}-{w1:.1}s)", f.kind, r.name);
        for (t, term, who) in changes.iter().filter(|c| inside(c.0)) {
            out.push(format!("{who} led term {term} from {t:.1}s, {during}"));
        }
        for (t, term) in term_rises.iter().filter(|c| inside(c.0)) {
            out.push(format!(
                "the highest term rose to {term} at {t:.1}s, {during}"
            ));
        }
        if let (Some(a), Some(b)) = (r.term_before, r.term_after)
            && a != b
        {
            out.push(format!("the leader's term went from {a} to {b} {during}"));
        }
        if r.leader_before != r.leader_after {
            out.push(format!(
                "the leader went from {:?} to {:?} {during}",
                r.leader_before, r.leader_after
            ));
        }
    }
    out
}

/// Whether every intruder was really refused: the unkeyed agent's and the
/// garbage client's connections counted as refused by the members (and an
/// agent with no key refused to start), the removed node's RPCs counted
/// as refused; with the figures.
pub fn intruder_refusals(faults: &[FaultRecord]) -> (bool, Vec<String>) {
    let mut ok = true;
    let mut lines = Vec::new();
    for f in faults {
        let Some(r) = &f.intruder else { continue };
        let held = if f.kind == "intruder-unkeyed" {
            r.refused_connections > 0.0 && r.keyless_refused == Some(true)
        } else {
            r.refused_rpcs > 0.0
        };
        ok &= held;
        lines.push(format!(
            "{} at {:.1}s: {} connections and {} RPCs refused{}{}",
            f.kind,
            f.at_secs,
            r.refused_connections,
            r.refused_rpcs,
            r.keyless_start
                .as_ref()
                .map_or(String::new(), |k| format!(", keyless agent {k}")),
            if held { "" } else { " (NOT refused)" }
        ));
    }
    (ok, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IntruderRecord;

    fn intruder(kind: &'static str, w0: f64, w1: f64) -> FaultRecord {
        FaultRecord {
            intruder: Some(IntruderRecord {
                name: "x".into(),
                window: Some((w0, w1)),
                term_before: Some(3),
                term_after: Some(3),
                leader_before: Some("n1".into()),
                leader_after: Some("n1".into()),
                refused_rpcs: 4.0,
                ..Default::default()
            }),
            ..FaultRecord::new(w0, kind)
        }
    }

    #[test]
    fn a_term_or_leader_change_in_an_intruder_window_is_a_disturbance() {
        let faults = vec![intruder("intruder-removed-leader", 20.0, 40.0)];
        let before = vec![change(1.0, 2, "n2"), change(12.0, 3, "n1")];
        let rises = vec![(0.5, 2), (12.0, 3)];
        assert!(intruder_disturbances(&faults, &before, &rises).is_empty());
        let changed = vec![change(12.0, 3, "n1"), change(41.5, 4, "n3")];
        let found = intruder_disturbances(&faults, &changed, &[(41.0, 4)]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("n3 led term 4"), "{found:?}");
        // Long after the window, not its doing.
        assert!(intruder_disturbances(&faults, &[change(50.0, 4, "n3")], &[]).is_empty());
        // Its own before/after figures count too.
        let mut f = intruder("intruder-unkeyed", 20.0, 40.0);
        if let Some(r) = f.intruder.as_mut() {
            r.term_after = Some(4);
        }
        assert_eq!(intruder_disturbances(&[f], &[], &[]).len(), 1);
    }

    #[test]
    fn only_the_statefulsets_ordinals_count_as_twice() {
        let lines: Vec<String> = [
            "default/chaos-sts-1 on n0 and n2",
            "default/chaos-web-7c9f-abcde on n1 and n2",
            "default/chaos-sts-x on n1 and n2",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            crate::workload::statefulset_ordinals_twice(&lines),
            vec!["default/chaos-sts-1 on n0 and n2".to_string()]
        );
    }

    #[test]
    fn intruders_must_have_been_refused() {
        let removed = intruder("intruder-removed-follower", 1.0, 2.0);
        assert!(intruder_refusals(std::slice::from_ref(&removed)).0);
        let mut silent = removed.clone();
        if let Some(r) = silent.intruder.as_mut() {
            r.refused_rpcs = 0.0;
        }
        assert!(!intruder_refusals(&[removed.clone(), silent]).0);
        // The unkeyed one needs refused connections and a keyless refusal.
        let mut unkeyed = intruder("intruder-unkeyed", 1.0, 2.0);
        if let Some(r) = unkeyed.intruder.as_mut() {
            r.refused_connections = 12.0;
        }
        assert!(!intruder_refusals(std::slice::from_ref(&unkeyed)).0);
        if let Some(r) = unkeyed.intruder.as_mut() {
            r.keyless_refused = Some(true);
        }
        assert!(intruder_refusals(&[unkeyed]).0);
    }

    fn fault(kind: &'static str, at: f64, healed: f64, targets: &[&str]) -> FaultRecord {
        FaultRecord {
            targets: targets.iter().map(|s| s.to_string()).collect(),
            healed_at_secs: Some(healed),
            ..FaultRecord::new(at, kind)
        }
    }

    fn change(t: f64, term: u64, who: &str) -> (f64, u64, String) {
        (t, term, who.to_string())
    }

    #[test]
    fn a_leader_change_needs_a_fault_on_the_old_leader() {
        let faults = vec![
            fault("pause-leader", 10.0, 20.0, &["n1"]),
            fault("pause-random", 40.0, 50.0, &["n3"]),
        ];
        // n1 paused: n2 takes over; fine.
        let ok = vec![change(1.0, 1, "n1"), change(13.0, 2, "n2")];
        assert!(unexplained_leader_changes(&ok, &faults).is_empty());
        // n3, a follower, resumes and n2 loses its term: a deposed leader.
        let bad = vec![
            change(1.0, 1, "n1"),
            change(13.0, 2, "n2"),
            change(51.0, 4, "n3"),
        ];
        let found = unexplained_leader_changes(&bad, &faults);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("from n2"), "{found:?}");
        // Long after its fault healed, even the old leader's loss is unexplained.
        let late = vec![change(1.0, 1, "n1"), change(40.0, 2, "n2")];
        assert_eq!(unexplained_leader_changes(&late, &faults).len(), 1);
        // A bridge partition or a rolling restart explains any change.
        let wide = vec![fault("partition-bridge", 10.0, 20.0, &["n4", "n5"])];
        assert!(unexplained_leader_changes(&ok, &wide).is_empty());
        // Two campaigns in a row while the old leader is away: the second
        // deposes the first winner.
        let split = vec![
            change(1.0, 1, "n1"),
            change(13.0, 2, "n2"),
            change(13.1, 3, "n4"),
        ];
        let found = unexplained_leader_changes(&split, &faults);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("n4 took term 3 from n2"), "{found:?}");
    }
}
