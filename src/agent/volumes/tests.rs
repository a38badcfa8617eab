use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::resource::types::{
    ConfigMapVolume, DownwardApiFile, DownwardApiProjection, DownwardApiVolume, EmptyDirVolume,
    HostPathVolume, ObjectFieldSelector, ObjectProjection, ProjectedVolume, Quantity,
    ResourceFieldSelector, ResourceRequirements, SecretVolume, VolumeMount, VolumeProjection,
};

#[test]
fn host_path_types_decide() {
    use Found as F;
    use HostPathAction as A;
    use HostPathType as T;
    let cases: [(T, F, Result<A, &str>); 16] = [
        (T::Unchecked, F::Missing, Ok(A::Use)),
        (T::Unchecked, F::Socket, Ok(A::Use)),
        (T::DirectoryOrCreate, F::Missing, Ok(A::CreateDirectory)),
        (T::DirectoryOrCreate, F::Directory, Ok(A::Use)),
        (
            T::DirectoryOrCreate,
            F::File,
            Err("/p is not a directory (found a file)"),
        ),
        (
            T::Directory,
            F::Missing,
            Err("/p does not exist (type directory)"),
        ),
        (T::Directory, F::Directory, Ok(A::Use)),
        (T::FileOrCreate, F::Missing, Ok(A::CreateFile)),
        (
            T::FileOrCreate,
            F::Directory,
            Err("/p is not a file (found a directory)"),
        ),
        (T::File, F::File, Ok(A::Use)),
        (T::File, F::Missing, Err("does not exist")),
        (T::Socket, F::Socket, Ok(A::Use)),
        (T::Socket, F::File, Err("is not a socket")),
        (T::CharDevice, F::CharDevice, Ok(A::Use)),
        (
            T::CharDevice,
            F::BlockDevice,
            Err("is not a character device"),
        ),
        (
            T::BlockDevice,
            F::Other,
            Err("is not a block device (found another kind of file)"),
        ),
    ];
    for (t, found, want) in cases {
        let got = host_path_action("/p", t, found);
        match want {
            Ok(a) => assert_eq!(got, Ok(a), "{t:?} {found:?}"),
            Err(e) => {
                let msg = got.expect_err("must fail");
                assert!(msg.contains(e), "{t:?} {found:?}: {msg}");
            }
        }
    }
    assert!(HostPathType::parse(Some("Nope")).is_err());
    assert_eq!(HostPathType::parse(None), Ok(HostPathType::Unchecked));
}

fn vol(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn volumes_plan_by_source() {
    let empty = Volume {
        empty_dir: Some(EmptyDirVolume::default()),
        ..vol("a")
    };
    let mem = Volume {
        empty_dir: Some(EmptyDirVolume {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
        }),
        ..vol("b")
    };
    // A size limit on disk is not enforced: no tmpfs, no size.
    let disk_limit = Volume {
        empty_dir: Some(EmptyDirVolume {
            medium: None,
            size_limit: Some(Quantity("1Mi".into())),
        }),
        ..vol("c")
    };
    let host = Volume {
        host_path: Some(HostPathVolume {
            path: "/srv".into(),
            path_type: Some("Directory".into()),
        }),
        ..vol("d")
    };
    let cm = Volume {
        config_map: Some(ConfigMapVolume {
            name: "cm".into(),
            ..Default::default()
        }),
        ..vol("e")
    };
    let secret = Volume {
        secret: Some(SecretVolume {
            secret_name: "s".into(),
            ..Default::default()
        }),
        ..vol("f")
    };
    let projected_cm = Volume {
        projected: Some(ProjectedVolume {
            sources: vec![VolumeProjection {
                config_map: Some(ObjectProjection {
                    name: "cm".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            default_mode: None,
        }),
        ..vol("g")
    };
    let mut projected_secret = projected_cm.clone();
    if let Some(p) = projected_secret.projected.as_mut() {
        p.sources.push(VolumeProjection {
            secret: Some(ObjectProjection {
                name: "s".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let cases = [
        (
            empty,
            VolumePlan::EmptyDir {
                memory: false,
                size: None,
            },
        ),
        (
            mem,
            VolumePlan::EmptyDir {
                memory: true,
                size: Some(1 << 20),
            },
        ),
        (
            disk_limit,
            VolumePlan::EmptyDir {
                memory: false,
                size: None,
            },
        ),
        (
            host,
            VolumePlan::HostPath {
                path: "/srv".into(),
                check: HostPathType::Directory,
            },
        ),
        (cm, VolumePlan::Files { tmpfs: false }),
        (secret, VolumePlan::Files { tmpfs: true }),
        (projected_cm, VolumePlan::Files { tmpfs: false }),
        (projected_secret, VolumePlan::Files { tmpfs: true }),
    ];
    for (v, want) in cases {
        assert_eq!(plan_volume(&v), Ok(want), "{}", v.name);
    }
    assert!(plan_volume(&vol("none")).is_err());
}

struct Fake {
    cms: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Objects for Fake {
    fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(self.cms.get(name).cloned())
    }
    fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        Ok(self.secrets.get(name).cloned())
    }
    fn claim_dir(&self, claim: &str) -> Result<PathBuf, VolumeError> {
        Err(VolumeError::Config(format!(
            "no claim {claim:?} in this fake"
        )))
    }
}

fn kv(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn file(data: &str, mode: u32) -> FileWant {
    FileWant {
        data: data.as_bytes().to_vec(),
        mode,
    }
}

fn item(key: &str, path: &str, mode: Option<u32>) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode,
    }
}

#[test]
fn payloads_follow_items_modes_and_optional() {
    let objs = Fake {
        cms: BTreeMap::from([("cm".into(), kv(&[("a", "1"), ("b", "2")]))]),
        secrets: BTreeMap::from([("s".into(), kv(&[("pw", "hunter2")]))]),
    };
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let spec = PodSpec {
        containers: vec![Container {
            name: "main".into(),
            resources: Some(ResourceRequirements {
                limits: BTreeMap::from([("memory".into(), Quantity("32Mi".into()))]),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let dw = Downward {
        facts: PodFacts {
            name: "p",
            namespace: "ns",
            uid: "u",
            labels: Some(&labels),
            node_name: "n1",
            ..Default::default()
        },
        spec: &spec,
        allocatable: (1000, 1 << 30),
    };
    let cm =
        |items: Vec<KeyToPath>, mode: Option<u32>, optional: Option<bool>, name: &str| Volume {
            config_map: Some(ConfigMapVolume {
                name: name.into(),
                items,
                default_mode: mode,
                optional,
            }),
            ..vol("v")
        };
    let fref = |path: &str, field: &str| DownwardApiFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: field.into(),
            api_version: None,
        }),
        ..Default::default()
    };
    let cases: Vec<(Volume, Result<Payload, VolumeError>)> = vec![
        (
            cm(vec![], None, None, "cm"),
            Ok(Payload::from([
                ("a".into(), file("1", 0o644)),
                ("b".into(), file("2", 0o644)),
            ])),
        ),
        (
            cm(
                vec![item("b", "dir/b.txt", Some(0o600))],
                Some(0o640),
                None,
                "cm",
            ),
            Ok(Payload::from([("dir/b.txt".into(), file("2", 0o600))])),
        ),
        (
            cm(vec![item("a", "x", None)], Some(0o400), None, "cm"),
            Ok(Payload::from([("x".into(), file("1", 0o400))])),
        ),
        (
            cm(vec![], None, None, "gone"),
            Err(VolumeError::Config("configmap \"gone\" not found".into())),
        ),
        (cm(vec![], None, Some(true), "gone"), Ok(Payload::new())),
        (
            cm(vec![item("zz", "z", None)], None, None, "cm"),
            Err(VolumeError::Config(
                "configmap \"cm\" has no key \"zz\" (for path \"z\")".into(),
            )),
        ),
        (
            cm(vec![item("zz", "z", None)], None, Some(true), "cm"),
            Ok(Payload::new()),
        ),
        (
            cm(
                vec![item("a", "x", None), item("b", "x/y", None)],
                None,
                None,
                "cm",
            ),
            Err(VolumeError::Config(
                "\"x\" is both a file and the directory of \"x/y\"".into(),
            )),
        ),
        (
            Volume {
                secret: Some(SecretVolume {
                    secret_name: "s".into(),
                    default_mode: Some(0o400),
                    ..Default::default()
                }),
                ..vol("v")
            },
            Ok(Payload::from([("pw".into(), file("hunter2", 0o400))])),
        ),
        (
            Volume {
                secret: Some(SecretVolume {
                    secret_name: "nope".into(),
                    ..Default::default()
                }),
                ..vol("v")
            },
            Err(VolumeError::Config("secret \"nope\" not found".into())),
        ),
        (
            Volume {
                downward_api: Some(DownwardApiVolume {
                    items: vec![
                        fref("name", "metadata.name"),
                        fref("labels", "metadata.labels"),
                        DownwardApiFile {
                            path: "mem".into(),
                            resource_field_ref: Some(ResourceFieldSelector {
                                container_name: Some("main".into()),
                                resource: "limits.memory".into(),
                                divisor: Some(Quantity("1Mi".into())),
                            }),
                            mode: Some(0o600),
                            ..Default::default()
                        },
                    ],
                    default_mode: None,
                }),
                ..vol("v")
            },
            Ok(Payload::from([
                ("name".into(), file("p", 0o644)),
                ("labels".into(), file("app=\"web\"", 0o644)),
                ("mem".into(), file("32", 0o600)),
            ])),
        ),
        (
            Volume {
                projected: Some(ProjectedVolume {
                    sources: vec![
                        VolumeProjection {
                            config_map: Some(ObjectProjection {
                                name: "cm".into(),
                                items: vec![item("a", "conf/a", None)],
                                optional: None,
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            secret: Some(ObjectProjection {
                                name: "s".into(),
                                items: vec![],
                                optional: None,
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            downward_api: Some(DownwardApiProjection {
                                items: vec![fref("node", "spec.nodeName")],
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            secret: Some(ObjectProjection {
                                name: "absent".into(),
                                items: vec![],
                                optional: Some(true),
                            }),
                            ..Default::default()
                        },
                    ],
                    default_mode: Some(0o440),
                }),
                ..vol("v")
            },
            Ok(Payload::from([
                ("conf/a".into(), file("1", 0o440)),
                ("pw".into(), file("hunter2", 0o440)),
                ("node".into(), file("n1", 0o440)),
            ])),
        ),
    ];
    for (i, (v, want)) in cases.into_iter().enumerate() {
        assert_eq!(payload(&v, &objs, &dw), want, "case {i}");
    }
}

#[test]
fn container_mounts_follow_the_spec() {
    let spec = PodSpec {
        volumes: vec![
            Volume {
                empty_dir: Some(EmptyDirVolume::default()),
                ..vol("scratch")
            },
            Volume {
                host_path: Some(HostPathVolume {
                    path: "/srv/data".into(),
                    path_type: None,
                }),
                ..vol("host")
            },
            Volume {
                config_map: Some(ConfigMapVolume {
                    name: "cm".into(),
                    ..Default::default()
                }),
                ..vol("conf")
            },
        ],
        ..Default::default()
    };
    let mount = |name: &str, path: &str, ro: Option<bool>, sub: Option<&str>| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: ro,
        sub_path: sub.map(String::from),
    };
    let c = Container {
        name: "c".into(),
        volume_mounts: vec![
            mount("scratch", "/tmp/s", None, None),
            mount("host", "/data", Some(true), Some("sub")),
            mount("conf", "/etc/app", Some(false), None),
            mount("conf", "/etc/one.conf", None, Some("one.conf")),
        ],
        ..Default::default()
    };
    let got = container_mounts(&spec, &c, Path::new("/d/uid"), &BTreeMap::new()).expect("mounts");
    let pm = |volume: &str, root: &str, sub: Option<&str>, create: bool, path: &str, ro: bool| {
        PlannedMount {
            volume: volume.into(),
            root: root.into(),
            sub_path: sub.map(String::from),
            create_sub_path: create,
            container_path: path.into(),
            read_only: ro,
            named: None,
        }
    };
    assert_eq!(
        got,
        vec![
            pm("scratch", "/d/uid/scratch", None, true, "/tmp/s", false),
            pm("host", "/srv/data", Some("sub"), true, "/data", true),
            // ConfigMap files are read-only inside whatever the mount says.
            pm("conf", "/d/uid/conf", None, false, "/etc/app", true),
            pm(
                "conf",
                "/d/uid/conf",
                Some("one.conf"),
                false,
                "/etc/one.conf",
                true
            ),
        ]
    );
    let bad = Container {
        volume_mounts: vec![mount("nope", "/x", None, None)],
        ..c
    };
    assert!(container_mounts(&spec, &bad, Path::new("/d"), &BTreeMap::new()).is_err());
}

#[test]
fn atomic_writer_swaps_generations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let one = Payload::from([
        ("a".into(), file("1", 0o644)),
        ("d/b".into(), file("2", 0o600)),
    ]);
    assert!(atomic::write(dir, &one, t0).expect("write"));
    assert_eq!(std::fs::read_to_string(dir.join("a")).expect("a"), "1");
    assert_eq!(std::fs::read_to_string(dir.join("d/b")).expect("b"), "2");
    let mode = std::fs::metadata(dir.join("d/b"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_link(dir.join("a")).expect("link"),
        Path::new("..data/a")
    );
    let first = std::fs::read_link(dir.join(atomic::DATA_LINK)).expect("..data");
    assert_eq!(first, Path::new("..2027_01_15_08_00_00.000000000"));
    // Same content: nothing written.
    assert!(!atomic::write(dir, &one, t0 + Duration::from_secs(1)).expect("again"));
    assert_eq!(
        std::fs::read_link(dir.join(atomic::DATA_LINK)).expect("..data"),
        first
    );

    let two = Payload::from([
        ("a".into(), file("1b", 0o644)),
        ("c".into(), file("3", 0o644)),
    ]);
    assert!(atomic::write(dir, &two, t0 + Duration::from_secs(2)).expect("update"));
    assert_eq!(std::fs::read_to_string(dir.join("a")).expect("a"), "1b");
    assert_eq!(std::fs::read_to_string(dir.join("c")).expect("c"), "3");
    assert!(
        std::fs::symlink_metadata(dir.join("d")).is_err(),
        "stale link removed"
    );
    // The previous generation stays for readers caught mid-walk.
    assert!(dir.join(&first).is_dir());
    let three = Payload::from([("a".into(), file("1c", 0o644))]);
    assert!(atomic::write(dir, &three, t0 + Duration::from_secs(3)).expect("update"));
    assert!(
        !dir.join(&first).exists(),
        "two generations back is removed"
    );
    let gens = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
        .count();
    assert_eq!(gens, 2);
    assert_eq!(atomic::read_current(dir).expect("read"), Some(three));
}

#[test]
fn sub_paths_resolve_inside_their_volume() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("vol");
    std::fs::create_dir(&root).expect("mkdir");
    std::os::unix::fs::symlink("/etc", root.join("escape")).expect("symlink");
    let pm = |sub: &str, create: bool| PlannedMount {
        volume: "v".into(),
        root: root.clone(),
        sub_path: Some(sub.into()),
        create_sub_path: create,
        container_path: "/x".into(),
        read_only: false,
        named: None,
    };
    let made = host::resolve_mounts(&[pm("new/dir", true)]).expect("created");
    assert!(root.join("new/dir").is_dir());
    assert_eq!(
        made[0].host_path,
        std::fs::canonicalize(root.join("new/dir"))
            .expect("c")
            .to_string_lossy()
    );
    let e = host::resolve_mounts(&[pm("escape", true)]).expect_err("escapes");
    assert!(e.to_string().contains("leads outside the volume"), "{e}");
    let e = host::resolve_mounts(&[pm("missing", false)]).expect_err("missing file");
    assert_eq!(e.reason(), "CreateContainerConfigError");
}
