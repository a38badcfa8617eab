use super::*;
use crate::resource::types::Container;

fn spec(account: Option<&str>, automount: Option<bool>) -> PodSpec {
    let c = |n: &str| Container {
        name: n.into(),
        image: "busybox".into(),
        ..Default::default()
    };
    PodSpec {
        containers: vec![c("app")],
        init_containers: vec![c("init")],
        service_account_name: account.map(String::from),
        automount_service_account_token: automount,
        ..Default::default()
    }
}

fn api(tls: bool, host: Option<&str>) -> ApiEndpoint {
    ApiEndpoint {
        host: host.map(String::from),
        port: 6443,
        ca_pem: tls.then(|| "PEM".into()),
    }
}

fn mounted(s: &PodSpec) -> Vec<(String, bool)> {
    s.all_containers()
        .map(|c| {
            let m = c.volume_mounts.iter().any(|m| m.name == VOLUME);
            (c.name.clone(), m)
        })
        .collect()
}

fn env(s: &PodSpec, container: &str) -> Vec<(String, String)> {
    s.container(container)
        .map(|c| {
            c.env
                .iter()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn automount_follows_pod_then_account() {
    // (pod's, account's, mounted)
    let cases = [
        (None, None, true),
        (None, Some(false), false),
        (Some(true), Some(false), true),
        (Some(false), Some(true), false),
        (Some(false), None, false),
    ];
    for (pod, acct, want) in cases {
        let mut s = spec(Some("web"), pod);
        inject(&mut s, &Account::Found { automount: acct }, None, false).expect("inject");
        let has = s.volumes.iter().any(|v| v.name == VOLUME);
        assert_eq!(has, want, "pod {pod:?}, account {acct:?}");
        assert_eq!(
            mounted(&s),
            vec![("init".into(), want), ("app".into(), want)],
            "pod {pod:?}, account {acct:?}"
        );
        if want {
            let v = s.volumes.iter().find(|v| v.name == VOLUME).expect("volume");
            let secret = v.secret.as_ref().expect("a secret volume");
            assert_eq!(secret.secret_name, "web-token");
            let m = &s.containers[0].volume_mounts[0];
            assert_eq!(m.mount_path, MOUNT_PATH);
            assert_eq!(m.read_only, Some(true));
        }
    }
}

#[test]
fn a_container_mounting_the_path_itself_is_skipped() {
    let mut s = spec(None, None);
    s.containers[0].volume_mounts.push(VolumeMount {
        name: "mine".into(),
        mount_path: format!("{MOUNT_PATH}/"),
        ..Default::default()
    });
    inject(&mut s, &Account::Found { automount: None }, None, false).expect("inject");
    assert_eq!(
        mounted(&s),
        vec![("init".into(), true), ("app".into(), false)]
    );
    // The default account's Secret when the pod names none.
    let v = s.volumes.iter().find(|v| v.name == VOLUME).expect("volume");
    assert_eq!(
        v.secret.as_ref().map(|s| s.secret_name.as_str()),
        Some("default-token")
    );
}

#[test]
fn a_missing_account_holds_the_pod_naming_it() {
    let mut s = spec(Some("ghost"), Some(false));
    let e = inject(
        &mut s,
        &Account::Missing,
        Some(&api(false, Some("10.0.0.1"))),
        false,
    )
    .expect_err("held");
    assert_eq!(e.reason(), "CreateContainerConfigError");
    assert!(
        e.to_string().contains("serviceaccount \"ghost\" not found"),
        "{e}"
    );
}

#[test]
fn api_variables_point_at_the_node() {
    let mut s = spec(None, None);
    inject(
        &mut s,
        &Account::Found { automount: None },
        Some(&api(true, Some("10.0.0.1"))),
        false,
    )
    .expect("inject");
    let want: Vec<(String, String)> = [
        ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", "6443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "6443"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(env(&s, "app"), want);
    assert_eq!(env(&s, "init"), want);
    // Plain HTTP: no _HTTPS; a loopback-only API: no variables at all.
    let mut s = spec(None, None);
    inject(
        &mut s,
        &Account::Found { automount: None },
        Some(&api(false, Some("10.0.0.1"))),
        false,
    )
    .expect("inject");
    assert_eq!(env(&s, "app").len(), 2);
    let mut s = spec(None, None);
    inject(
        &mut s,
        &Account::Found { automount: None },
        Some(&api(true, None)),
        false,
    )
    .expect("inject");
    assert!(env(&s, "app").is_empty());
}

#[test]
fn the_process_runtime_mounts_nothing_and_refuses_an_explicit_ask() {
    let mut s = spec(None, None);
    inject(&mut s, &Account::Found { automount: None }, None, true).expect("default: skipped");
    assert!(s.volumes.is_empty());
    let mut s = spec(None, Some(true));
    let e = inject(&mut s, &Account::Found { automount: None }, None, true).expect_err("refused");
    assert!(e.to_string().contains("process runtime"), "{e}");
    let mut s = spec(None, Some(false));
    inject(
        &mut s,
        &Account::Found {
            automount: Some(true),
        },
        None,
        true,
    )
    .expect("off: fine");
}

struct Fake;

impl Objects for Fake {
    fn config_map(&self, _: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(None)
    }
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok((name != "gone").then(|| BTreeMap::from([("token".to_string(), b"t".to_vec())])))
    }
    fn claim_dir(&self, _: &str) -> Result<PathBuf, VolumeError> {
        Err(VolumeError::Mount("no".into()))
    }
}

#[test]
fn the_ca_is_added_to_the_account_secret_only() {
    let w = WithCa {
        inner: &Fake,
        secret: "web-token".into(),
        ca: Some(b"PEM".to_vec()),
    };
    let keys = |n: &str| -> Vec<String> {
        w.secret(n)
            .expect("read")
            .map(|d| d.into_keys().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys("web-token"), vec!["ca.crt", "token"]);
    assert_eq!(keys("other"), vec!["token"]);
    assert!(keys("gone").is_empty());
}

#[test]
fn an_account_without_its_token_yet_holds_only_pods_that_mount_it() {
    let mut s = spec(Some("new"), None);
    let e = inject(&mut s, &Account::Unminted { automount: None }, None, false)
        .expect_err("held until minted");
    assert!(
        e.to_string()
            .contains("token of serviceaccount \"new\" is not made yet"),
        "{e}"
    );
    let mut s = spec(Some("new"), Some(false));
    inject(&mut s, &Account::Unminted { automount: None }, None, false).expect("no mount: runs");
    let mut s = spec(Some("new"), None);
    inject(&mut s, &Account::Unminted { automount: None }, None, true).expect("process: no mount");
}

#[test]
fn what_the_agent_adds_leaves_the_spec_hash_alone() {
    let before = spec(None, None);
    let mut after = before.clone();
    inject(
        &mut after,
        &Account::Found { automount: None },
        Some(&api(true, Some("10.0.0.1"))),
        false,
    )
    .expect("inject");
    assert_ne!(before.containers[0], after.containers[0]);
    for (b, a) in before.all_containers().zip(after.all_containers()) {
        assert_eq!(
            crate::agent::plan::spec_hash(b),
            crate::agent::plan::spec_hash(a)
        );
    }
    // The user's own changes still count.
    let mut changed = after.containers[0].clone();
    changed.image = "other".into();
    assert_ne!(
        crate::agent::plan::spec_hash(&changed),
        crate::agent::plan::spec_hash(&after.containers[0])
    );
}
