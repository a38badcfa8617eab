//! Inter-pod rules through the placer: filters, symmetry, scores.

use serde_json::json;

use super::super::{NodeFit, Placer, PodNeeds, Strategy};
use super::*;
use crate::resource::Kind;

fn node(name: &str, zone: &str) -> NodeFit {
    NodeFit {
        name: name.into(),
        cpu_millis: 8000,
        memory_bytes: 16 << 30,
        max_pods: 110,
        labels: BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("topology.kubernetes.io/zone".to_string(), zone.to_string()),
        ]),
        unschedulable: false,
        taints: Vec::new(),
        alive: true,
        other: Default::default(),
    }
}

/// Zones a (a1, a2), b (b1), c (c1) unless given.
fn placer(nodes: Option<Vec<NodeFit>>) -> Placer {
    let nodes = nodes.unwrap_or_else(|| {
        vec![
            node("a1", "a"),
            node("a2", "a"),
            node("b1", "b"),
            node("c1", "c"),
        ]
    });
    let mut p = Placer::new(nodes, Strategy::Spread);
    p.track_pods();
    p
}

/// A pod with `labels`, an `affinity` and `spread` constraints (JSON as in
/// a manifest).
fn pod(name: &str, labels: &[(&str, &str)], affinity: Value, spread: Value) -> PodNeeds {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let affinity: Option<Affinity> =
        (!affinity.is_null()).then(|| serde_json::from_value(affinity).expect("affinity"));
    let spread: Vec<TopologySpreadConstraint> = if spread.is_null() {
        Vec::new()
    } else {
        serde_json::from_value(spread).expect("spread")
    };
    PodNeeds {
        cpu_millis: 100,
        inter: InterPod::of(affinity.as_ref(), &spread, "default", &labels).map(Arc::new),
        labels: Some(Arc::new(labels)),
        ..PodNeeds::nothing(ObjectKey::new(Kind::Pod, "default", name))
    }
}

use serde_json::Value;

fn web_anti(key: &str) -> Value {
    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": key}]}})
}

#[test]
fn required_anti_affinity_puts_replicas_on_distinct_hosts_and_then_refuses() {
    let mut p = placer(None);
    let mut hosts = Vec::new();
    for i in 0..4 {
        let w = pod(
            &format!("web{i}"),
            &[("app", "web")],
            web_anti("kubernetes.io/hostname"),
            Value::Null,
        );
        hosts.push(p.place(&w).expect("a free host"));
    }
    hosts.sort();
    assert_eq!(hosts, ["a1", "a2", "b1", "c1"]);
    let w = pod(
        "web4",
        &[("app", "web")],
        web_anti("kubernetes.io/hostname"),
        Value::Null,
    );
    let e = p.place(&w).expect_err("every host holds a web pod");
    assert_eq!(e.to_string(), "0/4 nodes: pod anti-affinity conflict (4)");
    // Another app is not selected by the term.
    let other = pod(
        "api",
        &[("app", "api")],
        web_anti("kubernetes.io/hostname"),
        Value::Null,
    );
    assert!(
        p.place(&other).is_err(),
        "its own term still sees the web pods"
    );
    let plain = pod("api2", &[("app", "api")], Value::Null, Value::Null);
    assert!(p.place(&plain).is_ok());
}

#[test]
fn anti_affinity_by_zone_and_removal_frees_the_zone() {
    let mut p = placer(None);
    let zone = "topology.kubernetes.io/zone";
    let placed: Vec<String> = (0..3)
        .map(|i| {
            p.place(&pod(
                &format!("w{i}"),
                &[("app", "web")],
                web_anti(zone),
                Value::Null,
            ))
            .expect("a free zone")
        })
        .collect();
    let zones: std::collections::BTreeSet<char> =
        placed.iter().map(|n| n.chars().next().unwrap()).collect();
    assert_eq!(zones.len(), 3, "{placed:?}");
    let w3 = pod("w3", &[("app", "web")], web_anti(zone), Value::Null);
    assert!(p.place(&w3).is_err());
    // w0 goes: its zone is free again.
    let w0 = pod("w0", &[("app", "web")], web_anti(zone), Value::Null);
    p.remove_bound(&placed[0], &w0);
    let again = p.place(&w3).expect("the freed zone");
    assert_eq!(again.chars().next(), placed[0].chars().next());
}

#[test]
fn existing_pods_anti_affinity_keeps_others_off() {
    let mut p = placer(Some(vec![node("a1", "a"), node("b1", "b")]));
    // A db pod that wants no web pod beside it is on a1.
    let db = pod(
        "db",
        &[("app", "db")],
        web_anti("kubernetes.io/hostname"),
        Value::Null,
    );
    p.add_bound("a1", &db);
    for i in 0..3 {
        let w = pod(
            &format!("w{i}"),
            &[("app", "web")],
            Value::Null,
            Value::Null,
        );
        assert_eq!(
            p.place(&w).unwrap(),
            "b1",
            "web pods stay off the db's host"
        );
    }
    let mut only_a = placer(Some(vec![node("a1", "a")]));
    only_a.add_bound("a1", &db);
    let e = only_a
        .place(&pod("w", &[("app", "web")], Value::Null, Value::Null))
        .unwrap_err();
    assert_eq!(e.to_string(), "0/1 nodes: existing pods' anti-affinity (1)");
}

#[test]
fn required_affinity_follows_its_pods_and_lets_the_first_start() {
    let zone = "topology.kubernetes.io/zone";
    let mut p = placer(None);
    let near_cache = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": zone}]}});
    let e = p
        .place(&pod(
            "web",
            &[("app", "web")],
            near_cache.clone(),
            Value::Null,
        ))
        .unwrap_err();
    assert_eq!(e.to_string(), "0/4 nodes: pod affinity mismatch (4)");
    let cache = pod("cache", &[("app", "cache")], Value::Null, Value::Null);
    p.add_bound("b1", &cache);
    for i in 0..3 {
        let w = pod(
            &format!("web{i}"),
            &[("app", "web")],
            near_cache.clone(),
            Value::Null,
        );
        assert_eq!(p.place(&w).unwrap(), "b1");
    }
    // A group whose term selects itself: its first pod goes anywhere.
    let self_affine = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "pack"}}, "topologyKey": zone}]}});
    let first = p
        .place(&pod(
            "pack0",
            &[("app", "pack")],
            self_affine.clone(),
            Value::Null,
        ))
        .expect("the first of a self-affine group");
    let zone_of = |n: &str| n.chars().next().unwrap();
    for i in 1..4 {
        let n = p
            .place(&pod(
                &format!("pack{i}"),
                &[("app", "pack")],
                self_affine.clone(),
                Value::Null,
            ))
            .unwrap();
        assert_eq!(zone_of(&n), zone_of(&first));
    }
}

#[test]
fn hard_spread_keeps_the_skew_and_min_domains_counts_missing_zones() {
    let zone = "topology.kubernetes.io/zone";
    let spread = |extra: Value| {
        let mut c = json!({"maxSkew": 1, "topologyKey": zone, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        json!([c])
    };
    // Zone a has two nodes, b and c one: six pods go two per zone, never
    // three in a, whatever the resources say.
    let mut p = placer(None);
    let mut per_zone = BTreeMap::new();
    for i in 0..6 {
        let n = p
            .place(&pod(
                &format!("w{i}"),
                &[("app", "web")],
                Value::Null,
                spread(json!({})),
            ))
            .unwrap();
        *per_zone.entry(n.chars().next().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(per_zone, BTreeMap::from([('a', 2), ('b', 2), ('c', 2)]));
    // Two zones only, minDomains 3: the global minimum counts as 0, so no
    // zone may take a second pod.
    let mut p = placer(Some(vec![node("a1", "a"), node("b1", "b")]));
    for i in 0..2 {
        p.place(&pod(
            &format!("m{i}"),
            &[("app", "web")],
            Value::Null,
            spread(json!({"minDomains": 3})),
        ))
        .unwrap();
    }
    let e = p
        .place(&pod(
            "m2",
            &[("app", "web")],
            Value::Null,
            spread(json!({"minDomains": 3})),
        ))
        .unwrap_err();
    assert_eq!(e.to_string(), "0/2 nodes: topology spread constraint (2)");
    // A node without the key is no place for a hard constraint.
    let mut bare = node("x1", "x");
    bare.labels.remove(zone);
    let mut p = placer(Some(vec![bare]));
    assert!(
        p.place(&pod("w", &[("app", "web")], Value::Null, spread(json!({}))))
            .is_err()
    );
}

#[test]
fn preferences_steer_but_do_not_refuse() {
    let host = "kubernetes.io/hostname";
    let avoid_web = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                            "topologyKey": host}}]}});
    let mut p = placer(Some(vec![node("a1", "a"), node("b1", "b")]));
    let first = p
        .place(&pod(
            "w0",
            &[("app", "web")],
            avoid_web.clone(),
            Value::Null,
        ))
        .unwrap();
    let second = p
        .place(&pod(
            "w1",
            &[("app", "web")],
            avoid_web.clone(),
            Value::Null,
        ))
        .unwrap();
    assert_ne!(first, second, "a preferred anti-affinity spreads");
    // Both hosts hold one: a third still fits.
    assert!(
        p.place(&pod("w2", &[("app", "web")], avoid_web, Value::Null))
            .is_ok()
    );
    // ScheduleAnyway leans towards the emptier zone.
    let soft = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "api"}}}]);
    let mut p = placer(Some(vec![
        node("a1", "a"),
        node("a2", "a"),
        node("b1", "b"),
    ]));
    let mut zones = Vec::new();
    for i in 0..4 {
        let n = p
            .place(&pod(
                &format!("api{i}"),
                &[("app", "api")],
                Value::Null,
                soft.clone(),
            ))
            .unwrap();
        zones.push(n.chars().next().unwrap());
    }
    zones.sort();
    assert_eq!(
        zones,
        ['a', 'a', 'b', 'b'],
        "two per zone, not three in the two-node zone"
    );
}

#[test]
fn match_label_keys_count_only_the_pods_own_revision() {
    let host = "kubernetes.io/hostname";
    let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": host,
         "matchLabelKeys": ["pod-template-hash"]}]}});
    let mut p = placer(Some(vec![node("a1", "a")]));
    p.place(&pod(
        "old",
        &[("app", "web"), ("pod-template-hash", "v1")],
        anti.clone(),
        Value::Null,
    ))
    .unwrap();
    // A pod of the next revision ignores the old one (a rolling update on one node).
    p.place(&pod(
        "new",
        &[("app", "web"), ("pod-template-hash", "v2")],
        anti.clone(),
        Value::Null,
    ))
    .expect("another revision is not selected");
    assert!(
        p.place(&pod(
            "new2",
            &[("app", "web"), ("pod-template-hash", "v2")],
            anti,
            Value::Null
        ))
        .is_err()
    );
}

#[test]
fn a_term_without_a_selector_selects_nothing() {
    let host = "kubernetes.io/hostname";
    let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": host}]}});
    let mut p = placer(Some(vec![node("a1", "a")]));
    for i in 0..3 {
        p.place(&pod(
            &format!("p{i}"),
            &[("app", "web")],
            anti.clone(),
            Value::Null,
        ))
        .expect("nothing selected, nothing in the way");
    }
}
