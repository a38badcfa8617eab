//! StatefulSet manifests: accepted as Kubernetes writes them, refused with
//! the path of what is wrong.

use super::*;
use crate::resource::types::{
    ClaimRetention, PodManagementPolicy, StatefulSetBody, StatefulSetStrategyType,
};

const STATEFULSET: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app: web
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      partition: 1
      maxUnavailable: 2
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Delete
    whenScaled: Retain
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: busybox
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";

#[test]
fn a_statefulset_is_accepted() {
    let p = ok(STATEFULSET);
    let b = StatefulSetBody::from_object(&p.objects[0]).expect("body");
    assert_eq!(b.spec.replicas(), 3);
    assert_eq!(b.spec.policy(), PodManagementPolicy::Parallel);
    assert_eq!(b.spec.strategy(), StatefulSetStrategyType::RollingUpdate);
    assert_eq!(b.spec.partition(), 1);
    assert_eq!(b.spec.max_unavailable(), 2);
    assert_eq!(
        b.spec.retention(),
        (ClaimRetention::Delete, ClaimRetention::Retain)
    );
    assert_eq!(b.spec.service_name.as_deref(), Some("web"));
    // Defaults: OrderedReady, RollingUpdate at partition 0, Retain both ways.
    let minimal = STATEFULSET
        .replace("  podManagementPolicy: Parallel\n", "")
        .replace(
            "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      partition: 1\n      maxUnavailable: 2\n",
            "",
        )
        .replace(
            "  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Delete\n    whenScaled: Retain\n",
            "",
        );
    let b = StatefulSetBody::from_object(&ok(&minimal).objects[0]).expect("body");
    assert_eq!(b.spec.policy(), PodManagementPolicy::OrderedReady);
    assert_eq!((b.spec.partition(), b.spec.max_unavailable()), (0, 1));
    assert_eq!(
        b.spec.retention(),
        (ClaimRetention::Retain, ClaimRetention::Retain)
    );
    let on_delete = STATEFULSET.replace(
        "    type: RollingUpdate\n    rollingUpdate:\n      partition: 1\n      maxUnavailable: 2\n",
        "    type: OnDelete\n",
    );
    let b = StatefulSetBody::from_object(&ok(&on_delete).objects[0]).expect("body");
    assert_eq!(b.spec.strategy(), StatefulSetStrategyType::OnDelete);
    assert_eq!(
        b.spec.ordinal_range(),
        0..3,
        "ordinals start at 0 by default"
    );
    let from_five = STATEFULSET.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  ordinals:\n    start: 5\n",
    );
    let b = StatefulSetBody::from_object(&ok(&from_five).objects[0]).expect("body");
    assert_eq!(b.spec.ordinal_range(), 5..8);
}

#[test]
fn statefulset_mistakes_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "      app: web\n  updateStrategy",
            "      app: other\n  updateStrategy",
            "spec.selector: does not match template labels",
        ),
        (
            "  serviceName: web\n",
            "  serviceName: Web_1\n",
            "spec.serviceName: \"Web_1\" is not valid",
        ),
        (
            "  podManagementPolicy: Parallel\n",
            "  podManagementPolicy: Sometimes\n",
            "spec.podManagementPolicy",
        ),
        (
            "    type: RollingUpdate\n",
            "    type: OnDelete\n",
            "spec.updateStrategy.rollingUpdate: may not be set when type is OnDelete",
        ),
        (
            "    type: RollingUpdate\n",
            "    type: Sometimes\n",
            "spec.updateStrategy.type",
        ),
        (
            "      maxUnavailable: 2\n",
            "      maxUnavailable: 0\n",
            "spec.updateStrategy.rollingUpdate.maxUnavailable: must be at least 1",
        ),
        (
            "      maxUnavailable: 2\n",
            "      maxUnavailable: 150%\n",
            "spec.updateStrategy.rollingUpdate.maxUnavailable: \"150%\" must be at most 100%",
        ),
        (
            "      partition: 1\n",
            "      partition: -1\n",
            "spec.updateStrategy.rollingUpdate.partition",
        ),
        (
            "    whenDeleted: Delete\n",
            "    whenDeleted: Keep\n",
            "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
        ),
        (
            "    whenScaled: Retain\n",
            "    whenScaled: Sometimes\n",
            "spec.persistentVolumeClaimRetentionPolicy.whenScaled",
        ),
        (
            "  - metadata:\n      name: data\n",
            "  - metadata:\n      name: Data\n",
            "spec.volumeClaimTemplates[0].metadata.name: \"Data\" is not valid",
        ),
        (
            "  - metadata:\n      name: data\n",
            "  - metadata:\n      labels: {a: b}\n",
            "spec.volumeClaimTemplates[0].metadata.name: missing",
        ),
        (
            "          storage: 1Gi\n",
            "          storage: lots\n",
            "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
        ),
        (
            "        requests:\n          storage: 1Gi\n",
            "        requests: {}\n",
            "spec.volumeClaimTemplates[0].spec.resources.requests.storage: missing",
        ),
        (
            "      accessModes: [ReadWriteOnce]\n",
            "      accessModes: [ReadWriteOnce]\n      volumeMode: Block\n",
            "spec.volumeClaimTemplates[0].spec.volumeMode",
        ),
        (
            "          mountPath: /data\n",
            "          mountPath: /data\n      volumes:\n      - name: data\n        emptyDir: {}\n",
            "spec.volumeClaimTemplates[0].metadata.name: \"data\" is also spec.template.spec.volumes[0]",
        ),
        (
            "        - name: data\n",
            "        - name: logs\n",
            "spec.template.spec.containers[0].volumeMounts[0].name: no volume named \"logs\"",
        ),
        (
            "      containers:",
            "      restartPolicy: OnFailure\n      containers:",
            "spec.template.spec.restartPolicy: OnFailure is not allowed in a StatefulSet",
        ),
        (
            "  name: web\nspec",
            "  name: a-statefulset-name-that-is-too-long-for-its-revisions\nspec",
            "metadata.name",
        ),
        (
            "  replicas: 3\n",
            "  replicas: 3\n  ordinals:\n    first: 1\n",
            "spec.ordinals",
        ),
    ];
    for (from, to, want) in cases {
        assert!(STATEFULSET.contains(from), "{from}");
        let e = err(&STATEFULSET.replacen(from, to, 1));
        assert!(e.contains(want), "{to}: {e}");
    }
}

#[test]
fn a_second_claim_template_of_the_same_name_is_refused() {
    let doubled = format!(
        "{STATEFULSET}  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources:\n        requests:\n          storage: 1Gi\n"
    );
    let e = err(&doubled);
    assert!(
        e.contains(
            "spec.volumeClaimTemplates[1].metadata.name: \"data\" is the name of an earlier"
        ),
        "{e}"
    );
}

#[test]
fn a_pod_subdomain_is_a_dns_label() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  subdomain: web\n  containers:\n  - name: main\n    image: busybox\n";
    let p = ok(pod);
    assert_eq!(p.objects[0].body["spec"]["subdomain"], "web");
    let e = err(&pod.replace("subdomain: web", "subdomain: Web_1"));
    assert!(e.contains("spec.subdomain: \"Web_1\" is not valid"), "{e}");
}
