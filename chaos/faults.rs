//! Runs the fault schedule: each fault is injected, held, and healed before
//! the next one starts, and every step is recorded with its time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, NodeState};
use crate::intruder;
use crate::netns::cut_between;
use crate::record::FaultRecord;
use crate::scenario::{FaultKind, Planned};
use crate::workload::Recorder;

/// Fills each fault's `min_ready` and `ready_again_after_secs` from the
/// readiness timeline (samples of (seconds, ready pods)).
pub fn attach_readiness(records: &mut [FaultRecord], timeline: &[(f64, usize)], replicas: usize) {
    let starts: Vec<f64> = records.iter().map(|r| r.at_secs).collect();
    for (k, r) in records.iter_mut().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(f64::INFINITY);
        let window: Vec<&(f64, usize)> = timeline
            .iter()
            .filter(|(t, _)| *t >= r.at_secs && *t < end)
            .collect();
        r.min_ready = window.iter().map(|(_, n)| *n).min();
        let Some(dip) = window.iter().position(|(_, n)| *n < replicas) else {
            continue;
        };
        r.ready_again_after_secs = window[dip..]
            .iter()
            .find(|(_, n)| *n >= replicas)
            .map(|(t, _)| t - r.at_secs);
    }
}

/// How long a `*-leader` fault waits for a leader to exist before it is skipped.
const LEADER_WAIT: Duration = Duration::from_secs(15);

/// How long a rolling restart waits for each node to be healthy again.
const REJOIN_WAIT: Duration = Duration::from_secs(60);

/// Runs `plan` (times relative to `start`); returns what was done.
pub async fn run(
    cluster: Arc<Cluster>,
    rec: Arc<Recorder>,
    plan: Vec<Planned>,
    start: Instant,
    host_died: bool,
    graceful: bool,
    intruders: Arc<intruder::Context>,
) -> Vec<FaultRecord> {
    let mut out = Vec::new();
    for p in plan {
        let at = start + Duration::from_millis(p.at_ms);
        tokio::time::sleep_until(at.into()).await;
        let mut rec_entry = FaultRecord::new(rec.secs(), p.kind.name());
        let done = inject(
            &cluster,
            &rec,
            &p,
            host_died,
            graceful,
            &intruders,
            &mut rec_entry,
        )
        .await;
        if let Err(e) = done {
            rec_entry.note = format!("{} error: {e:#}", rec_entry.note)
                .trim()
                .to_string();
        }
        eprintln!(
            "[{:>6.1}s] {} {} {}",
            rec_entry.at_secs,
            rec_entry.kind,
            rec_entry.targets.join(","),
            rec_entry.note
        );
        out.push(rec_entry);
    }
    out
}

/// The nodes of a partition side by name.
fn names(cluster: &Cluster, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|i| cluster.specs[*i].name.clone()).collect()
}

/// Holds a fault on `old` for `hold`. When it took the leader (of `term`)
/// away, watches the other reachable nodes for a leader of a later term
/// meanwhile and notes how long that took.
async fn hold_fault(
    cluster: &Cluster,
    old: &[usize],
    term: Option<u64>,
    hold: Duration,
    r: &mut FaultRecord,
) {
    let Some(term) = term else {
        tokio::time::sleep(hold).await;
        return;
    };
    let t = Instant::now();
    let end = t + hold;
    let others: Vec<usize> = cluster
        .reachable()
        .into_iter()
        .filter(|i| !old.contains(i))
        .collect();
    while Instant::now() < end {
        if let Some((i, t2)) = cluster.leader_among(&others).await
            && t2 > term
        {
            let secs = t.elapsed().as_secs_f64();
            r.failover_secs = Some(secs);
            r.note = format!(
                "{}; {} leads term {t2} after {secs:.1} s",
                r.note, cluster.specs[i].name
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if r.failover_secs.is_none() {
        r.note = format!("{}; no new leader during the hold", r.note);
    }
    tokio::time::sleep_until(end.into()).await;
}

/// The node a single-node fault hits: the leader (with its term) for the
/// leader kinds, else the plan's pick.
async fn single_target(
    cluster: &Cluster,
    p: &Planned,
    r: &mut FaultRecord,
) -> anyhow::Result<(usize, Option<u64>)> {
    match p.kind {
        FaultKind::KillLeader | FaultKind::PauseLeader => {
            let (l, t) = leader_or_skip(cluster, r).await?;
            Ok((l, Some(t)))
        }
        _ => Ok((p.order[0], None)),
    }
}

async fn leader_or_skip(cluster: &Cluster, r: &mut FaultRecord) -> anyhow::Result<(usize, u64)> {
    match cluster.wait_leader(LEADER_WAIT).await {
        Some(l) => {
            r.note = format!("leader of term {}", l.1);
            Ok(l)
        }
        None => anyhow::bail!("skipped: no leader within {LEADER_WAIT:?}"),
    }
}

async fn inject(
    cluster: &Cluster,
    rec: &Recorder,
    p: &Planned,
    host_died: bool,
    graceful: bool,
    intruders: &intruder::Context,
    r: &mut FaultRecord,
) -> anyhow::Result<()> {
    let hold = Duration::from_millis(p.hold_ms);
    let n = cluster.len();
    match p.kind {
        FaultKind::IntruderUnkeyed => intruder::unkeyed(intruders, cluster, rec, hold, r).await?,
        FaultKind::IntruderRemovedLeader | FaultKind::IntruderRemovedFollower => {
            let leader = p.kind == FaultKind::IntruderRemovedLeader;
            intruder::removed(intruders, cluster, rec, &p.order, leader, hold, r).await?
        }
        FaultKind::KillRandom | FaultKind::KillLeader | FaultKind::ReplaceHost => {
            let (target, term) = single_target(cluster, p, r).await?;
            r.at_secs = rec.secs();
            r.targets = names(cluster, &[target]);
            let replace = p.kind == FaultKind::ReplaceHost;
            let t = Instant::now();
            cluster.kill(target, host_died || replace).await?;
            if replace {
                cluster.wipe(target)?;
                r.note = format!("{} data dir wiped", r.note).trim().to_string();
            } else if host_died {
                r.note = format!("{} pods killed", r.note).trim().to_string();
            }
            let rest = hold.saturating_sub(t.elapsed());
            hold_fault(cluster, &[target], term, rest, r).await;
            cluster.start(target)?;
            r.healed_at_secs = Some(rec.secs());
        }
        FaultKind::PauseRandom | FaultKind::PauseLeader => {
            let (target, term) = single_target(cluster, p, r).await?;
            r.at_secs = rec.secs();
            r.targets = names(cluster, &[target]);
            cluster.pause(target)?;
            hold_fault(cluster, &[target], term, hold, r).await;
            cluster.resume(target)?;
            r.healed_at_secs = Some(rec.secs());
        }
        FaultKind::PartitionMinority
        | FaultKind::PartitionLeader
        | FaultKind::PartitionLeaderMinority
        | FaultKind::PartitionBridge => {
            let minority = (n - 1) / 2;
            let mut leader_term = None;
            let sides: Vec<Vec<usize>> = match p.kind {
                FaultKind::PartitionMinority => {
                    let (a, b) = p.order.split_at(minority);
                    // The leader may be on either side; when it is cut off,
                    // the majority's failover is worth timing too.
                    if let Some((l, term)) = cluster.leader().await
                        && a.contains(&l)
                    {
                        r.note = format!(
                            "leader {} of term {term} in the minority",
                            cluster.specs[l].name
                        );
                        leader_term = Some(term);
                    }
                    vec![a.to_vec(), b.to_vec()]
                }
                FaultKind::PartitionLeader | FaultKind::PartitionLeaderMinority => {
                    let (leader, term) = leader_or_skip(cluster, r).await?;
                    leader_term = Some(term);
                    let size = if p.kind == FaultKind::PartitionLeader {
                        1
                    } else {
                        minority
                    };
                    let mut cut = vec![leader];
                    cut.extend(p.order.iter().filter(|i| **i != leader).take(size - 1));
                    let rest = (0..n).filter(|i| !cut.contains(i)).collect();
                    vec![cut, rest]
                }
                _ => {
                    // order[0] bridges; the others split in two halves.
                    let rest = &p.order[1..];
                    let (a, b) = rest.split_at(rest.len() / 2);
                    r.note = format!("bridge {}", cluster.specs[p.order[0]].name);
                    vec![a.to_vec(), b.to_vec()]
                }
            };
            r.at_secs = rec.secs();
            r.targets = names(cluster, &sides[0]);
            let shown: Vec<String> = sides
                .iter()
                .map(|s| format!("[{}]", names(cluster, s).join(",")))
                .collect();
            r.note = format!("{} sides {}", r.note, shown.join(" | "))
                .trim()
                .to_string();
            cluster.set_partition(&cut_between(&sides))?;
            hold_fault(cluster, &sides[0], leader_term, hold, r).await;
            cluster.set_partition(&Default::default())?;
            r.healed_at_secs = Some(rec.secs());
        }
        FaultKind::RollingRestart => {
            r.at_secs = rec.secs();
            r.targets = names(cluster, &p.order);
            let mut times = Vec::new();
            for &i in &p.order {
                if cluster.state(i) == NodeState::Down {
                    continue;
                }
                let t = Instant::now();
                if graceful {
                    cluster.terminate(i).await?;
                } else {
                    cluster.kill(i, false).await?;
                }
                let stopped = t.elapsed();
                tokio::time::sleep(hold).await;
                cluster.start(i)?;
                // The next node goes only once this one serves again, as an
                // operator's rolling upgrade would do.
                let deadline = Instant::now() + REJOIN_WAIT;
                while !cluster.healthy(i).await && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                times.push(format!(
                    "{} stop {:.1}s back {:.1}s",
                    cluster.specs[i].name,
                    stopped.as_secs_f64(),
                    t.elapsed().as_secs_f64()
                ));
                // Give gossip and Raft a moment to count it back in.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            r.note = times.join("; ");
            r.healed_at_secs = Some(rec.secs());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: f64) -> FaultRecord {
        FaultRecord::new(at, "kill-random")
    }

    #[test]
    fn readiness_per_fault_window() {
        let mut rs = vec![record(10.0), record(20.0), record(30.0)];
        let timeline = [
            (9.0, 3),
            (11.0, 3),
            (12.0, 2),
            (15.0, 3),
            (21.0, 3),
            (31.0, 1),
            (33.0, 2),
        ];
        attach_readiness(&mut rs, &timeline, 3);
        assert_eq!(rs[0].min_ready, Some(2));
        assert_eq!(rs[0].ready_again_after_secs, Some(5.0));
        assert_eq!(rs[1].min_ready, Some(3));
        assert_eq!(rs[1].ready_again_after_secs, None);
        assert_eq!(rs[2].min_ready, Some(1));
        assert_eq!(rs[2].ready_again_after_secs, None);
    }
}
