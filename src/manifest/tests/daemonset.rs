//! DaemonSet manifests: accepted as Kubernetes writes them, refused with
//! the path of what is wrong.

use super::*;
use crate::resource::types::{DaemonSetBody, DaemonSetStrategyType};

const DAEMONSET: &str = "
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 25%
  minReadySeconds: 2
  template:
    metadata:
      labels:
        app: agent
    spec:
      nodeSelector:
        disk: ssd
      containers:
      - name: main
        image: busybox
";

#[test]
fn a_daemonset_is_accepted() {
    let p = ok(DAEMONSET);
    let b = DaemonSetBody::from_object(&p.objects[0]).expect("body");
    assert_eq!(b.spec.strategy(), DaemonSetStrategyType::RollingUpdate);
    assert_eq!(b.spec.min_ready_seconds, Some(2));
    assert_eq!(b.spec.surge_unavailable(8), (0, 2));
    let on_delete = DAEMONSET.replace(
        "    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 25%\n",
        "    type: OnDelete\n",
    );
    let p = ok(&on_delete);
    let b = DaemonSetBody::from_object(&p.objects[0]).expect("body");
    assert_eq!(b.spec.strategy(), DaemonSetStrategyType::OnDelete);
}

#[test]
fn daemonset_mistakes_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "      app: agent\n  updateStrategy",
            "      app: other\n  updateStrategy",
            "spec.selector: does not match template labels",
        ),
        (
            "maxUnavailable: 25%",
            "maxUnavailable: 0",
            "spec.updateStrategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0",
        ),
        (
            "maxUnavailable: 25%",
            "maxSurge: 10x",
            "spec.updateStrategy.rollingUpdate.maxSurge: \"10x\" must be a whole number or a percentage",
        ),
        (
            "maxUnavailable: 25%",
            "maxUnavailable: 150%",
            "spec.updateStrategy.rollingUpdate.maxUnavailable: \"150%\" must be at most 100%",
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
            "      nodeSelector:",
            "      affinity:\n        nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}\n      nodeSelector:",
            "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: must have at least one term",
        ),
        (
            "      nodeSelector:",
            "      restartPolicy: Never\n      nodeSelector:",
            "spec.template.spec.restartPolicy: Never is not allowed in a DaemonSet",
        ),
        (
            "  name: agent\n",
            "  name: a-daemonset-name-that-is-far-too-long-for-its-pods-names-xx\n",
            "metadata.name",
        ),
    ];
    for (from, to, want) in cases {
        assert!(DAEMONSET.contains(from), "{from}");
        let e = err(&DAEMONSET.replacen(from, to, 1));
        assert!(e.contains(want), "{to}: {e}");
    }
}
