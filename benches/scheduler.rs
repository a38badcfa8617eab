//! Scheduler throughput, in two parts.
//!
//! 1. Engine only: `Placer::place` for 100,000 pods over 5,000 nodes, in
//!    memory (Pack and Spread).
//! 2. Scheduler and store, the figure: a one-node Raft cluster in
//!    process (swarm and store only, see [`bare_store`]), 5,000 Node objects
//!    and 100,000 pending pods written through Raft, then `schedule_pending`
//!    passes until every pod is bound; the bindings go through Raft and
//!    rocksdb like any write. Then the same number of compare-and-set Puts,
//!    built beforehand, is written alone: the store's share of the figure.
//!
//! Run: `cargo build --release --bins --examples && target/release/examples/scheduler`
//! (`CARGO_TARGET_DIR` applies if set). Env: `NODE_COUNT` (default 5000),
//! `POD_COUNT` (default 100000), `PART` (`1` or `2` for one part only),
//! `BENCH_LIST` (set: also time one plain list of the pods).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use shoal::resource::{Kind, ObjectKey};
use shoal::scheduler::{NodeFit, Placer, PodNeeds, Strategy, schedule_pending};
use shoal::store::{Command, Op, Precondition, Store};

const MI: u64 = 1 << 20;
const GI: u64 = 1 << 30;
/// Node sizes (cores, GiB), a quarter small, half medium, a quarter large.
const NODE_SIZES: [(u64, u64); 4] = [(4, 16), (8, 32), (8, 32), (16, 64)];
/// Pod CPU requests in millicores, weighted towards small pods.
const POD_CPU: [u64; 7] = [100, 100, 200, 250, 250, 500, 1000];
/// Pod memory requests.
const POD_MEM: [u64; 5] = [64 * MI, 128 * MI, 256 * MI, 512 * MI, GI];
/// Replicas per group (one ReplicaSet's pods share their requests).
const REPLICAS: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator, so every run places the same pods.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

fn node_size(i: usize) -> (u64, u64) {
    NODE_SIZES[i % NODE_SIZES.len()]
}

/// (cpu millis, memory bytes) of group `g`'s pods.
fn group_requests(g: usize) -> (u64, u64) {
    let mut r = XorShift(0x9E37_79B9_7F4A_7C15 ^ (g as u64 + 1));
    (r.pick(&POD_CPU), r.pick(&POD_MEM))
}

fn pod_name(i: usize) -> String {
    format!("pod-{i:06}")
}

fn group_name(i: usize) -> String {
    format!("rs-{:05}", i / REPLICAS)
}

fn part1(nodes: usize, pods: usize) {
    let fits: Vec<NodeFit> = (0..nodes)
        .map(|i| {
            let (cores, gib) = node_size(i);
            NodeFit {
                name: node_name(i),
                cpu_millis: cores * 1000,
                memory_bytes: gib * GI,
                max_pods: 110,
                labels: BTreeMap::from([("kubernetes.io/hostname".into(), node_name(i))]),
                unschedulable: false,
                taints: Vec::new(),
                alive: true,
                other: Default::default(),
            }
        })
        .collect();
    let needs: Vec<PodNeeds> = (0..pods)
        .map(|i| {
            let (cpu, mem) = group_requests(i / REPLICAS);
            PodNeeds {
                key: ObjectKey::new(Kind::Pod, "default", &pod_name(i)),
                cpu_millis: cpu,
                memory_bytes: mem,
                node_selector: BTreeMap::new(),
                host_ports: Vec::new(),
                volume_nodes: None,
                group: Some(group_name(i)),
                node_affinity: None,
                tolerations: Vec::new(),
                labels: None,
                inter: None,
                other: Default::default(),
            }
        })
        .collect();
    let cpu_total: u64 = fits.iter().map(|n| n.cpu_millis).sum();
    let cpu_asked: u64 = needs.iter().map(|p| p.cpu_millis).sum();
    let mem_total: u64 = fits.iter().map(|n| n.memory_bytes).sum();
    let mem_asked: u64 = needs.iter().map(|p| p.memory_bytes).sum();
    println!(
        "part 1: engine only, {pods} pods on {nodes} nodes (pods ask {:.0}% of cpu, {:.0}% of memory)",
        cpu_asked as f64 * 100.0 / cpu_total as f64,
        mem_asked as f64 * 100.0 / mem_total as f64
    );
    println!(
        "{:<16} {:>10} {:>14} {:>10} {:>12} {:>16}",
        "strategy", "seconds", "placements/s", "failed", "nodes used", "groups doubled"
    );
    let (cfits, cneeds) = constrained(&fits, &needs);
    let ineeds = inter_pod(&needs);
    let runs = [
        ("pack", Strategy::Pack, &fits, &needs),
        ("spread", Strategy::Spread, &fits, &needs),
        ("pack+constraints", Strategy::Pack, &cfits, &cneeds),
        ("pack+inter-pod", Strategy::Pack, &cfits, &ineeds),
    ];
    for (label, strategy, fits, needs) in runs {
        let mut placer = Placer::new(fits.clone(), strategy);
        if needs.iter().any(|p| p.inter.is_some()) {
            placer.track_pods();
        }
        let mut placed = Vec::with_capacity(needs.len());
        let t = Instant::now();
        for p in needs.iter() {
            placed.push(placer.place(p).ok());
        }
        let secs = t.elapsed().as_secs_f64();
        let failed = placed.iter().filter(|p| p.is_none()).count();
        let used: std::collections::HashSet<&String> = placed.iter().flatten().collect();
        // Groups with two replicas on one node: what soft spreading avoids.
        let mut doubled = 0;
        for chunk in placed.chunks(REPLICAS) {
            let distinct: std::collections::HashSet<_> = chunk.iter().flatten().collect();
            if distinct.len() < chunk.iter().flatten().count() {
                doubled += 1;
            }
        }
        println!(
            "{:<16} {:>10.3} {:>14.0} {:>10} {:>12} {:>16}",
            label,
            secs,
            (pods - failed) as f64 / secs,
            failed,
            used.len(),
            doubled
        );
    }
}

/// The same cluster with scheduling constraints: nodes in three zones, one
/// in ten with a PreferNoSchedule taint and one in twenty with a NoSchedule
/// one; a fifth of the pods (every fifth group) require two of the zones,
/// prefer one of them, and half of those tolerate the NoSchedule taint.
fn constrained(fits: &[NodeFit], needs: &[PodNeeds]) -> (Vec<NodeFit>, Vec<PodNeeds>) {
    use shoal::resource::types::{
        NodeAffinity, NodeSelector, NodeSelectorOperator, NodeSelectorRequirement,
        NodeSelectorTerm, PreferredSchedulingTerm, Taint, TaintEffect, Toleration,
        TolerationOperator,
    };
    const ZONE: &str = "topology.kubernetes.io/zone";
    let fits = fits
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut f = f.clone();
            f.labels.insert(ZONE.into(), format!("zone-{}", i % 3));
            let taint = |key: &str, effect| Taint {
                key: key.into(),
                value: None,
                effect,
                time_added: None,
            };
            if i % 20 == 7 {
                f.taints.push(taint("dedicated", TaintEffect::NoSchedule));
            } else if i % 10 == 3 {
                f.taints.push(taint("flaky", TaintEffect::PreferNoSchedule));
            }
            f
        })
        .collect();
    let term = |zones: &[&str]| NodeSelectorTerm {
        match_expressions: vec![NodeSelectorRequirement {
            key: ZONE.into(),
            operator: NodeSelectorOperator::In,
            values: zones.iter().map(|z| z.to_string()).collect(),
        }],
        ..NodeSelectorTerm::default()
    };
    let affinity = std::sync::Arc::new(NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![term(&["zone-0", "zone-1"])],
        }),
        preferred_during_scheduling_ignored_during_execution: vec![PreferredSchedulingTerm {
            weight: 50,
            preference: term(&["zone-1"]),
        }],
    });
    let needs = needs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            let group = i / REPLICAS;
            if group.is_multiple_of(5) {
                p.node_affinity = Some(affinity.clone());
                if group.is_multiple_of(10) {
                    p.tolerations.push(Toleration {
                        key: Some("dedicated".into()),
                        operator: Some(TolerationOperator::Exists),
                        ..Toleration::default()
                    });
                }
            }
            p
        })
        .collect();
    (fits, needs)
}

/// Inter-pod rules on a fifth of the pods (every fifth group): half of
/// those groups keep their replicas on distinct hosts (required
/// anti-affinity), the other half spread them over the three zones
/// (maxSkew 1, DoNotSchedule) and prefer hosts without their siblings. Every
/// pod carries its group as a label, since the pass then tracks all pods.
fn inter_pod(needs: &[PodNeeds]) -> Vec<PodNeeds> {
    use shoal::resource::types::{Affinity, TopologySpreadConstraint};
    use shoal::scheduler::InterPod;
    needs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut p = p.clone();
            let group = i / REPLICAS;
            let labels = BTreeMap::from([("group".to_string(), group_name(i))]);
            if group.is_multiple_of(5) {
                let select = json!({"matchLabels": {"group": group_name(i)}});
                let (affinity, spread): (Option<Affinity>, Vec<TopologySpreadConstraint>) =
                    if group.is_multiple_of(10) {
                        let a = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": select, "topologyKey": "kubernetes.io/hostname"}]}});
                        (serde_json::from_value(a).ok(), Vec::new())
                    } else {
                        let a = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 100, "podAffinityTerm": {"labelSelector": select,
                                "topologyKey": "kubernetes.io/hostname"}}]}});
                        let s = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": select}]);
                        (
                            serde_json::from_value(a).ok(),
                            serde_json::from_value(s).unwrap_or_default(),
                        )
                    };
                p.inter = InterPod::of(affinity.as_ref(), &spread, "default", &labels)
                    .map(std::sync::Arc::new);
            }
            p.labels = Some(std::sync::Arc::new(labels));
            p
        })
        .collect()
}

fn node_object(i: usize) -> Value {
    let (cores, gib) = node_size(i);
    let name = node_name(i);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "x86_64",
            },
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {},
        "status": {
            "capacity": {"cpu": cores.to_string(), "memory": format!("{}Ki", gib * GI / 1024), "pods": "110"},
            "allocatable": {"cpu": cores.to_string(), "memory": format!("{}Ki", gib * GI / 1024), "pods": "110"},
            "addresses": [
                {"type": "InternalIP", "address": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {"runtime": "simulated", "shoalVersion": env!("CARGO_PKG_VERSION")},
        },
    })
}

fn pod_object(i: usize) -> Value {
    let (cpu, mem) = group_requests(i / REPLICAS);
    let group = group_name(i);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(i),
            "namespace": "default",
            "labels": {"app": group},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": group,
                "uid": format!("00000000-0000-0000-0000-{:012}", i / REPLICAS),
                "controller": true,
            }],
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": "busybox",
                "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": format!("{}Mi", mem / MI)}},
            }],
        },
    })
}

/// Writes objects `per_command` at a time, a few commands in flight.
async fn load(
    store: &Store,
    kind: Kind,
    count: usize,
    per_command: usize,
    make: fn(usize) -> Value,
) {
    let mut tasks: tokio::task::JoinSet<Result<_, shoal::store::StoreError>> =
        tokio::task::JoinSet::new();
    for start in (0..count).step_by(per_command) {
        let ops = (start..count.min(start + per_command))
            .map(|i| {
                let v = make(i);
                let name = v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                Op::Put {
                    key: ObjectKey::new(kind, "default", &name),
                    object: serde_json::to_vec(&v).expect("json"),
                    precondition: Precondition::MustNotExist,
                }
            })
            .collect();
        if tasks.len() >= 4 {
            tasks
                .join_next()
                .await
                .expect("a task")
                .expect("joins")
                .expect("write");
        }
        let store = store.clone();
        tasks.spawn(async move { store.write(Command { ops }).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("joins").expect("write");
    }
}

/// A one-node cluster of just the swarm and the store. `Node::start` would
/// also start the controller manager, which on the leader runs its own
/// scheduler pass with membership's view of the nodes: the 5,000 simulated
/// nodes are not members, so it would mark every pod unschedulable
/// ("node down") in a race with the passes measured here, and its node
/// lifecycle controller would fail the pods bound to them.
async fn bare_store(dir: &std::path::Path) -> (shoal::net::Net, Store) {
    let (net, store, me) = shoal::store::testing::open(dir, "bench").await;
    shoal::store::testing::lead_alone(&store, me).await;
    (net, store)
}

async fn part2(nodes: usize, pods: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (net, store) = bare_store(dir.path()).await;

    let t = Instant::now();
    load(&store, Kind::Node, nodes, 500, node_object).await;
    let t_nodes = t.elapsed();
    let t = Instant::now();
    load(&store, Kind::Pod, pods, 1000, pod_object).await;
    let t_pods = t.elapsed();
    println!();
    println!(
        "part 2: scheduler and store, one-node Raft cluster in process; setup wrote {nodes} nodes in {:.1} s, {pods} pods in {:.1} s",
        t_nodes.as_secs_f64(),
        t_pods.as_secs_f64()
    );
    println!(
        "{:<6} {:>10} {:>14} {:>10} {:>10}",
        "pass", "placed", "unschedulable", "conflicts", "seconds"
    );
    if std::env::var_os("BENCH_LIST").is_some() {
        let t = Instant::now();
        let (all, _) = store.list(Kind::Pod, None).expect("list pods");
        println!(
            "listing {} pods took {:.3} s",
            all.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let mut placed = 0;
    for pass in 1.. {
        let tp = Instant::now();
        let r = schedule_pending(&store, &|_| true, Strategy::Pack, 1000)
            .await
            .expect("a scheduling pass");
        println!(
            "{:<6} {:>10} {:>14} {:>10} {:>10.3}",
            pass,
            r.placed,
            r.unschedulable,
            r.conflicts,
            tp.elapsed().as_secs_f64()
        );
        placed += r.placed;
        // A pass with nothing unschedulable and no conflict left nothing pending.
        if (r.unschedulable == 0 && r.conflicts == 0) || r.placed == 0 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let (all, _) = store.list(Kind::Pod, None).expect("list pods");
    let bound = all
        .iter()
        .filter(|p| p.body["spec"]["nodeName"].as_str().is_some())
        .count();
    println!(
        "bound {bound}/{} pods in {secs:.2} s: {:.0} placements/s (target >= 20,000/s)",
        all.len(),
        placed as f64 / secs
    );
    println!(
        "anchors: Kubernetes' scheduler is tested at a few hundred pods/s; Nomad's 2-million-container challenge ran at roughly 1,500 placements/s"
    );

    // The store's share: the same kind of writes (every pod re-bound to the
    // next node, a compare-and-set Put 1000 per command), built beforehand,
    // so only Raft, the state machine and rocksdb are timed.
    let ops: Vec<Op> = all
        .into_iter()
        .enumerate()
        .map(|(i, mut p)| {
            p.body["spec"]["nodeName"] = json!(node_name((i + 1) % nodes));
            Op::Put {
                key: p.key().expect("a key"),
                object: serde_json::to_vec(&p).expect("json"),
                precondition: Precondition::Version(p.resource_version()),
            }
        })
        .collect();
    let n = ops.len();
    let mut commands: Vec<Vec<Op>> = Vec::new();
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        commands.push(ops.by_ref().take(1000).collect());
    }
    let t = Instant::now();
    let mut tasks: tokio::task::JoinSet<Result<_, shoal::store::StoreError>> =
        tokio::task::JoinSet::new();
    for ops in commands {
        if tasks.len() >= 4 {
            tasks
                .join_next()
                .await
                .expect("a task")
                .expect("joins")
                .expect("write");
        }
        let store = store.clone();
        tasks.spawn(async move { store.write(Command { ops }).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("joins").expect("write");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "store alone: the same {n} compare-and-set Puts, built beforehand, 1000 per command, 4 in flight as the scheduler: {secs:.2} s, {:.0} writes/s",
        n as f64 / secs
    );
    store.shutdown().await;
    net.shutdown().await;
}

// The same allocator as the `shoal` binary, so part 2 measures what the daemon does.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let nodes = env_usize("NODE_COUNT", 5000);
    let pods = env_usize("POD_COUNT", 100_000);
    let part = std::env::var("PART").unwrap_or_default();
    if part != "2" {
        part1(nodes, pods);
    }
    if part != "1" {
        part2(nodes, pods).await;
    }
}
