//! The placer's unit tests: filters, scoring, spreading and the reasons.

use super::*;
use crate::resource::Kind;

const MI: u64 = 1 << 20;
const GI: u64 = 1 << 30;

pub(super) fn node(name: &str, cores: u64, gib: u64) -> NodeFit {
    NodeFit {
        name: name.into(),
        cpu_millis: cores * 1000,
        memory_bytes: gib * GI,
        max_pods: 110,
        labels: BTreeMap::new(),
        unschedulable: false,
        taints: Vec::new(),
        alive: true,
        other: Default::default(),
    }
}

pub(super) fn pod(name: &str, cpu: u64, mem: u64) -> PodNeeds {
    PodNeeds {
        cpu_millis: cpu,
        memory_bytes: mem,
        ..PodNeeds::nothing(ObjectKey::new(Kind::Pod, "default", name))
    }
}

fn counts(placed: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for n in placed {
        *m.entry(n.as_str()).or_insert(0) += 1;
    }
    m
}

fn place_n(p: &mut Placer, n: usize, cpu: u64, mem: u64) -> Vec<String> {
    (0..n)
        .map(|i| p.place(&pod(&format!("p{i}"), cpu, mem)).expect("fits"))
        .collect()
}

#[test]
fn pack_fills_the_fullest_node_first() {
    let nodes = vec![node("one", 1, 8), node("two", 2, 8), node("four", 4, 8)];
    let mut p = Placer::new(nodes, Strategy::Pack);
    let placed = place_n(&mut p, 7, 500, 0);
    // The 1-core node is the most allocated after any 500m pod, so it
    // fills first, then the 2-core one.
    assert_eq!(placed[..2], ["one", "one"]);
    assert_eq!(placed[2..6], ["two", "two", "two", "two"]);
    assert_eq!(placed[6], "four");
    let placed = place_n(&mut p, 7, 500, 0);
    assert!(placed.iter().all(|n| n == "four"), "{placed:?}");
    let err = p.place(&pod("last", 500, 0)).unwrap_err();
    assert_eq!(err.to_string(), "0/3 nodes: insufficient cpu (3)");
}

#[test]
fn spread_balances_the_share_used() {
    let nodes = vec![node("one", 1, 8), node("two", 2, 8), node("four", 4, 8)];
    let mut p = Placer::new(nodes, Strategy::Spread);
    let placed = place_n(&mut p, 7, 500, 0);
    assert_eq!(placed[0], "four", "the emptiest after placing");
    // Every node ends half used: 1, 2 and 4 pods.
    assert_eq!(
        counts(&placed),
        BTreeMap::from([("four", 4), ("one", 1), ("two", 2)])
    );
}

#[test]
fn memory_counts_like_cpu() {
    let nodes = vec![node("a", 4, 4), node("b", 4, 16)];
    let mut p = Placer::new(nodes.clone(), Strategy::Pack);
    assert_eq!(p.place(&pod("x", 100, GI)).unwrap(), "a");
    let mut p = Placer::new(nodes, Strategy::Spread);
    assert_eq!(p.place(&pod("x", 100, GI)).unwrap(), "b");
}

#[test]
fn reasons_string_is_exact() {
    let mut cordoned = node("c", 4, 8);
    cordoned.unschedulable = true;
    let nodes = vec![node("a", 4, 1), cordoned, node("b", 4, 1)];
    let mut p = Placer::new(nodes, Strategy::Pack);
    let err = p.place(&pod("big", 100, 2 * GI)).unwrap_err();
    assert_eq!(err.nodes, 3);
    assert_eq!(
        err.to_string(),
        "0/3 nodes: insufficient memory (2), cordoned (1)"
    );
    // Equal counts sort by name.
    let mut down = node("d", 4, 8);
    down.alive = false;
    let mut p = Placer::new(vec![node("a", 1, 8), down], Strategy::Pack);
    assert_eq!(
        p.place(&pod("x", 2000, 0)).unwrap_err().to_string(),
        "0/2 nodes: insufficient cpu (1), node down (1)"
    );
    let mut p = Placer::new(Vec::new(), Strategy::Pack);
    let err = p.place(&pod("x", 0, 0)).unwrap_err();
    assert_eq!(err.to_string(), "0/0 nodes: no nodes");
}

#[test]
fn first_failing_filter_counts() {
    // A down, cordoned node that would also lack cpu counts as down only.
    let mut n = node("a", 1, 1);
    n.alive = false;
    n.unschedulable = true;
    let mut p = Placer::new(vec![n], Strategy::Pack);
    let err = p.place(&pod("x", 2000, 2 * GI)).unwrap_err();
    assert_eq!(err.reasons, BTreeMap::from([("node down".to_string(), 1)]));
    // Too many pods comes before cpu and memory.
    let mut n = node("a", 1, 1);
    n.max_pods = 0;
    let mut p = Placer::new(vec![n], Strategy::Pack);
    let err = p.place(&pod("x", 2000, 2 * GI)).unwrap_err();
    assert_eq!(err.to_string(), "0/1 nodes: too many pods (1)");
}

#[test]
fn node_selector_must_match_every_label() {
    let mut ssd = node("ssd", 2, 8);
    ssd.labels.insert("disk".into(), "ssd".into());
    ssd.labels.insert("zone".into(), "a".into());
    let mut hdd = node("hdd", 8, 8);
    hdd.labels.insert("disk".into(), "hdd".into());
    let mut p = Placer::new(vec![hdd, ssd], Strategy::Spread);
    let mut x = pod("x", 100, MI);
    x.node_selector.insert("disk".into(), "ssd".into());
    assert_eq!(p.place(&x).unwrap(), "ssd");
    x.node_selector.insert("zone".into(), "b".into());
    assert_eq!(
        p.place(&x).unwrap_err().to_string(),
        "0/2 nodes: node selector mismatch (2)"
    );
}

#[test]
fn host_ports_do_not_collide() {
    let mut p = Placer::new(vec![node("a", 4, 8), node("b", 4, 8)], Strategy::Pack);
    let mut web = pod("web", 100, MI);
    web.host_ports = vec![8080];
    let first = p.place(&web).unwrap();
    let second = p.place(&web).unwrap();
    assert_ne!(first, second);
    assert_eq!(
        p.place(&web).unwrap_err().to_string(),
        "0/2 nodes: host port conflict (2)"
    );
    // Other ports still fit, and under Pack on the fuller node.
    let mut other = pod("other", 100, MI);
    other.host_ports = vec![9090];
    assert!(p.place(&other).is_ok());
    // Freeing the port makes room again.
    p.remove_bound(&first, &web);
    assert_eq!(p.place(&web).unwrap(), first);
}

#[test]
fn max_pods_counts_pods_that_request_nothing() {
    let mut n = node("a", 1, 1);
    n.max_pods = 3;
    let mut p = Placer::new(vec![n], Strategy::Pack);
    for _ in 0..3 {
        assert_eq!(p.place(&pod("x", 0, 0)).unwrap(), "a");
    }
    assert_eq!(
        p.place(&pod("x", 0, 0)).unwrap_err().to_string(),
        "0/1 nodes: too many pods (1)"
    );
}

#[test]
fn down_and_cordoned_nodes_take_nothing() {
    let mut down = node("down", 64, 64);
    down.alive = false;
    let mut cordoned = node("cordoned", 64, 64);
    cordoned.unschedulable = true;
    let mut p = Placer::new(
        vec![down, cordoned.clone(), node("small", 1, 1)],
        Strategy::Spread,
    );
    for _ in 0..4 {
        assert_eq!(p.place(&pod("x", 250, MI)).unwrap(), "small");
    }
    assert_eq!(
        p.place(&pod("x", 250, MI)).unwrap_err().to_string(),
        "0/3 nodes: cordoned (1), insufficient cpu (1), node down (1)"
    );
    // A cordoned node's bound pods still count against it.
    let mut p = Placer::new(vec![cordoned], Strategy::Pack);
    p.add_bound("cordoned", &pod("old", 1000, GI));
    assert!(p.place(&pod("x", 0, 0)).is_err());
}

#[test]
fn replicas_of_a_group_spread_over_equal_nodes() {
    for strategy in [Strategy::Pack, Strategy::Spread] {
        let nodes = (0..5).map(|i| node(&format!("n{i}"), 4, 16)).collect();
        let mut p = Placer::new(nodes, strategy);
        let mut placed = Vec::new();
        for i in 0..5 {
            let mut r = pod(&format!("web-{i}"), 1000, 2 * GI);
            r.group = Some("web".into());
            placed.push(p.place(&r).unwrap());
        }
        let distinct: std::collections::BTreeSet<_> = placed.iter().collect();
        assert_eq!(distinct.len(), 5, "{strategy:?}: {placed:?}");
        // A sixth replica doubles up somewhere: spreading is soft.
        let mut r = pod("web-5", 1000, 2 * GI);
        r.group = Some("web".into());
        assert!(p.place(&r).is_ok());
    }
    // Without a group, Pack keeps filling one node.
    let nodes = (0..5).map(|i| node(&format!("n{i}"), 4, 16)).collect();
    let mut p = Placer::new(nodes, Strategy::Pack);
    let placed = place_n(&mut p, 4, 1000, 2 * GI);
    assert_eq!(counts(&placed).len(), 1, "{placed:?}");
}

#[test]
fn group_spreading_yields_to_a_much_fuller_node() {
    // Pack: node a is three-quarters full with other pods; a second
    // replica still joins the first there rather than open empty b.
    let mut p = Placer::new(vec![node("a", 4, 16), node("b", 4, 16)], Strategy::Pack);
    p.add_bound("a", &pod("other", 3000, 12 * GI));
    let mut r = pod("r", 250, GI);
    r.group = Some("g".into());
    assert_eq!(p.place(&r).unwrap(), "a");
    assert_eq!(p.place(&r).unwrap(), "a");
    // With a and b alike, the second replica goes to b.
    let mut p = Placer::new(vec![node("a", 4, 16), node("b", 4, 16)], Strategy::Pack);
    assert_eq!(p.place(&r).unwrap(), "a");
    assert_eq!(p.place(&r).unwrap(), "b");
}

#[test]
fn a_pod_fits_as_soon_as_room_appears() {
    let mut p = Placer::new(vec![node("a", 2, 4)], Strategy::Pack);
    let old = pod("old", 1500, GI);
    p.add_bound("a", &old);
    p.add_bound("elsewhere", &old);
    let new = pod("new", 1000, GI);
    assert_eq!(
        p.place(&new).unwrap_err().to_string(),
        "0/1 nodes: insufficient cpu (1)"
    );
    p.remove_bound("a", &old);
    assert_eq!(p.place(&new).unwrap(), "a");
    // And it is accounted: another one fits, a third does not.
    assert_eq!(p.place(&new).unwrap(), "a");
    assert!(p.place(&new).is_err());
}

#[test]
fn large_clusters_score_a_sample_and_rotate() {
    let nodes: Vec<NodeFit> = (0..1000)
        .map(|i| node(&format!("n{i:04}"), 4, 16))
        .collect();
    let mut p = Placer::new(nodes, Strategy::Spread);
    assert_eq!(p.to_score, 100);
    // Equal empty nodes: each pod takes the first of its window, and the
    // window moves on by the nodes walked.
    assert_eq!(p.place(&pod("a", 100, MI)).unwrap(), "n0000");
    assert_eq!(p.place(&pod("b", 100, MI)).unwrap(), "n0100");
    // A pod that fits nowhere walks every node and counts each once.
    let err = p.place(&pod("huge", 5000, MI)).unwrap_err();
    assert_eq!(err.to_string(), "0/1000 nodes: insufficient cpu (1000)");
}

#[test]
fn node_affinity_and_taints_filter_and_steer() {
    use crate::resource::types::{
        NodeAffinity, NodeSelector, NodeSelectorOperator, NodeSelectorRequirement,
        NodeSelectorTerm, PreferredSchedulingTerm, TolerationOperator,
    };
    use std::sync::Arc;
    let zone = |z: &str| BTreeMap::from([("zone".to_string(), z.to_string())]);
    let taint = |key: &str, effect| Taint {
        key: key.into(),
        value: None,
        effect,
        time_added: None,
    };
    let nodes = || {
        let mut a = node("a", 4, 16);
        a.labels = zone("a");
        let mut b = node("b", 4, 16);
        b.labels = zone("b");
        b.taints = vec![taint("dedicated", TaintEffect::NoSchedule)];
        let mut c = node("c", 4, 16);
        c.labels = zone("b");
        c.taints = vec![taint("flaky", TaintEffect::PreferNoSchedule)];
        vec![a, b, c]
    };
    let term = |z: &str| NodeSelectorTerm {
        match_expressions: vec![NodeSelectorRequirement {
            key: "zone".into(),
            operator: NodeSelectorOperator::In,
            values: vec![z.into()],
        }],
        ..NodeSelectorTerm::default()
    };
    let requiring = |z: &str| NodeAffinity {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: vec![term(z)],
        }),
        ..NodeAffinity::default()
    };
    let dedicated = Toleration {
        key: Some("dedicated".into()),
        operator: Some(TolerationOperator::Exists),
        ..Toleration::default()
    };

    // Required zone b, no toleration: only c, which is merely disliked.
    let mut p = Placer::new(nodes(), Strategy::Spread);
    let mut in_b = pod("x", 100, MI);
    in_b.node_affinity = Some(Arc::new(requiring("b")));
    assert_eq!(p.place(&in_b).unwrap(), "c");
    // Too big for what c has left: each node fails for its own reason.
    let mut too_big = pod("w", 3950, MI);
    too_big.node_affinity = Some(Arc::new(requiring("b")));
    let err = p.place(&too_big).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes: insufficient cpu (1), node affinity mismatch (1), untolerated taint (1)"
    );
    // The toleration opens b; a pod that tolerates also takes the
    // untainted-for-it node over the one with a soft taint.
    let mut tolerating = pod("y", 100, MI);
    tolerating.node_affinity = Some(Arc::new(requiring("b")));
    tolerating.tolerations = vec![dedicated];
    let mut p = Placer::new(nodes(), Strategy::Spread);
    assert_eq!(p.place(&tolerating).unwrap(), "b");

    // Nothing asked: the soft taint steers pods to a, until a is full.
    let mut p = Placer::new(nodes(), Strategy::Spread);
    assert_eq!(p.place(&pod("p1", 3000, MI)).unwrap(), "a");
    assert_eq!(p.place(&pod("p2", 3000, MI)).unwrap(), "c");
    assert!(p.place(&pod("p3", 3000, MI)).is_err());

    // A preference wins over a packing score.
    let mut p = Placer::new(nodes(), Strategy::Pack);
    assert_eq!(p.place(&pod("big", 2000, MI)).unwrap(), "a");
    let mut prefers_c = pod("z", 100, MI);
    prefers_c.node_affinity = Some(Arc::new(NodeAffinity {
        preferred_during_scheduling_ignored_during_execution: vec![PreferredSchedulingTerm {
            weight: 100,
            preference: term("b"),
        }],
        ..NodeAffinity::default()
    }));
    assert_eq!(p.place(&prefers_c).unwrap(), "c");
}
