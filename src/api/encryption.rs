//! `/v1/encryption`: the state of Secrets at rest (`GET`) and a new data
//! key (`POST /v1/encryption/rotate-key`). Admin only: see auth.rs.

use super::*;
use crate::store::sealing::{KeyringStatus, keyring_key, sealed_key_id};

/// What `shoal secrets status` and `rotate-key` print.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionView {
    /// Where this node's key-encryption key comes from.
    pub key_encryption_key: String,
    /// The keyring, once the cluster has one (its first Secret write).
    pub keyring: Option<KeyringStatus>,
    /// Secrets not yet sealed under the active data key.
    pub pending: usize,
    /// Every Secret.
    pub secrets: usize,
}

fn view(s: &ApiState) -> ApiResult<EncryptionView> {
    let keyring = s.store.keyring_status()?;
    let active = keyring.as_ref().map(|k| k.active);
    let secrets: Vec<_> = s
        .store
        .list_sealed()?
        .into_iter()
        .filter(|o| o.key() != Some(keyring_key()))
        .collect();
    let pending = secrets
        .iter()
        .filter(|o| active.is_none() || sealed_key_id(o) != active)
        .count();
    Ok(EncryptionView {
        key_encryption_key: s.store.kek_source().to_string(),
        keyring,
        pending,
        secrets: secrets.len(),
    })
}

/// `GET /v1/encryption`.
pub(super) async fn status(
    State(s): State<ApiState>,
    Query(q): Query<WriteQuery>,
) -> ApiResult<Json<EncryptionView>> {
    read_barrier(&s, q.consistent).await?;
    Ok(Json(view(&s)?))
}

/// `POST /v1/encryption/rotate-key`: a new active data key; the leader
/// re-seals every Secret under it in the background.
pub(super) async fn rotate_key(State(s): State<ApiState>) -> ApiResult<Json<EncryptionView>> {
    s.store.rotate_data_key().await?;
    Ok(Json(view(&s)?))
}
