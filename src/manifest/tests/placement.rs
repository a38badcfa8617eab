//! Pod affinity, anti-affinity and topology spread constraints in manifests.

use super::*;
use crate::resource::types::{PodBody, WhenUnsatisfiable};

fn pod_with(spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: {{app: web}}}}\nspec:\n  containers: [{{name: a, image: b}}]\n{spec}"
    )
}

#[test]
fn kubernetes_placement_rules_are_accepted() {
    let p = ok(&pod_with(
        "  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchExpressions: [{key: app, operator: In, values: [cache]}]}
        topologyKey: topology.kubernetes.io/zone
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector: {matchLabels: {app: web}}
          namespaces: [default, prod]
          topologyKey: kubernetes.io/hostname
          matchLabelKeys: [pod-template-hash]
      - weight: 10
        podAffinityTerm:
          labelSelector: {matchLabels: {app: web}}
          namespaceSelector: {}
          topologyKey: kubernetes.io/hostname
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: DoNotSchedule
    minDomains: 3
    labelSelector: {matchLabels: {app: web}}
    nodeAffinityPolicy: Ignore
    nodeTaintsPolicy: Honor
  - maxSkew: 2
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector: {matchLabels: {app: web}}
",
    ));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let b = PodBody::from_object(&p.objects[0]).expect("body");
    assert_eq!(b.spec.topology_spread_constraints.len(), 2);
    assert_eq!(
        b.spec.topology_spread_constraints[1].when_unsatisfiable,
        WhenUnsatisfiable::ScheduleAnyway
    );
    let anti = b
        .spec
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .expect("anti");
    assert_eq!(
        anti.preferred_during_scheduling_ignored_during_execution
            .len(),
        2
    );
}

#[test]
fn placement_errors_name_their_field() {
    let cases = [
        (
            "  affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{labelSelector: {}, topologyKey: ''}]}}\n",
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: can not be empty",
        ),
        (
            "  affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 0, podAffinityTerm: {topologyKey: zone}}]}}\n",
            "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: 0 must be in the range 1-100",
        ),
        (
            "  affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone, matchLabelKeys: [app]}]}}\n",
            "matchLabelKeys[0]: must not be specified when labelSelector is not set",
        ),
        (
            "  affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone, labelSelector: {matchLabels: {app: web}}, matchLabelKeys: [app]}]}}\n",
            "\"app\" exists in both matchLabelKeys and labelSelector",
        ),
        (
            "  topologySpreadConstraints: [{maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]\n",
            "spec.topologySpreadConstraints[0].maxSkew: 0 must be greater than zero",
        ),
        (
            "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}]\n",
            "spec.topologySpreadConstraints[0].minDomains: can only be used when whenUnsatisfiable is DoNotSchedule",
        ),
        (
            "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: Maybe}]\n",
            "spec.topologySpreadConstraints[0].whenUnsatisfiable",
        ),
        (
            "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}, {maxSkew: 2, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]\n",
            "spec.topologySpreadConstraints[1]: duplicate constraint",
        ),
    ];
    for (spec, want) in cases {
        let e = err(&pod_with(spec));
        assert!(e.contains(want), "{spec}\n{e}");
    }
}
