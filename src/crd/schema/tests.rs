use serde_json::json;

use super::*;

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "minLength": 1, "pattern": "^[a-z0-9./:-]+$"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "tier": {"type": "string", "enum": ["free", "paid"]},
                    "ports": {"type": "array", "maxItems": 2, "items": {"type": "integer"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "note": {"type": "string", "nullable": true},
                    "port": {"x-kubernetes-int-or-string": true},
                    "size": {"type": "object", "default": {},
                             "properties": {"disk": {"type": "string", "default": "1Gi"}}}
                }
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    })
}

#[test]
fn a_good_schema_passes_its_check() {
    check(&schema(), "s").unwrap();
}

#[test]
fn defaults_are_applied_and_unknown_fields_pruned() {
    let mut v = json!({
        "apiVersion": "example.com/v1", "kind": "Website", "metadata": {"name": "a"},
        "spec": {"image": "nginx", "unknown": 1, "extra": {"kept": true}, "note": null,
                 "labels": {"a": "b"}, "port": "http"},
        "junk": true
    });
    let errs = validate(&schema(), &mut v, "");
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(v["spec"]["replicas"], 1);
    assert_eq!(v["spec"]["size"]["disk"], "1Gi", "defaults inside defaults");
    assert!(v["spec"].get("unknown").is_none());
    assert!(v.get("junk").is_none());
    assert_eq!(v["spec"]["extra"]["kept"], true);
    assert_eq!(v["metadata"]["name"], "a", "metadata is not the schema's");
}

#[test]
fn errors_name_the_field_as_kubernetes() {
    let mut v = json!({"spec": {"replicas": "three", "tier": "gold", "ports": [1, 2, 3],
                                "labels": {"a": 1}, "port": 1.5}});
    let errs = validate(&schema(), &mut v, "");
    let has = |s: &str| errs.iter().any(|e| e.contains(s));
    assert!(has("spec.image: Required value"), "{errs:?}");
    assert!(
        has(
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer"
        ),
        "{errs:?}"
    );
    assert!(
        has("spec.tier: Unsupported value: \"gold\": supported values: \"free\", \"paid\""),
        "{errs:?}"
    );
    assert!(has("spec.ports: Too long"), "{errs:?}");
    assert!(has("spec.labels.a: Invalid value"), "{errs:?}");
    assert!(has("spec.port: Invalid value"), "{errs:?}");
    let mut v = json!({"spec": {"image": "UPPER", "replicas": 11}});
    let errs = validate(&schema(), &mut v, "");
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.image") && e.contains("should match")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("less than or equal to 10")),
        "{errs:?}"
    );
    let mut v = json!({"spec": {"image": ""}});
    let errs = validate(&schema(), &mut v, "");
    assert!(
        errs.iter().any(|e| e.contains("at least 1 characters")),
        "{errs:?}"
    );
}

#[test]
fn schemas_must_be_structural_and_bounded() {
    let e = check(&json!({"type": "object", "properties": {"a": {}}}), "s").unwrap_err();
    assert_eq!(e.path, "s.properties[a].type");
    let e = check(
        &json!({"type": "object", "properties": {"a": {"type": "array"}}}),
        "s",
    )
    .unwrap_err();
    assert_eq!(e.path, "s.properties[a].items");
    let e = check(&json!({"type": "object", "anyOf": []}), "s").unwrap_err();
    assert!(e.message.contains("not supported"), "{e}");
    let e = check(&json!({"type": "object", "propertees": {}}), "s").unwrap_err();
    assert!(e.message.contains("unknown"), "{e}");
    let e = check(&json!({"type": "string"}), "s").unwrap_err();
    assert!(e.message.contains("root"), "{e}");
    let e = check(
        &json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
        "s",
    )
    .unwrap_err();
    assert_eq!(e.path, "s.properties[a].pattern");
    let e = check(
        &json!({"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}}),
        "s",
    )
    .unwrap_err();
    assert_eq!(e.path, "s.properties[a].default");
    // Nesting past the bound is refused, not recursed into.
    let mut deep = json!({"type": "object"});
    for _ in 0..(MAX_DEPTH + 5) {
        deep = json!({"type": "object", "properties": {"a": deep}});
    }
    let e = check(&deep, "s").unwrap_err();
    assert!(e.message.contains("deeper"), "{e}");
    let wide: serde_json::Map<String, Value> = (0..MAX_NODES + 1)
        .map(|i| (format!("f{i}"), json!({"type": "string"})))
        .collect();
    let e = check(&json!({"type": "object", "properties": wide}), "s").unwrap_err();
    assert!(e.message.contains("nodes"), "{e}");
}

#[test]
fn null_needs_nullable() {
    let mut v = json!({"spec": {"image": "a", "tier": null}});
    let errs = validate(&schema(), &mut v, "");
    assert!(
        errs.iter()
            .any(|e| e.contains("spec.tier") && e.contains("null")),
        "{errs:?}"
    );
}
