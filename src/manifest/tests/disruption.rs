//! PodDisruptionBudget manifests.

use super::*;
use crate::resource::types::{IntOrString, PodDisruptionBudgetBody};

#[test]
fn a_budget_is_accepted_as_kubernetes_writes_it() {
    let p = ok("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: zk-pdb}
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: zookeeper}
  unhealthyPodEvictionPolicy: AlwaysAllow
");
    let o = &p.objects[0];
    assert_eq!(o.kind(), Some(Kind::PodDisruptionBudget));
    let b = PodDisruptionBudgetBody::from_object(o).expect("body");
    assert_eq!(b.spec.min_available, Some(IntOrString::Int(2)));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    for s in ["pdb", "poddisruptionbudgets", "PodDisruptionBudget"] {
        assert_eq!(Kind::from_user(s), Some(Kind::PodDisruptionBudget), "{s}");
    }
    ok("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {maxUnavailable: \"25%\", selector: {matchLabels: {app: web}}}
");
}

#[test]
fn budget_errors_name_their_field() {
    let e = err("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b}
spec: {minAvailable: 1, maxUnavailable: 1, selector: {}}
");
    assert!(
        e.contains("spec: minAvailable and maxUnavailable cannot be both set"),
        "{e}"
    );
    let e = err("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b}
spec: {maxUnavailable: \"120%\", selector: {}}
");
    assert!(e.contains("spec.maxUnavailable"), "{e}");
    let e = err("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b}
spec: {minAvailable: -1, selector: {}}
");
    assert!(e.contains("spec.minAvailable"), "{e}");
    let e = err("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b}
spec: {minAvailable: 1, unhealthyPodEvictionPolicy: Sometimes, selector: {}}
");
    assert!(e.contains("unhealthyPodEvictionPolicy"), "{e}");
    let e = err("
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: b}
spec: {minAvailable: 1}
");
    assert!(e.contains("\"policy/v1\""), "{e}");
}

#[test]
fn surprising_budgets_are_warned_about() {
    let p = ok("
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: b}
spec: {}
");
    let w = p.warnings.join("\n");
    assert!(w.contains("neither minAvailable nor maxUnavailable"), "{w}");
    assert!(w.contains("spec.selector: absent"), "{w}");
}
