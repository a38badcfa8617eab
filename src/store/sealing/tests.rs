use super::*;

fn kek(b: u8) -> Kek {
    Kek {
        bytes: [b; 32],
        source: format!("test {b}"),
    }
}

fn stored_keyring(sealer: &Sealer, version: u64) -> Object {
    let mut o = sealer.new_keyring().unwrap();
    o.metadata.resource_version = Some(version.to_string());
    o
}

fn secret_body(value: &str) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("password".into(), encode_base64(value.as_bytes()).into());
    let mut body = Map::new();
    body.insert("data".into(), Value::Object(data));
    body
}

fn as_object(key: &ObjectKey, body: Map<String, Value>) -> Object {
    Object {
        api_version: "v1".into(),
        kind: "Secret".into(),
        metadata: ObjectMeta {
            name: key.name.clone(),
            namespace: Some(key.namespace.clone()),
            ..Default::default()
        },
        body,
    }
}

#[test]
fn a_sealed_secret_holds_no_value_and_opens_again() {
    let sealer = Sealer::new(kek(1));
    let keys = sealer.open_keyring(&stored_keyring(&sealer, 3)).unwrap();
    let key = ObjectKey::new(Kind::Secret, "default", "db");
    let mut body = secret_body("hunter2-distinctive");
    sealer.seal(&keys, &key, &mut body, None).unwrap();
    let text = serde_json::to_string(&body).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        !text.contains(&encode_base64(b"hunter2-distinctive")),
        "{text}"
    );
    assert!(!body.contains_key("data"));
    let mut o = as_object(&key, body.clone());
    assert_eq!(sealed_key_id(&o), Some(1));
    sealer.open(&keys, &key, &mut o).unwrap();
    assert_eq!(o.body, secret_body("hunter2-distinctive"));

    // Nonces are random: sealing again gives other bytes.
    let mut again = secret_body("hunter2-distinctive");
    sealer.seal(&keys, &key, &mut again, None).unwrap();
    assert_ne!(again, body);
}

#[test]
fn a_ciphertext_copied_onto_another_secret_does_not_open() {
    let sealer = Sealer::new(kek(1));
    let keys = sealer.open_keyring(&stored_keyring(&sealer, 3)).unwrap();
    let a = ObjectKey::new(Kind::Secret, "default", "a");
    let b = ObjectKey::new(Kind::Secret, "other", "a");
    let mut body = secret_body("v");
    sealer.seal(&keys, &a, &mut body, None).unwrap();
    let mut stolen = as_object(&b, body.clone());
    let err = sealer.open(&keys, &b, &mut stolen).unwrap_err();
    assert!(matches!(err, SealError::Tampered { .. }), "{err}");
    // Written back sealed under another name, it is refused too.
    let mut write = body.clone();
    assert!(sealer.seal(&keys, &b, &mut write, None).is_err());
    // A flipped byte is caught.
    let mut bad = body.clone();
    let s = bad[SEALED_FIELD]["ciphertext"]
        .as_str()
        .unwrap()
        .to_string();
    let mut raw = decode_base64(&s).unwrap();
    raw[20] ^= 1;
    bad[SEALED_FIELD]["ciphertext"] = encode_base64(&raw).into();
    assert!(sealer.open(&keys, &a, &mut as_object(&a, bad)).is_err());
}

#[test]
fn writing_the_same_data_again_keeps_the_ciphertext() {
    let sealer = Sealer::new(kek(1));
    let keys = sealer.open_keyring(&stored_keyring(&sealer, 3)).unwrap();
    let key = ObjectKey::new(Kind::Secret, "default", "db");
    let mut first = secret_body("v");
    sealer.seal(&keys, &key, &mut first, None).unwrap();
    let current = as_object(&key, first.clone());
    let mut same = secret_body("v");
    sealer.seal(&keys, &key, &mut same, Some(&current)).unwrap();
    assert_eq!(same, first);
    let mut changed = secret_body("w");
    sealer
        .seal(&keys, &key, &mut changed, Some(&current))
        .unwrap();
    assert_ne!(changed, first);
}

#[test]
fn a_wrong_kek_is_told_and_opens_nothing() {
    let ring = stored_keyring(&Sealer::new(kek(1)), 3);
    let err = match Sealer::new(kek(2)).open_keyring(&ring) {
        Err(e) => e,
        Ok(_) => panic!("a wrong KEK opened the keyring"),
    };
    assert!(matches!(err, SealError::WrongKek { id: 1, .. }), "{err}");
    assert!(err.to_string().contains("does not open"), "{err}");
}

#[test]
fn a_keyring_sealed_before_the_cluster_had_a_key_opens_and_moves_under_it() {
    let ring = stored_keyring(&Sealer::new(Kek::well_known()), 3);
    let keyed = Sealer::new(kek(2));
    // Opened through the well-known key, so the node starts.
    let keys = keyed.open_keyring(&ring).unwrap();
    let moved = keyed.rewrapped(&ring).unwrap().expect("re-wrapped");
    // The same data keys, now under the node's KEK alone.
    let fresh = Sealer::new(kek(2));
    let again = fresh.open_keyring(&moved).unwrap();
    let key = ObjectKey::new(Kind::Secret, "default", "db");
    let mut body = secret_body("sealed-before-the-key");
    keyed.seal(&keys, &key, &mut body, None).unwrap();
    let mut o = as_object(&key, body);
    fresh.open(&again, &key, &mut o).unwrap();
    assert_eq!(o.body, secret_body("sealed-before-the-key"));
    assert!(matches!(
        Sealer::new(Kek::well_known()).open_keyring(&moved),
        Err(SealError::WrongKek { .. })
    ));
    assert!(
        keyed.rewrapped(&moved).unwrap().is_none(),
        "nothing left to move"
    );
    // A keyring under another real key still refuses.
    let other = stored_keyring(&Sealer::new(kek(1)), 3);
    assert!(keyed.rewrapped(&other).unwrap().is_none());
    assert!(
        Sealer::new(Kek::well_known())
            .rewrapped(&ring)
            .unwrap()
            .is_none()
    );
}

#[test]
fn rotation_keeps_old_keys_until_retired() {
    let sealer = Sealer::new(kek(1));
    let ring1 = stored_keyring(&sealer, 3);
    let keys1 = sealer.open_keyring(&ring1).unwrap();
    let key = ObjectKey::new(Kind::Secret, "default", "db");
    let mut old = secret_body("v");
    sealer.seal(&keys1, &key, &mut old, None).unwrap();

    let mut ring2 = sealer.rotated(&ring1).unwrap();
    ring2.metadata.resource_version = Some("9".into());
    let keys2 = sealer.open_keyring(&ring2).unwrap();
    assert_eq!(keys2.active, 2);
    // The old Secret still opens; a new write seals under key 2.
    sealer
        .open(&keys2, &key, &mut as_object(&key, old.clone()))
        .unwrap();
    let mut new = secret_body("v");
    sealer
        .seal(&keys2, &key, &mut new, Some(&as_object(&key, old.clone())))
        .unwrap();
    assert_eq!(sealed_key_id(&as_object(&key, new)), Some(2));

    let mut ring3 = sealer.retired(&ring2).unwrap();
    ring3.metadata.resource_version = Some("10".into());
    assert_eq!(read_keyring(&ring3).unwrap().keys.len(), 1);
    let keys3 = sealer.open_keyring(&ring3).unwrap();
    let err = sealer
        .open(&keys3, &key, &mut as_object(&key, old))
        .unwrap_err();
    assert!(matches!(err, SealError::UnknownKey { id: 1, .. }), "{err}");

    // The keyring stays bounded.
    let mut ring = ring3;
    for _ in 1..MAX_DATA_KEYS {
        ring = sealer.rotated(&ring).unwrap();
    }
    assert!(matches!(sealer.rotated(&ring), Err(SealError::TooManyKeys)));
}

#[test]
fn key_files_take_hex_or_the_keygen_format_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let hex_file = dir.path().join("a.key");
    std::fs::write(&hex_file, format!("{}\n", "ab".repeat(32))).unwrap();
    assert_eq!(Kek::load(&hex_file).unwrap().bytes, [0xab; 32]);
    let keygen = dir.path().join("b.key");
    let psk = crate::net::generate_cluster_key();
    std::fs::write(&keygen, crate::net::cluster_key_text(&psk)).unwrap();
    assert!(Kek::load(&keygen).is_ok());
    let short = dir.path().join("c.key");
    std::fs::write(&short, "abcd").unwrap();
    let err = Kek::load(&short).unwrap_err().to_string();
    assert!(
        err.contains("c.key") && err.contains("64 hex digits"),
        "{err}"
    );
    // The derived KEK is neither the cluster key nor the well-known one.
    let derived = Kek::from_cluster_key(&[7; 32]);
    assert_ne!(derived.bytes, [7; 32]);
    assert!(!derived.is_well_known() && Kek::well_known().is_well_known());
    assert!(
        !format!("{derived:?}").contains("07"),
        "Debug must not print the key"
    );
}

fn put_secret(name: &str, value: &str) -> Command {
    let mut o = as_object(
        &ObjectKey::new(Kind::Secret, "default", name),
        secret_body(value),
    );
    o.metadata.resource_version = None;
    Command {
        ops: vec![Op::Put {
            key: ObjectKey::new(Kind::Secret, "default", name),
            object: serde_json::to_vec(&o).unwrap(),
            precondition: Precondition::None,
        }],
    }
}

#[tokio::test]
async fn a_store_seals_on_write_opens_on_read_and_rotates() {
    use crate::store::{Outcome, testing};
    let dir = tempfile::tempdir().unwrap();
    let (net, store, me) = testing::open(dir.path(), "a").await;
    testing::lead_alone(&store, me).await;
    let key = ObjectKey::new(Kind::Secret, "default", "db");

    let out = store.write(put_secret("db", "v-one")).await.unwrap();
    assert_eq!(out.len(), 1, "the keyring check is not reported: {out:?}");
    let returned: Object = serde_json::from_slice(&out[0].object).unwrap();
    assert_eq!(returned.body["data"]["password"], encode_base64(b"v-one"));
    let raw = store.get_sealed(&key).unwrap().unwrap();
    assert!(
        !serde_json::to_string(&raw)
            .unwrap()
            .contains(&encode_base64(b"v-one"))
    );
    assert_eq!(sealed_key_id(&raw), Some(1));
    let opened = store.get(&key).unwrap().unwrap();
    assert_eq!(opened.body["data"]["password"], encode_base64(b"v-one"));
    assert_eq!(
        store.secret_data("default", "db").unwrap().unwrap()["password"],
        b"v-one".to_vec()
    );
    let (listed, _) = store.list(Kind::Secret, Some("default")).unwrap();
    assert_eq!(listed[0].body["data"]["password"], encode_base64(b"v-one"));

    // The same data again: nothing changes.
    let out = store.write(put_secret("db", "v-one")).await.unwrap();
    assert_eq!(out[0].outcome, Outcome::Unchanged);

    // Nobody writes the keyring but the store.
    let mut ring = store.get(&keyring_key()).unwrap().unwrap();
    ring.metadata.resource_version = None;
    let err = store
        .write(Command {
            ops: vec![Op::Put {
                key: keyring_key(),
                object: serde_json::to_vec(&ring).unwrap(),
                precondition: Precondition::None,
            }],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rotate-key"), "{err}");

    // Rotation: new writes seal under key 2, old ones still open; the
    // controller's pass re-seals and retires key 1.
    let st = store.rotate_data_key().await.unwrap();
    assert_eq!((st.active, st.key_ids.clone()), (2, vec![1, 2]));
    store.write(put_secret("new", "v-two")).await.unwrap();
    let new_raw = store
        .get_sealed(&ObjectKey::new(Kind::Secret, "default", "new"))
        .unwrap()
        .unwrap();
    assert_eq!(sealed_key_id(&new_raw), Some(2));
    assert!(store.get(&key).is_ok());
    let mut rotation = crate::controller::secrets::Rotation::default();
    for _ in 0..3 {
        crate::controller::secrets::reconcile(&store, &mut rotation).await;
    }
    let st = store.keyring_status().unwrap().unwrap();
    assert_eq!((st.active, st.key_ids), (2, vec![2]));
    assert_eq!(
        sealed_key_id(&store.get_sealed(&key).unwrap().unwrap()),
        Some(2)
    );
    assert_eq!(
        store.get(&key).unwrap().unwrap().body["data"]["password"],
        encode_base64(b"v-one")
    );
    store.shutdown().await;
    drop(net);
}
