use super::*;
use crate::resource::types::{
    ConfigMapVolume, Container, EnvFromSource, EnvVar, EnvVarSource, KeySelector, NameRef, PodSpec,
    TemplateMetadata, Volume, VolumeMount,
};

fn template(c: Container, volumes: Vec<Volume>) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(TemplateMetadata::default()),
        spec: PodSpec {
            containers: vec![c],
            volumes,
            ..Default::default()
        },
    }
}

fn env_from_cm(name: &str) -> Container {
    Container {
        name: "c".into(),
        image: "i".into(),
        env_from: vec![EnvFromSource {
            config_map_ref: Some(NameRef {
                name: name.into(),
                optional: None,
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn env_key(secret: bool, name: &str, key: &str) -> Container {
    let sel = Some(KeySelector {
        name: name.into(),
        key: key.into(),
        optional: None,
    });
    Container {
        name: "c".into(),
        image: "i".into(),
        env: vec![EnvVar {
            name: "V".into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: if secret { None } else { sel.clone() },
                secret_key_ref: if secret { sel } else { None },
                field_ref: None,
                resource_field_ref: None,
            }),
        }],
        ..Default::default()
    }
}

fn mount(c: Container, sub_path: Option<&str>) -> (Container, Vec<Volume>) {
    let mut c = Container {
        env_from: vec![],
        ..c
    };
    c.volume_mounts = vec![VolumeMount {
        name: "cfg".into(),
        mount_path: "/etc/app".into(),
        read_only: None,
        sub_path: sub_path.map(String::from),
    }];
    let v = Volume {
        name: "cfg".into(),
        config_map: Some(ConfigMapVolume {
            name: "app".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    (c, vec![v])
}

type World = BTreeMap<(Kind, String), BTreeMap<String, String>>;

type Entry<'a> = (Kind, &'a str, &'a [(&'a str, &'a str)]);

fn world(entries: &[Entry<'_>]) -> World {
    entries
        .iter()
        .map(|(k, n, kv)| {
            (
                (*k, n.to_string()),
                kv.iter()
                    .map(|(k, v)| (format!("data/{k}"), v.to_string()))
                    .collect(),
            )
        })
        .collect()
}

fn hash(meta: &ObjectMeta, t: &PodTemplateSpec, w: &World) -> Option<String> {
    config_hash(meta, t, &|k, n| w.get(&(k, n.to_string())).cloned())
}

#[test]
fn the_hash_follows_exactly_what_the_pods_read() {
    let none = ObjectMeta::default();
    let opt_out = ObjectMeta {
        annotations: BTreeMap::from([(RESTART_ON_CONFIG_CHANGE.into(), "false".into())]),
        ..Default::default()
    };
    let (sub, sub_vols) = mount(env_from_cm("x"), Some("app.conf"));
    let (whole, whole_vols) = mount(env_from_cm("x"), None);
    let a1 = world(&[(Kind::ConfigMap, "app", &[("k", "1"), ("other", "x")])]);
    let a2 = world(&[(Kind::ConfigMap, "app", &[("k", "2"), ("other", "x")])]);
    let a_other = world(&[(Kind::ConfigMap, "app", &[("k", "1"), ("other", "y")])]);
    let s1 = world(&[(Kind::Secret, "app", &[("k", "MQ==")])]);
    let s2 = world(&[(Kind::Secret, "app", &[("k", "Mg==")])]);
    let empty = World::new();
    let a1_again = a1.clone();
    let s1_and_a2 = {
        let mut w = s1.clone();
        w.extend(a2.clone());
        w
    };
    // (what, meta, template, before, after, rolls?)
    let cases: Vec<(&str, &ObjectMeta, PodTemplateSpec, &World, &World, bool)> = vec![
        (
            "envFrom: a changed key rolls",
            &none,
            template(env_from_cm("app"), vec![]),
            &a1,
            &a2,
            true,
        ),
        (
            "envFrom: any key rolls",
            &none,
            template(env_from_cm("app"), vec![]),
            &a1,
            &a_other,
            true,
        ),
        (
            "envFrom: unchanged stays",
            &none,
            template(env_from_cm("app"), vec![]),
            &a1,
            &a1_again,
            false,
        ),
        (
            "valueFrom: the key read rolls",
            &none,
            template(env_key(false, "app", "k"), vec![]),
            &a1,
            &a2,
            true,
        ),
        (
            "valueFrom: another key does not",
            &none,
            template(env_key(false, "app", "k"), vec![]),
            &a1,
            &a_other,
            false,
        ),
        (
            "secretKeyRef rolls",
            &none,
            template(env_key(true, "app", "k"), vec![]),
            &s1,
            &s2,
            true,
        ),
        (
            "a ConfigMap of the same name is not the Secret",
            &none,
            template(env_key(true, "app", "k"), vec![]),
            &s1,
            &s1_and_a2,
            false,
        ),
        (
            "created later rolls",
            &none,
            template(env_from_cm("app"), vec![]),
            &empty,
            &a1,
            true,
        ),
        (
            "subPath mount rolls",
            &none,
            template(sub.clone(), sub_vols.clone()),
            &a1,
            &a2,
            true,
        ),
        (
            "whole-volume mount is updated in place",
            &none,
            template(whole.clone(), whole_vols.clone()),
            &a1,
            &a2,
            false,
        ),
        (
            "opted out",
            &opt_out,
            template(env_from_cm("app"), vec![]),
            &a1,
            &a2,
            false,
        ),
    ];
    for (what, meta, t, before, after, rolls) in cases {
        let (h1, h2) = (hash(meta, &t, before), hash(meta, &t, after));
        assert_eq!(h1 != h2, rolls, "{what}: {h1:?} -> {h2:?}");
    }
}

#[test]
fn no_reference_or_opt_out_means_no_stamp_and_a_stale_stamp_goes() {
    let plain = template(
        Container {
            name: "c".into(),
            image: "i".into(),
            ..Default::default()
        },
        vec![],
    );
    assert_eq!(hash(&ObjectMeta::default(), &plain, &World::new()), None);
    let mut t = template(env_from_cm("app"), vec![]);
    t.metadata
        .as_mut()
        .unwrap()
        .annotations
        .insert(RESTART_ON_CONFIG_CHANGE.into(), "false".into());
    assert_eq!(hash(&ObjectMeta::default(), &t, &World::new()), None);

    let stamped = effective_template(&plain, Some("abc"));
    assert_eq!(
        stamped
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .get(CONFIG_HASH),
        Some(&"abc".to_string())
    );
    // `rollout undo` copies a stamped template back into the Deployment.
    assert_eq!(effective_template(&stamped, None), {
        let mut p = plain.clone();
        p.metadata = Some(TemplateMetadata::default());
        p
    });
    assert_eq!(
        effective_template(&stamped, Some("def"))
            .metadata
            .unwrap()
            .annotations[CONFIG_HASH],
        "def"
    );
}
