use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::store::db::open_db;
use crate::store::{Command, Proposal};

fn entry(index: u64, cmds: Vec<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Proposal(cmds)),
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::ConfigMap, "default", name)
}

fn put(name: &str, len: usize) -> Command {
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"v": "x".repeat(len)},
    });
    Command {
        ops: vec![Op::Put {
            key: key(name),
            object: serde_json::to_vec(&object).expect("json"),
            precondition: Precondition::None,
        }],
    }
}

fn delete(name: &str) -> Command {
    Command {
        ops: vec![Op::Delete {
            key: key(name),
            precondition: Precondition::None,
        }],
    }
}

fn quota(bytes: u64) -> Command {
    Command {
        ops: vec![Op::SetQuota { bytes }],
    }
}

/// Applies one entry and returns its commands' results.
async fn apply(sm: &mut StateMachine, index: u64, cmds: Vec<Command>) -> Vec<CommandResult> {
    let mut r = sm.apply([entry(index, cmds)]).await.expect("apply");
    r.pop().expect("one entry's results")
}

fn open(dir: &std::path::Path) -> (Arc<DB>, StateMachine) {
    let db = open_db(dir).expect("open rocksdb");
    let sm = StateMachine::open(db.clone(), 100, 1 << 20, Default::default()).expect("open");
    (db, sm)
}

#[tokio::test]
async fn writes_past_the_quota_are_refused_and_deletes_and_shrinking_writes_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, mut sm) = open(dir.path());
    let r = apply(&mut sm, 1, vec![quota(10_000), put("a", 4_000)]).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(sm.usage.quota_bytes(), Some(10_000));
    let r = apply(&mut sm, 2, vec![put("b", 4_000)]).await;
    assert!(r[0].is_ok(), "{r:?}");
    let used = sm.usage.state_bytes();
    assert_eq!(used, scan_usage(&db).expect("scan").used);
    assert!(used > 8_000 && used < 10_000, "{used}");

    let r = apply(&mut sm, 3, vec![put("c", 4_000)]).await;
    let Err(e) = &r[0] else {
        panic!("a write past the quota was applied: {r:?}");
    };
    assert!(
        matches!(e, TxnError::QuotaExceeded { quota: 10_000, used: u, adds } if *u == used && *adds > 4_000),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("10000") && msg.contains(&used.to_string()) && msg.contains("quota"),
        "{msg}"
    );
    assert!(sm.load(&key("c").storage_key()).expect("read").is_none());
    assert_eq!(sm.usage.state_bytes(), used, "a refused write counted");
    // Growing an object is refused, shrinking it is not.
    let r = apply(&mut sm, 4, vec![put("b", 6_000)]).await;
    assert!(matches!(r[0], Err(TxnError::QuotaExceeded { .. })), "{r:?}");
    let r = apply(&mut sm, 5, vec![put("b", 100)]).await;
    assert!(r[0].is_ok(), "{r:?}");
    // A quota lowered below the use still lets deletes through.
    let r = apply(&mut sm, 6, vec![quota(100), delete("a")]).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let r = apply(&mut sm, 7, vec![put("d", 10)]).await;
    assert!(matches!(r[0], Err(TxnError::QuotaExceeded { .. })), "{r:?}");
    let r = apply(&mut sm, 8, vec![quota(10_000), put("c", 4_000)]).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let used = sm.usage.state_bytes();
    assert_eq!(used, scan_usage(&db).expect("scan").used);

    // After a restart the count comes from the state again.
    drop(sm);
    let sm = StateMachine::open(db.clone(), 100, 1 << 20, Default::default()).expect("open");
    assert_eq!(sm.usage.state_bytes(), used);
    assert_eq!(sm.usage.quota_bytes(), Some(10_000));
}

#[tokio::test]
async fn a_snapshot_install_carries_the_quota_and_recounts_the_use() {
    let (da, dbb) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (_, mut a) = open(da.path());
    apply(
        &mut a,
        1,
        vec![quota(50_000), put("a", 3_000), put("b", 5_000)],
    )
    .await;
    let (db_b, mut b) = open(dbb.path());
    // b had state of its own, which the snapshot replaces.
    apply(&mut b, 1, vec![put("z", 20_000)]).await;
    let snap = a.build().expect("snapshot");
    b.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("install");
    assert_eq!(b.usage.state_bytes(), a.usage.state_bytes());
    assert_eq!(b.usage.state_bytes(), scan_usage(&db_b).expect("scan").used);
    assert_eq!(b.usage.quota_bytes(), Some(50_000));
    // And b enforces it from there on, as a does.
    let ra = apply(&mut a, 2, vec![put("c", 60_000)]).await;
    let rb = apply(&mut b, 2, vec![put("c", 60_000)]).await;
    assert_eq!(ra, rb);
    assert!(matches!(ra[0], Err(TxnError::QuotaExceeded { .. })));
}
