//! The rotation controller: re-seals every Secret not sealed under the
//! keyring's active data key (after `shoal secrets rotate-key`, and Secrets
//! stored in clear by a version before sealing), then drops the keys no
//! Secret uses. Level-triggered: everything it needs is in the store, so a
//! new leader carries on where the old one stopped.

use tracing::{debug, info};

use super::ControllerError;
use crate::resource::{Kind, Object, ObjectKey};
use crate::store::sealing::{KeyringStatus, keyring_key, sealed_key_id};
use crate::store::{Command, Op, Precondition, Store};

/// Secrets re-sealed per pass at most, so a pass stays short and a large
/// cluster's rotation does not crowd other writes out of the log.
pub const RESEAL_PER_PASS: usize = 64;

/// What one pass does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every Secret is sealed under the only key.
    Idle,
    /// Re-seal these Secrets (at the resourceVersion read) under the active key.
    Reseal(Vec<(ObjectKey, u64)>),
    /// No Secret uses the old keys any more: drop them, if the keyring is
    /// still at this version.
    Retire { version: u64 },
}

/// Decides from the keyring and every stored Secret's (key, key id, version).
pub fn decide(ring: Option<&KeyringStatus>, secrets: &[(ObjectKey, Option<u32>, u64)]) -> Step {
    let active = ring.map(|r| r.active);
    let stale: Vec<(ObjectKey, u64)> = secrets
        .iter()
        .filter(|(k, id, _)| *k != keyring_key() && (active.is_none() || *id != active))
        .take(RESEAL_PER_PASS)
        .map(|(k, _, v)| (k.clone(), *v))
        .collect();
    if !stale.is_empty() {
        return Step::Reseal(stale);
    }
    match ring {
        Some(r) if r.key_ids.len() > 1 => Step::Retire { version: r.version },
        _ => Step::Idle,
    }
}

fn summary(o: &Object) -> Option<(ObjectKey, Option<u32>, u64)> {
    Some((o.key()?, sealed_key_id(o), o.resource_version()))
}

/// What the rotation controller remembers between passes.
#[derive(Debug, Default)]
pub struct Rotation {
    /// The keyring version at which a full pass found nothing to do.
    /// Every Secret written since is sealed under that keyring's active
    /// key (writes are conditional on it), so until the keyring changes
    /// there is nothing to list: listing every Secret on every pass cost
    /// the leader a parse per Secret per write. A full pass still runs
    /// every [`RESCAN_EVERY`], for what no version tells (a Secret written
    /// in clear by a node of a release before sealing, during an upgrade).
    clean_at: Option<(u64, std::time::Instant)>,
}

/// How long a clean keyring version is trusted without a full pass.
const RESCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// One pass of the rotation controller.
pub async fn reconcile(store: &Store, rotation: &mut Rotation) {
    if let Err(e) = pass(store, rotation).await {
        e.log("secrets", "keyring");
    }
}

async fn pass(store: &Store, rotation: &mut Rotation) -> Result<(), ControllerError> {
    // The keyring first: every write sealed under an older keyring version
    // has committed before it (they are conditional on it), so the list
    // read after it sees them all.
    let ring = store.keyring_status()?;
    let version = ring.as_ref().map(|r| r.version);
    if let (Some(v), Some((clean, at))) = (version, rotation.clean_at)
        && v == clean
        && at.elapsed() < RESCAN_EVERY
    {
        return Ok(());
    }
    let secrets: Vec<_> = store.list_sealed()?.iter().filter_map(summary).collect();
    match decide(ring.as_ref(), &secrets) {
        Step::Idle => {
            rotation.clean_at = version.map(|v| (v, std::time::Instant::now()));
            Ok(())
        }
        Step::Reseal(keys) => {
            let n = keys.len();
            for (key, version) in keys {
                reseal(store, &key, version).await?;
            }
            debug!(secrets = n, "re-sealed under the active data key");
            ::metrics::counter!(crate::controller::metrics::SECRETS_RESEALED_TOTAL)
                .increment(n as u64);
            Ok(())
        }
        Step::Retire { version } => {
            store.retire_data_keys(version).await?;
            info!("every Secret is sealed under the active data key: the old keys are dropped");
            Ok(())
        }
    }
}

/// Writes the Secret back opened; the store seals it under the active key.
/// Conditional on the version read, so a user's write meanwhile wins.
async fn reseal(store: &Store, key: &ObjectKey, version: u64) -> Result<(), ControllerError> {
    let Some(o) = store.get(key)? else {
        return Ok(());
    };
    if o.resource_version() != version || o.kind() != Some(Kind::Secret) {
        return Ok(());
    }
    let object = serde_json::to_vec(&o).map_err(|e| ControllerError::Invalid(e.to_string()))?;
    store
        .write(Command {
            ops: vec![Op::Put {
                key: key.clone(),
                object,
                precondition: Precondition::Version(version),
            }],
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, id: Option<u32>) -> (ObjectKey, Option<u32>, u64) {
        (ObjectKey::new(Kind::Secret, "default", name), id, 7)
    }

    fn ring(active: u32, ids: &[u32]) -> KeyringStatus {
        KeyringStatus {
            active,
            key_ids: ids.to_vec(),
            version: 42,
        }
    }

    #[test]
    fn decides_reseal_retire_or_nothing() {
        let keyring = (keyring_key(), None, 3);
        let k = |n: &str| (ObjectKey::new(Kind::Secret, "default", n), 7);
        let cases: Vec<(&str, Option<KeyringStatus>, Vec<_>, Step)> = vec![
            ("no keyring, no secrets", None, vec![], Step::Idle),
            (
                "no keyring, secrets in clear",
                None,
                vec![s("a", None)],
                Step::Reseal(vec![k("a")]),
            ),
            (
                "all on the only key",
                Some(ring(1, &[1])),
                vec![s("a", Some(1)), keyring.clone()],
                Step::Idle,
            ),
            (
                "rotated: old ones re-sealed, the keyring itself never",
                Some(ring(2, &[1, 2])),
                vec![
                    s("a", Some(1)),
                    s("b", Some(2)),
                    s("c", None),
                    keyring.clone(),
                ],
                Step::Reseal(vec![k("a"), k("c")]),
            ),
            (
                "rotated and done: retire at the version read",
                Some(ring(2, &[1, 2])),
                vec![s("a", Some(2)), keyring.clone()],
                Step::Retire { version: 42 },
            ),
            (
                "rotated, no secrets at all",
                Some(ring(3, &[1, 2, 3])),
                vec![],
                Step::Retire { version: 42 },
            ),
        ];
        for (what, r, secrets, want) in cases {
            assert_eq!(decide(r.as_ref(), &secrets), want, "{what}");
        }
    }

    #[test]
    fn a_pass_reseals_a_bounded_batch() {
        let many: Vec<_> = (0..RESEAL_PER_PASS + 10)
            .map(|i| s(&format!("s{i}"), Some(1)))
            .collect();
        match decide(Some(&ring(2, &[1, 2])), &many) {
            Step::Reseal(v) => assert_eq!(v.len(), RESEAL_PER_PASS),
            other => panic!("{other:?}"),
        }
    }
}
