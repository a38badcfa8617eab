//! A container's stdin, stdinOnce and tty: accepted, kept, and checked
//! with their paths.

use super::*;

#[test]
fn stdin_stdin_once_and_tty_are_accepted_and_kept() {
    let p = ok(&deployment_with(
        "image: busybox",
        "image: busybox\n        stdin: true\n        stdinOnce: true\n        tty: true",
    ));
    let body = DeploymentBody::from_object(&p.objects[0]).expect("decode");
    let c = &body.spec.template.spec.containers[0];
    assert_eq!((c.stdin, c.stdin_once, c.tty), (true, true, true));

    // Unset, they are false and absent from what is stored, so that a pod
    // stored before them keeps its containers' spec hash.
    let p = ok(DEPLOYMENT);
    let body = DeploymentBody::from_object(&p.objects[0]).expect("decode");
    let c = &body.spec.template.spec.containers[0];
    assert_eq!((c.stdin, c.stdin_once, c.tty), (false, false, false));
    let json = serde_json::to_value(c).expect("encode");
    for f in ["stdin", "stdinOnce", "tty"] {
        assert!(json.get(f).is_none(), "{f} stored: {json}");
    }
}

#[test]
fn stdin_that_is_not_a_boolean_is_refused_with_its_path() {
    for (field, value) in [("stdin", "\"yes\""), ("stdinOnce", "1"), ("tty", "[]")] {
        let e = err(&deployment_with(
            "image: busybox",
            &format!("image: busybox\n        {field}: {value}"),
        ));
        assert!(
            e.contains(&format!("spec.template.spec.containers[0].{field}")),
            "{field}: {e}"
        );
    }
}
