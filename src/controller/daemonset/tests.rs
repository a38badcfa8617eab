use super::*;
use crate::resource::types::{
    Affinity, DaemonSetUpdateStrategy, IntOrString, LabelSelector, NodeAffinity, NodeSelector,
    NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm, PodTemplateSpec,
    RollingUpdateDaemonSet, Toleration, TolerationOperator,
};

fn spec(strategy: DaemonSetStrategyType, surge: i32, unavailable: i32) -> DaemonSetSpec {
    DaemonSetSpec {
        selector: LabelSelector::default(),
        template: PodTemplateSpec::default(),
        update_strategy: Some(DaemonSetUpdateStrategy {
            strategy_type: Some(strategy),
            rolling_update: (strategy == DaemonSetStrategyType::RollingUpdate).then_some(
                RollingUpdateDaemonSet {
                    max_surge: Some(IntOrString::Int(surge)),
                    max_unavailable: Some(IntOrString::Int(unavailable)),
                },
            ),
        }),
        ..DaemonSetSpec::default()
    }
}

fn rolling(unavailable: i32) -> DaemonSetSpec {
    spec(DaemonSetStrategyType::RollingUpdate, 0, unavailable)
}

fn node(name: &str) -> DsNode {
    DsNode {
        name: name.into(),
        labels: BTreeMap::new(),
        taints: Vec::new(),
        up: true,
        no_room: None,
    }
}

/// A pod `name` on `node` of template `hash`, available unless said.
fn pod(name: &str, node: &str, hash: &str) -> DsPod {
    DsPod {
        name: name.into(),
        node: Some(node.into()),
        hash: hash.into(),
        terminal: false,
        ready: true,
        available: true,
        created: "2026-01-01T00:00:00Z".into(),
    }
}

fn down(mut p: DsPod) -> DsPod {
    p.ready = false;
    p.available = false;
    p
}

struct Case {
    name: &'static str,
    spec: DaemonSetSpec,
    nodes: Vec<DsNode>,
    pods: Vec<DsPod>,
    create: &'static [&'static str],
    delete: &'static [&'static str],
    no_room: &'static [&'static str],
}

#[test]
fn plans() {
    let mut labelled = node("n2");
    labelled.labels.insert("disk".into(), "ssd".into());
    let mut ssd_only = rolling(1);
    ssd_only
        .template
        .spec
        .node_selector
        .insert("disk".into(), "ssd".into());
    let mut full = node("n3");
    full.no_room = Some("insufficient cpu".into());
    let mut gone_down = node("n2");
    gone_down.up = false;
    let mut cordoned_is_eligible = node("n1");
    cordoned_is_eligible.labels.insert("x".into(), "y".into());
    let mut terminal = pod("a-1", "n1", "h2");
    terminal.terminal = true;
    let mut tainted = node("n2");
    tainted.taints.push(Taint {
        key: "dedicated".into(),
        value: Some("db".into()),
        effect: TaintEffect::NoSchedule,
        time_added: None,
    });
    let mut tolerant = rolling(1);
    tolerant.template.spec.tolerations.push(Toleration {
        key: Some("dedicated".into()),
        operator: Some(TolerationOperator::Exists),
        ..Toleration::default()
    });
    let mut not_n3 = rolling(1);
    not_n3.template.spec.affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_fields: vec![NodeSelectorRequirement {
                        key: "metadata.name".into(),
                        operator: NodeSelectorOperator::NotIn,
                        values: vec!["n3".into()],
                    }],
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    });
    let cases = vec![
        Case {
            name: "a tainted node gets no pod, and loses the one it had",
            spec: rolling(1),
            nodes: vec![node("n1"), tainted.clone()],
            pods: vec![pod("a-2", "n2", "h2")],
            create: &["n1"],
            delete: &["a-2"],
            no_room: &[],
        },
        Case {
            name: "a pod that tolerates the taint goes there",
            spec: tolerant,
            nodes: vec![node("n1"), tainted],
            pods: vec![],
            create: &["n1", "n2"],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "required node affinity restricts the nodes",
            spec: not_n3,
            nodes: vec![node("n1"), node("n2"), node("n3")],
            pods: vec![],
            create: &["n1", "n2"],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "a pod per node",
            spec: rolling(1),
            nodes: vec![node("n1"), node("n2"), node("n3")],
            pods: vec![pod("a-1", "n1", "h2")],
            create: &["n2", "n3"],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "the node selector restricts; misscheduled pods go",
            spec: ssd_only,
            nodes: vec![node("n1"), labelled, node("n3")],
            pods: vec![pod("a-1", "n1", "h2")],
            create: &["n2"],
            delete: &["a-1"],
            no_room: &[],
        },
        Case {
            name: "a full node gets no pod, and is told",
            spec: rolling(1),
            nodes: vec![node("n1"), full],
            pods: vec![],
            create: &["n1"],
            delete: &[],
            no_room: &["n3"],
        },
        Case {
            name: "a node down keeps its pod for node lifecycle, gets none",
            spec: rolling(1),
            nodes: vec![node("n1"), gone_down],
            pods: vec![pod("a-2", "n2", "h2")],
            create: &["n1"],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "a pod of a gone node is deleted",
            spec: rolling(1),
            nodes: vec![node("n1")],
            pods: vec![pod("a-1", "n1", "h2"), pod("a-9", "n9", "h2")],
            create: &[],
            delete: &["a-9"],
            no_room: &[],
        },
        Case {
            name: "a finished pod is replaced",
            spec: rolling(1),
            nodes: vec![cordoned_is_eligible],
            pods: vec![terminal],
            create: &["n1"],
            delete: &["a-1"],
            no_room: &[],
        },
        Case {
            name: "rolling update: one node at a time",
            spec: rolling(1),
            nodes: vec![node("n1"), node("n2"), node("n3")],
            pods: vec![
                pod("a-1", "n1", "h1"),
                pod("a-2", "n2", "h1"),
                pod("a-3", "n3", "h1"),
            ],
            create: &["n1"],
            delete: &["a-1"],
            no_room: &[],
        },
        Case {
            name: "rolling update: maxUnavailable 2",
            spec: rolling(2),
            nodes: vec![node("n1"), node("n2"), node("n3")],
            pods: vec![
                pod("a-1", "n1", "h1"),
                pod("a-2", "n2", "h1"),
                pod("a-3", "n3", "h1"),
            ],
            create: &["n1", "n2"],
            delete: &["a-1", "a-2"],
            no_room: &[],
        },
        Case {
            name: "rolling update waits while a new pod is not available",
            spec: rolling(1),
            nodes: vec![node("n1"), node("n2"), node("n3")],
            pods: vec![
                down(pod("b-1", "n1", "h2")),
                pod("a-2", "n2", "h1"),
                pod("a-3", "n3", "h1"),
            ],
            create: &[],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "an old pod already down is replaced without waiting",
            spec: rolling(1),
            nodes: vec![node("n1"), node("n2")],
            pods: vec![down(pod("b-1", "n1", "h2")), down(pod("a-2", "n2", "h1"))],
            create: &["n2"],
            delete: &["a-2"],
            no_room: &[],
        },
        Case {
            name: "surge: the new pod starts beside the old one",
            spec: spec(DaemonSetStrategyType::RollingUpdate, 1, 0),
            nodes: vec![node("n1"), node("n2")],
            pods: vec![pod("a-1", "n1", "h1"), pod("a-2", "n2", "h1")],
            create: &["n1"],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "surge: the old pod goes once the new one is available",
            spec: spec(DaemonSetStrategyType::RollingUpdate, 1, 0),
            nodes: vec![node("n1"), node("n2")],
            pods: vec![
                pod("a-1", "n1", "h1"),
                pod("b-1", "n1", "h2"),
                pod("a-2", "n2", "h1"),
            ],
            create: &["n2"],
            delete: &["a-1"],
            no_room: &[],
        },
        Case {
            name: "surge: no second surge while one is starting",
            spec: spec(DaemonSetStrategyType::RollingUpdate, 1, 0),
            nodes: vec![node("n1"), node("n2")],
            pods: vec![
                pod("a-1", "n1", "h1"),
                down(pod("b-1", "n1", "h2")),
                pod("a-2", "n2", "h1"),
            ],
            create: &[],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "OnDelete leaves old pods",
            spec: spec(DaemonSetStrategyType::OnDelete, 0, 0),
            nodes: vec![node("n1"), node("n2")],
            pods: vec![pod("a-1", "n1", "h1")],
            create: &["n2"],
            delete: &[],
            no_room: &[],
        },
        Case {
            name: "two current pods on a node: the extra goes",
            spec: rolling(1),
            nodes: vec![node("n1")],
            pods: vec![down(pod("b-1", "n1", "h2")), pod("b-2", "n1", "h2")],
            create: &[],
            delete: &["b-1"],
            no_room: &[],
        },
    ];
    for c in cases {
        let p = plan(&c.spec, "h2", &c.nodes, &c.pods, 500);
        assert_eq!(p.create, c.create, "{}: create", c.name);
        assert_eq!(p.delete, c.delete, "{}: delete", c.name);
        let no_room: Vec<&str> = p.no_room.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(no_room, c.no_room, "{}: no room", c.name);
    }
}

#[test]
fn status_counts_nodes() {
    let mut gone_down = node("n4");
    gone_down.up = false;
    let nodes = vec![node("n1"), node("n2"), node("n3"), gone_down];
    let pods = vec![
        pod("b-1", "n1", "h2"),
        down(pod("a-2", "n2", "h1")),
        pod("x-9", "n9", "h2"),
        pod("b-4", "n4", "h2"),
    ];
    let p = plan(&rolling(1), "h2", &nodes, &pods, 500);
    let st = p.status;
    assert_eq!(st.desired_number_scheduled, 3);
    assert_eq!(st.current_number_scheduled, 2);
    assert_eq!(st.number_ready, 1);
    assert_eq!(st.number_available, 1);
    assert_eq!(st.updated_number_scheduled, 1);
    assert_eq!(st.number_misscheduled, 1);
    assert_eq!(st.number_unavailable, 2);
}

#[test]
fn surge_and_unavailable_resolve_against_nodes() {
    assert_eq!(rolling(1).surge_unavailable(3), (0, 1));
    assert_eq!(DaemonSetSpec::default().surge_unavailable(3), (0, 1));
    assert_eq!(rolling(0).surge_unavailable(3), (0, 1));
    let mut pct = rolling(1);
    pct.update_strategy = Some(DaemonSetUpdateStrategy {
        strategy_type: None,
        rolling_update: Some(RollingUpdateDaemonSet {
            max_surge: Some(IntOrString::String("50%".into())),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    assert_eq!(pct.surge_unavailable(3), (2, 0));
}

#[test]
fn room_is_checked_without_cordon() {
    let fit = NodeFit {
        name: "n1".into(),
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        max_pods: 2,
        unschedulable: true,
        alive: true,
        ..NodeFit::default()
    };
    let needs = |cpu, ports: Vec<u16>| PodNeeds {
        cpu_millis: cpu,
        host_ports: ports,
        ..PodNeeds::nothing(ObjectKey::new(Kind::Pod, "default", "p"))
    };
    let mut used = Used::default();
    assert_eq!(lacks_room(&fit, &used, &needs(500, vec![])), None);
    used.add(&needs(600, vec![8080]));
    assert!(lacks_room(&fit, &used, &needs(500, vec![])).is_some_and(|m| m.contains("cpu")));
    assert!(lacks_room(&fit, &used, &needs(0, vec![8080])).is_some_and(|m| m.contains("8080")));
    used.add(&needs(0, vec![]));
    assert!(lacks_room(&fit, &used, &needs(0, vec![])).is_some_and(|m| m.contains("pods")));
}

#[test]
fn extended_resources_are_room_too() {
    let mut fit = NodeFit {
        name: "n1".into(),
        cpu_millis: 1000,
        max_pods: 10,
        alive: true,
        ..NodeFit::default()
    };
    fit.other.extended.insert("example.com/dongle".into(), 1);
    let mut dongle = PodNeeds::nothing(ObjectKey::new(Kind::Pod, "default", "p"));
    dongle.other.extended.insert("example.com/dongle".into(), 1);
    let mut used = Used::default();
    assert_eq!(lacks_room(&fit, &used, &dongle), None);
    used.add(&dongle);
    assert_eq!(
        lacks_room(&fit, &used, &dongle).as_deref(),
        Some("insufficient example.com/dongle")
    );
    dongle.other.extended.clear();
    dongle.other.ephemeral_bytes = 1;
    assert_eq!(
        lacks_room(&fit, &used, &dongle).as_deref(),
        Some("insufficient ephemeral-storage")
    );
}

#[test]
fn pod_names_are_stable_per_node_and_template() {
    let a = pod_name("agent", "uid-1", "n1", "h1");
    assert_eq!(a, pod_name("agent", "uid-1", "n1", "h1"));
    assert_ne!(a, pod_name("agent", "uid-1", "n2", "h1"));
    assert_ne!(a, pod_name("agent", "uid-1", "n1", "h2"));
    assert!(a.starts_with("agent-") && a.len() == "agent-".len() + 5);
}

/// A large cluster's first pass, a full rollout and a mass of finished
/// pods are spread over passes, and a node's replacement never goes out
/// without the deletion it needs.
#[test]
fn a_pass_is_bounded() {
    let nodes: Vec<DsNode> = (0..10).map(|i| node(&format!("n{i}"))).collect();
    let p = plan(&rolling(1), "h2", &nodes, &[], 4);
    assert_eq!(p.create, ["n0", "n1", "n2", "n3"]);
    // All ten may go at once (maxUnavailable 10), four per pass.
    let old: Vec<DsPod> = (0..10)
        .map(|i| pod(&format!("a-{i}"), &format!("n{i}"), "h1"))
        .collect();
    let p = plan(&rolling(10), "h2", &nodes, &old, 4);
    assert_eq!(p.create, ["n0", "n1", "n2", "n3"]);
    assert_eq!(p.delete, ["a-0", "a-1", "a-2", "a-3"]);
    // Finished pods past the bound keep their nodes waiting.
    let finished: Vec<DsPod> = old
        .iter()
        .cloned()
        .map(|mut p| {
            p.terminal = true;
            p
        })
        .collect();
    let p = plan(&rolling(1), "h2", &nodes, &finished, 4);
    assert_eq!(p.delete, ["a-0", "a-1", "a-2", "a-3"]);
    assert!(
        p.create
            .iter()
            .all(|n| ["n0", "n1", "n2", "n3"].contains(&n.as_str())),
        "{:?}",
        p.create
    );
}
