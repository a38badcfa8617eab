//! LimitRange manifests.

use super::*;

fn range(limits: &str) -> String {
    format!("apiVersion: v1\nkind: LimitRange\nmetadata: {{name: r}}\nspec:\n  limits: {limits}\n")
}

#[test]
fn limit_ranges_are_checked_as_kubernetes_does() {
    let p = ok(&range(
        "[{type: Container, default: {cpu: 500m}, defaultRequest: {cpu: 100m}, min: {cpu: 50m}, max: {cpu: '2', memory: 1Gi}, maxLimitRequestRatio: {cpu: '10'}}, {type: Pod, max: {memory: 2Gi}}]",
    ));
    assert_eq!(p.objects[0].kind(), Some(Kind::LimitRange));
    assert_eq!(Kind::from_user("limits"), Some(Kind::LimitRange));
    let cases = [
        ("[{type: Node}]", "spec.limits[0].type: \"Node\""),
        (
            "[{type: PersistentVolumeClaim, max: {storage: 1Gi}}]",
            "spec.limits[0].type: PersistentVolumeClaim items are not enforced",
        ),
        (
            "[{type: Container, max: {ephemeral-storage: 1Gi}}]",
            "spec.limits[0].max.ephemeral-storage: resource not supported",
        ),
        (
            "[{type: Container, min: {cpu: '2'}, max: {cpu: '1'}}]",
            "spec.limits[0].min.cpu: min value 2 is greater than max value 1",
        ),
        (
            "[{type: Container, default: {cpu: 100m}, defaultRequest: {cpu: 200m}}]",
            "spec.limits[0].defaultRequest.cpu: default request value 200m is greater than default limit value 100m",
        ),
        (
            "[{type: Container, max: {cpu: '1'}, default: {cpu: '2'}}]",
            "spec.limits[0].default.cpu: must lie between min and max",
        ),
        (
            "[{type: Pod, default: {cpu: '1'}}]",
            "spec.limits[0].default: may not be specified when type is Pod",
        ),
        (
            "[{type: Container, max: {cpu: lots}}]",
            "spec.limits[0].max.cpu",
        ),
    ];
    for (limits, want) in cases {
        let e = err(&range(limits));
        assert!(e.contains(want), "{limits}\n{e}");
    }
}
