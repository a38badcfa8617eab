use serde_json::json;

use super::*;

fn items(v: serde_json::Value) -> Vec<LimitRangeItem> {
    let mut items: Vec<LimitRangeItem> = serde_json::from_value(v).expect("items");
    for i in &mut items {
        i.set_defaults();
    }
    items
}

fn spec(containers: serde_json::Value) -> PodSpec {
    serde_json::from_value(json!({ "containers": containers })).expect("spec")
}

fn res(spec: &PodSpec, i: usize) -> (Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
    let r = spec.containers[i].resources.as_ref();
    fn get<'a>(m: Option<&'a BTreeMap<String, Quantity>>, k: &str) -> Option<&'a str> {
        m.and_then(|m| m.get(k)).map(Quantity::as_str)
    }
    (
        get(r.map(|r| &r.requests), "cpu"),
        get(r.map(|r| &r.limits), "cpu"),
        get(r.map(|r| &r.requests), "memory"),
        get(r.map(|r| &r.limits), "memory"),
    )
}

#[test]
fn defaults_fill_what_a_container_leaves_out() {
    let lr = items(json!([{"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "100m"}}]));
    let mut s = spec(json!([
        {"name": "bare", "image": "i"},
        {"name": "limited", "image": "i", "resources": {"limits": {"cpu": "2"}}},
        {"name": "asked", "image": "i", "resources": {"requests": {"memory": "64Mi"}}},
    ]));
    limit_pod(&mut s, &lr).expect("no bounds");
    assert_eq!(
        res(&s, 0),
        (Some("100m"), Some("500m"), Some("256Mi"), Some("256Mi"))
    );
    // Its own limit stays and its request follows it, not the range's.
    assert_eq!(
        res(&s, 1),
        (Some("2"), Some("2"), Some("256Mi"), Some("256Mi"))
    );
    assert_eq!(
        res(&s, 2),
        (Some("100m"), Some("500m"), Some("64Mi"), Some("256Mi"))
    );
}

#[test]
fn bounds_refuse_with_kubernetes_words() {
    let lr = items(json!([
        {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"},
         "maxLimitRequestRatio": {"cpu": "4"}},
        {"type": "Pod", "max": {"memory": "1536Mi"}},
    ]));
    // As Kubernetes defaults a range: max gives the default limit, which
    // gives the default request (min would only if no limit did).
    let mut ok = spec(json!([{"name": "a", "image": "i"}]));
    limit_pod(&mut ok, &lr).expect("defaults fit");
    assert_eq!(
        res(&ok, 0),
        (Some("1"), Some("1"), Some("1Gi"), Some("1Gi"))
    );
    let cases = [
        (
            json!([{"name": "a", "image": "i", "resources": {"requests": {"cpu": "50m"}}}]),
            "minimum cpu usage per Container is 100m, but request is 50m",
        ),
        (
            json!([{"name": "a", "image": "i", "resources": {"limits": {"cpu": "2"}}}]),
            "maximum cpu usage per Container is 1, but limit is 2",
        ),
        (
            json!([{"name": "a", "image": "i",
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "800m"}}}]),
            "cpu max limit to request ratio per Container is 4, but provided ratio is 8.000000",
        ),
        (
            json!([{"name": "a", "image": "i", "resources": {"limits": {"memory": "1Gi"}}},
                   {"name": "b", "image": "i", "resources": {"limits": {"memory": "1Gi"}}}]),
            "maximum memory usage per Pod is 1536Mi, but limit is 2Gi",
        ),
    ];
    for (containers, want) in cases {
        let mut s = spec(containers.clone());
        let e = limit_pod(&mut s, &lr).expect_err("out of bounds");
        assert!(e.contains(want), "{containers}: {e}");
    }
}

#[test]
fn no_range_changes_nothing() {
    let mut s = spec(json!([{"name": "a", "image": "i"}]));
    let before = s.clone();
    limit_pod(&mut s, &[]).unwrap();
    assert_eq!(s, before);
}
