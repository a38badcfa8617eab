//! Secrets at rest. A Secret's `data` is sealed (AES-256-GCM) on the node
//! that receives the write, before it is proposed, so the Raft log, the
//! snapshots and rocksdb only ever hold ciphertext; reads through [`Store`]
//! open it again.
//!
//! Key hierarchy: a key-encryption key (KEK) that every node reads at start
//! (`store.encryption_key_file`, else derived from the cluster key) wraps the
//! cluster's data keys; the wrapped data keys live in the replicated store,
//! in the Secret `shoal-system/shoal-encryption-keys`, and one of them is
//! active. Each Secret's data is sealed under the active data key with a
//! random nonce, the Secret's namespace, name and key id as associated data
//! (so a ciphertext copied onto another Secret does not open). Rotation adds
//! a data key and makes it active; the leader's controller re-seals every
//! Secret under it, then drops the old keys.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Command, Op, OpOutcome, Precondition, Store, StoreError, TxnError};
use crate::resource::types::{decode_base64, encode_base64};
use crate::resource::{Kind, Object, ObjectKey, ObjectMeta, SYSTEM_NAMESPACE};

#[cfg(test)]
mod tests;

/// Name of the Secret (in `shoal-system`) that holds the wrapped data keys.
pub const KEYRING_NAME: &str = "shoal-encryption-keys";
/// `type` of the keyring Secret.
const KEYRING_TYPE: &str = "shoal.io/encryption-keyring";
/// The body field of a stored Secret that carries its sealed `data`.
pub const SEALED_FIELD: &str = "encryptedData";
const NONCE_BYTES: usize = 12;
/// Data keys a keyring holds at most: a rotation asked for while this many
/// are still being retired is refused, so the keyring stays small.
pub const MAX_DATA_KEYS: usize = 8;
/// Times a sealed write is tried again after the keyring changed under it.
const SEAL_ATTEMPTS: usize = 5;
/// Mixed into the cluster key to derive the KEK, so the KEK differs from the
/// p2p key and from the key the API's CA is derived from.
const KEK_FROM_CLUSTER_KEY: &[u8] = b"shoal secrets key-encryption key v1\0";
/// The KEK of a cluster that has neither an encryption key file nor a
/// cluster key (loopback only): it keeps values out of plain sight on disk
/// but protects nothing, and the node says so at start.
const WELL_KNOWN_KEK: &[u8] = b"shoal well-known key-encryption key: no key was given\0";

/// The key of the keyring Secret.
pub fn keyring_key() -> ObjectKey {
    ObjectKey::new(Kind::Secret, SYSTEM_NAMESPACE, KEYRING_NAME)
}

/// Errors of sealing and opening Secrets.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("encryption key file {path}: {msg}")]
    KeyFile { path: String, msg: String },
    #[error(
        "the key-encryption key ({source_desc}) does not open this cluster's data key {id}: every \
         node needs the same store.encryption_key_file (or, without one, the same cluster key); \
         refusing to serve Secrets that would not decrypt"
    )]
    WrongKek { source_desc: String, id: u32 },
    #[error("the keyring shoal-system/shoal-encryption-keys is damaged: {0}")]
    Keyring(String),
    #[error("{key}: sealed under data key {id}, which the keyring no longer holds")]
    UnknownKey { key: ObjectKey, id: u32 },
    #[error(
        "{key}: the sealed data does not open (damaged, or copied from another Secret); its values are withheld"
    )]
    Tampered { key: ObjectKey },
    #[error("{key}: {msg}")]
    Malformed { key: ObjectKey, msg: String },
    #[error(
        "the keyring already holds 8 data keys (the most it keeps); wait for the running rotation to finish"
    )]
    TooManyKeys,
}

impl From<SealError> for StoreError {
    fn from(e: SealError) -> Self {
        StoreError::Encryption(e.to_string())
    }
}

/// The key-encryption key. Its bytes never leave this process: Debug
/// prints only where it came from.
#[derive(Clone)]
pub struct Kek {
    bytes: [u8; 32],
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", self.source)
    }
}

impl Default for Kek {
    fn default() -> Self {
        Kek::well_known()
    }
}

impl Kek {
    /// Reads a key file: 64 hex digits, or the swarm.key format that
    /// `shoal keygen` prints (its last line is the key in hex).
    pub fn load(path: &Path) -> Result<Kek, SealError> {
        let err = |msg: &str| SealError::KeyFile {
            path: path.display().to_string(),
            msg: msg.to_string(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .ok_or_else(|| err("empty; expected 64 hex digits (`shoal keygen` makes one)"))?;
        let bytes: [u8; 32] = hex::decode(line.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| err("expected 32 bytes as 64 hex digits (`shoal keygen` makes one)"))?;
        Ok(Kek {
            bytes,
            source: format!("file {}", path.display()),
        })
    }

    /// Derives the KEK from the cluster key's 32 bytes.
    pub fn from_cluster_key(cluster_key: &[u8; 32]) -> Kek {
        let mut h = Sha256::new();
        h.update(KEK_FROM_CLUSTER_KEY);
        h.update(cluster_key);
        Kek {
            bytes: h.finalize().into(),
            source: "derived from the cluster key".into(),
        }
    }

    /// The KEK of a cluster given no key at all; see [`WELL_KNOWN_KEK`].
    pub fn well_known() -> Kek {
        Kek {
            bytes: Sha256::digest(WELL_KNOWN_KEK).into(),
            source: "well-known: no encryption key file and no cluster key".into(),
        }
    }

    /// Where this key came from, for logs and errors.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether this is the well-known key, which protects nothing.
    pub fn is_well_known(&self) -> bool {
        self.bytes == Kek::well_known().bytes
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

/// The keyring as stored (base64 JSON in the keyring Secret's `data.keyring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keyring {
    /// The id of the data key new writes are sealed under.
    pub active: u32,
    /// Every data key still in use, wrapped by the KEK.
    pub keys: Vec<WrappedKey>,
}

/// One data key, wrapped by the KEK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WrappedKey {
    pub id: u32,
    /// base64 of nonce ‖ AES-256-GCM(KEK, data key).
    pub wrapped: String,
}

/// A Secret's sealed data as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sealed {
    /// The data key it is sealed under.
    pub key_id: u32,
    /// base64 of nonce ‖ AES-256-GCM(data key, JSON of `data`).
    pub ciphertext: String,
}

/// What the keyring says, for `shoal secrets status` and the rotation controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyringStatus {
    /// The active data key's id.
    pub active: u32,
    /// Every data key's id, active included.
    pub key_ids: Vec<u32>,
    /// The keyring Secret's resourceVersion.
    pub version: u64,
}

/// The opened data keys of one keyring version.
pub(crate) struct DataKeys {
    version: u64,
    active: u32,
    ciphers: BTreeMap<u32, Aes256Gcm>,
}

fn seal_bytes(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::fill(&mut nonce[..]);
    // Encryption with a valid key and nonce size cannot fail in aes-gcm;
    // an empty result would fail to open and be reported then.
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    encode_base64(&out)
}

fn open_bytes(cipher: &Aes256Gcm, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
    let raw = decode_base64(sealed).ok()?;
    if raw.len() < NONCE_BYTES {
        return None;
    }
    let (nonce, ct) = raw.split_at(NONCE_BYTES);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

fn wrap_aad(id: u32) -> Vec<u8> {
    format!("shoal data key v1\0{id}").into_bytes()
}

fn secret_aad(key: &ObjectKey, id: u32) -> Vec<u8> {
    format!("shoal secret v1\0{}\0{}\0{id}", key.namespace, key.name).into_bytes()
}

/// The data key a stored Secret is sealed under; `None` for one stored in
/// clear (written before sealing existed) or not sealed at all.
pub fn sealed_key_id(o: &Object) -> Option<u32> {
    o.body
        .get(SEALED_FIELD)
        .and_then(|v| v.get("keyId"))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// Seals, opens and rotates with one KEK; caches the opened data keys of
/// the latest keyring version.
pub struct Sealer {
    kek: Kek,
    cache: Mutex<Option<Arc<DataKeys>>>,
}

impl Sealer {
    /// A sealer with this KEK.
    pub fn new(kek: Kek) -> Sealer {
        Sealer {
            kek,
            cache: Mutex::new(None),
        }
    }

    /// Where the KEK came from.
    pub fn kek_source(&self) -> &str {
        self.kek.source()
    }

    fn wrap(&self, id: u32) -> WrappedKey {
        let mut dk = [0u8; 32];
        rand::fill(&mut dk[..]);
        WrappedKey {
            id,
            wrapped: seal_bytes(&self.kek.cipher(), &dk, &wrap_aad(id)),
        }
    }

    /// A new keyring Secret with one data key.
    pub fn new_keyring(&self) -> Result<Object, SealError> {
        keyring_object(&Keyring {
            active: 1,
            keys: vec![self.wrap(1)],
        })
    }

    /// The keyring with a new data key made active (the old ones kept
    /// until every Secret is re-sealed).
    pub fn rotated(&self, stored: &Object) -> Result<Object, SealError> {
        let mut ring = read_keyring(stored)?;
        if ring.keys.len() >= MAX_DATA_KEYS {
            return Err(SealError::TooManyKeys);
        }
        let id = ring.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        ring.keys.push(self.wrap(id));
        ring.active = id;
        let mut o = keyring_object(&ring)?;
        o.metadata = stored.metadata.clone();
        Ok(o)
    }

    /// The keyring with only its active data key.
    pub fn retired(&self, stored: &Object) -> Result<Object, SealError> {
        let mut ring = read_keyring(stored)?;
        let active = ring.active;
        ring.keys.retain(|k| k.id == active);
        let mut o = keyring_object(&ring)?;
        o.metadata = stored.metadata.clone();
        Ok(o)
    }

    /// The keyring with every data key that only the well-known KEK opens
    /// wrapped again under this sealer's KEK; `None` when there is none
    /// (or this sealer's KEK is the well-known one).
    pub fn rewrapped(&self, stored: &Object) -> Result<Option<Object>, SealError> {
        if self.kek.is_well_known() {
            return Ok(None);
        }
        let mut ring = read_keyring(stored)?;
        let (kek, well_known) = (self.kek.cipher(), Kek::well_known().cipher());
        let mut changed = false;
        for k in &mut ring.keys {
            let aad = wrap_aad(k.id);
            if open_bytes(&kek, &k.wrapped, &aad).is_some() {
                continue;
            }
            if let Some(dk) = open_bytes(&well_known, &k.wrapped, &aad) {
                k.wrapped = seal_bytes(&kek, &dk, &aad);
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        let mut o = keyring_object(&ring)?;
        o.metadata = stored.metadata.clone();
        Ok(Some(o))
    }

    /// Opens every data key of the stored keyring; fails with
    /// [`SealError::WrongKek`] when this node's KEK is not the cluster's.
    pub(crate) fn open_keyring(&self, stored: &Object) -> Result<Arc<DataKeys>, SealError> {
        let version = stored.resource_version();
        if let Ok(cache) = self.cache.lock()
            && let Some(k) = cache.as_ref()
            && k.version == version
            && version != 0
        {
            return Ok(k.clone());
        }
        let ring = read_keyring(stored)?;
        let kek = self.kek.cipher();
        // A cluster founded on loopback without a key sealed under the
        // well-known KEK; given a key later (it moved beyond loopback), it
        // still opens its keyring, which `rewrapped` then moves under the key.
        let well_known = Kek::well_known().cipher();
        let mut ciphers = BTreeMap::new();
        for k in &ring.keys {
            let dk = open_bytes(&kek, &k.wrapped, &wrap_aad(k.id))
                .or_else(|| open_bytes(&well_known, &k.wrapped, &wrap_aad(k.id)))
                .filter(|b| b.len() == 32)
                .ok_or_else(|| SealError::WrongKek {
                    source_desc: self.kek.source().to_string(),
                    id: k.id,
                })?;
            ciphers.insert(
                k.id,
                Aes256Gcm::new_from_slice(&dk)
                    .map_err(|e| SealError::Keyring(format!("data key {}: {e}", k.id)))?,
            );
        }
        if !ciphers.contains_key(&ring.active) {
            return Err(SealError::Keyring(format!(
                "the active data key {} is not in it",
                ring.active
            )));
        }
        let keys = Arc::new(DataKeys {
            version,
            active: ring.active,
            ciphers,
        });
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(keys.clone());
        }
        Ok(keys)
    }

    /// Seals the Secret `key`'s `data` (and any `stringData`, folded in as
    /// validation does) in `body`. When `current` (the stored object) is
    /// sealed under the active key and holds the same data, its ciphertext
    /// is kept, so that writing a Secret again changes nothing.
    pub(crate) fn seal(
        &self,
        keys: &DataKeys,
        key: &ObjectKey,
        body: &mut Map<String, Value>,
        current: Option<&Object>,
    ) -> Result<(), SealError> {
        if body.contains_key(SEALED_FIELD) && !body.contains_key("data") {
            // Sealed already (a stored object written back): it must open
            // here, under this Secret's name, or it would be unreadable.
            let mut probe = Object {
                api_version: "v1".into(),
                kind: "Secret".into(),
                metadata: ObjectMeta::default(),
                body: body.clone(),
            };
            return self.open(keys, key, &mut probe);
        }
        let mut data = take_data(key, body)?;
        if let Some(Value::Object(sd)) = body.remove("stringData") {
            for (k, v) in sd {
                if let Value::String(s) = v {
                    data.insert(k, encode_base64(s.as_bytes()));
                }
            }
        }
        if let Some(cur) = current
            && sealed_key_id(cur) == Some(keys.active)
        {
            let mut opened = cur.clone();
            if self.open(keys, key, &mut opened).is_ok()
                && take_data(key, &mut opened.body).ok().as_ref() == Some(&data)
                && let Some(v) = cur.body.get(SEALED_FIELD)
            {
                body.insert(SEALED_FIELD.into(), v.clone());
                return Ok(());
            }
        }
        let plain = serde_json::to_vec(&data).map_err(|e| SealError::Malformed {
            key: key.clone(),
            msg: e.to_string(),
        })?;
        let cipher = keys
            .ciphers
            .get(&keys.active)
            .ok_or_else(|| SealError::Keyring("no active data key".into()))?;
        let sealed = Sealed {
            key_id: keys.active,
            ciphertext: seal_bytes(cipher, &plain, &secret_aad(key, keys.active)),
        };
        let v = serde_json::to_value(&sealed).map_err(|e| SealError::Malformed {
            key: key.clone(),
            msg: e.to_string(),
        })?;
        body.insert(SEALED_FIELD.into(), v);
        Ok(())
    }

    /// Replaces the sealed field of a stored Secret with its `data`; a
    /// Secret stored in clear is left as it is.
    pub(crate) fn open(
        &self,
        keys: &DataKeys,
        key: &ObjectKey,
        o: &mut Object,
    ) -> Result<(), SealError> {
        let Some(v) = o.body.remove(SEALED_FIELD) else {
            return Ok(());
        };
        let sealed: Sealed = serde_json::from_value(v).map_err(|e| SealError::Malformed {
            key: key.clone(),
            msg: format!("{SEALED_FIELD}: {e}"),
        })?;
        let cipher = keys
            .ciphers
            .get(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey {
                key: key.clone(),
                id: sealed.key_id,
            })?;
        let plain = open_bytes(cipher, &sealed.ciphertext, &secret_aad(key, sealed.key_id))
            .ok_or_else(|| SealError::Tampered { key: key.clone() })?;
        let data: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|_| SealError::Tampered { key: key.clone() })?;
        if !data.is_empty() {
            let m: Map<String, Value> = data.into_iter().map(|(k, v)| (k, v.into())).collect();
            o.body.insert("data".into(), Value::Object(m));
        }
        Ok(())
    }
}

fn take_data(
    key: &ObjectKey,
    body: &mut Map<String, Value>,
) -> Result<BTreeMap<String, String>, SealError> {
    match body.remove("data") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(SealError::Malformed {
                    key: key.clone(),
                    msg: format!("data.{k}: must be a base64 string"),
                }),
            })
            .collect(),
        Some(_) => Err(SealError::Malformed {
            key: key.clone(),
            msg: "data: must be a map of base64 strings".into(),
        }),
    }
}

fn keyring_object(ring: &Keyring) -> Result<Object, SealError> {
    let json = serde_json::to_vec(ring).map_err(|e| SealError::Keyring(e.to_string()))?;
    let mut body = Map::new();
    body.insert("type".into(), KEYRING_TYPE.into());
    let mut data = Map::new();
    data.insert("keyring".into(), encode_base64(&json).into());
    body.insert("data".into(), Value::Object(data));
    Ok(Object {
        api_version: "v1".into(),
        kind: "Secret".into(),
        metadata: ObjectMeta {
            name: KEYRING_NAME.into(),
            namespace: Some(SYSTEM_NAMESPACE.into()),
            ..Default::default()
        },
        body,
    })
}

/// Parses the keyring Secret.
pub fn read_keyring(stored: &Object) -> Result<Keyring, SealError> {
    let b64 = stored
        .body
        .get("data")
        .and_then(|d| d.get("keyring"))
        .and_then(Value::as_str)
        .ok_or_else(|| SealError::Keyring("no data.keyring".into()))?;
    let json = decode_base64(b64).map_err(|e| SealError::Keyring(e.to_string()))?;
    let ring: Keyring =
        serde_json::from_slice(&json).map_err(|e| SealError::Keyring(e.to_string()))?;
    if ring.keys.is_empty() || ring.keys.len() > MAX_DATA_KEYS {
        return Err(SealError::Keyring(format!(
            "{} data keys; expected 1 to {MAX_DATA_KEYS}",
            ring.keys.len()
        )));
    }
    Ok(ring)
}

/// Whether `op` writes or deletes the keyring, which only the store does.
fn touches_keyring(op: &Op) -> bool {
    match op {
        Op::Put { key, .. } | Op::Delete { key, .. } | Op::SetStatus { key, .. } => {
            *key == keyring_key()
        }
        Op::Check { .. } | Op::SetQuota { .. } => false,
    }
}

fn is_secret_put(op: &Op) -> bool {
    matches!(op, Op::Put { key, .. } if key.kind == Kind::Secret)
}

impl Store {
    /// Refuses a user's write to the keyring; seals the Secrets a command
    /// puts and makes it conditional on the keyring version it sealed
    /// under, trying again when a rotation changed the keyring meanwhile.
    pub(super) async fn write_sealed(&self, cmd: Command) -> Result<Vec<OpOutcome>, StoreError> {
        if let Some(op) = cmd.ops.iter().find(|op| touches_keyring(op)) {
            let key = match op {
                Op::Put { key, .. } | Op::Delete { key, .. } | Op::SetStatus { key, .. } => key,
                _ => return Err(StoreError::Encryption("keyring".into())),
            };
            return Err(StoreError::Txn(TxnError::Invalid {
                key: key.clone(),
                msg: "holds the cluster's wrapped data keys and is written only by shoal; \
                      use `shoal secrets rotate-key`"
                    .into(),
            }));
        }
        if !cmd.ops.iter().any(is_secret_put) {
            return self.write_raw(cmd).await;
        }
        let mut last = None;
        for _ in 0..SEAL_ATTEMPTS {
            let keys = self.data_keys_for_write().await?;
            let mut sealed = cmd.clone();
            for op in &mut sealed.ops {
                let Op::Put { key, object, .. } = op else {
                    continue;
                };
                if key.kind != Kind::Secret {
                    continue;
                }
                let mut o: Object = serde_json::from_slice(object).map_err(|e| {
                    StoreError::Txn(TxnError::Invalid {
                        key: key.clone(),
                        msg: format!("not an object: {e}"),
                    })
                })?;
                let current = self.reader.get(key)?;
                self.sealer
                    .seal(&keys, key, &mut o.body, current.as_ref())?;
                *object = serde_json::to_vec(&o).map_err(|e| StoreError::Storage(e.to_string()))?;
            }
            sealed.ops.push(Op::Check {
                key: keyring_key(),
                version: keys.version,
            });
            match self.write_raw(sealed).await {
                Ok(mut outs) => {
                    outs.retain(|o| o.key != keyring_key());
                    for o in &mut outs {
                        self.open_outcome(o)?;
                    }
                    return Ok(outs);
                }
                Err(StoreError::Txn(TxnError::Conflict { key, .. })) if key == keyring_key() => {
                    // Rotated meanwhile: catch up with it and seal again.
                    self.barrier().await?;
                    last = Some(key);
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Timeout(format!(
            "{} changed {SEAL_ATTEMPTS} times during this write; retry",
            last.unwrap_or_else(keyring_key)
        )))
    }

    /// The opened keys of the local keyring, creating the keyring on the
    /// cluster's first Secret write.
    async fn data_keys_for_write(&self) -> Result<Arc<DataKeys>, StoreError> {
        if let Some(k) = self.data_keys()? {
            return Ok(k);
        }
        let ring = self.sealer.new_keyring()?;
        let op = Op::Put {
            key: keyring_key(),
            object: serde_json::to_vec(&ring).map_err(|e| StoreError::Storage(e.to_string()))?,
            precondition: Precondition::MustNotExist,
        };
        match self.write_raw(Command { ops: vec![op] }).await {
            Ok(_) | Err(StoreError::Txn(TxnError::AlreadyExists { .. })) => {}
            Err(e) => return Err(e),
        }
        self.barrier().await?;
        self.data_keys()?
            .ok_or_else(|| StoreError::Encryption("the keyring was not created; retry".into()))
    }

    /// The opened keys of the local replica's keyring, if it has one.
    fn data_keys(&self) -> Result<Option<Arc<DataKeys>>, StoreError> {
        match self.reader.get(&keyring_key())? {
            None => Ok(None),
            Some(o) => Ok(Some(self.sealer.open_keyring(&o)?)),
        }
    }

    /// Moves the keyring's data keys that only the well-known KEK opens
    /// (sealed while the cluster had no key) under this node's KEK;
    /// whether it wrote. The write is conditional on the keyring read.
    pub async fn rewrap_keyring(&self) -> Result<bool, StoreError> {
        let Some(stored) = self.reader.get(&keyring_key())? else {
            return Ok(false);
        };
        let Some(new) = self.sealer.rewrapped(&stored)? else {
            return Ok(false);
        };
        let op = Op::Put {
            key: keyring_key(),
            object: serde_json::to_vec(&new).map_err(|e| StoreError::Storage(e.to_string()))?,
            precondition: Precondition::Version(stored.resource_version()),
        };
        self.write_raw(Command { ops: vec![op] }).await?;
        Ok(true)
    }

    /// Fails when this node's KEK does not open the keyring its replica
    /// holds: a node started with the wrong key must not start at all.
    pub fn check_encryption_key(&self) -> Result<(), StoreError> {
        self.data_keys().map(|_| ())
    }

    /// Opens a stored Secret in place (others are left as they are).
    pub(super) fn open_object(&self, o: &mut Object) -> Result<(), StoreError> {
        self.open_objects(std::slice::from_mut(o))
    }

    /// Opens the stored Secrets among `objects` in place, reading the
    /// keyring once.
    pub(super) fn open_objects(&self, objects: &mut [Object]) -> Result<(), StoreError> {
        let mut keys = None;
        for o in objects {
            if o.kind() != Some(Kind::Secret) || !o.body.contains_key(SEALED_FIELD) {
                continue;
            }
            let key = o.key().unwrap_or_else(keyring_key);
            if keys.is_none() {
                keys = Some(self.data_keys()?.ok_or_else(|| {
                    StoreError::Encryption(format!(
                        "{key} is sealed but this replica has no keyring yet"
                    ))
                })?);
            }
            if let Some(k) = &keys {
                self.sealer.open(k, &key, o)?;
            }
        }
        Ok(())
    }

    fn open_outcome(&self, out: &mut OpOutcome) -> Result<(), StoreError> {
        if out.key.kind != Kind::Secret {
            return Ok(());
        }
        let Ok(mut o) = serde_json::from_slice::<Object>(&out.object) else {
            return Ok(());
        };
        self.open_object(&mut o)?;
        out.object = serde_json::to_vec(&o).map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(())
    }

    /// Where this node's key-encryption key comes from.
    pub fn kek_source(&self) -> &str {
        self.sealer.kek_source()
    }

    /// The keys of the Secret `namespace/name` with their values decoded,
    /// opened from the local replica: how the agent reads Secret values (for
    /// env and for files of secret volumes). `None` when there is no such
    /// Secret. [`Store::get`] opens Secrets too; this also decodes.
    pub fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, StoreError> {
        let key = ObjectKey::new(Kind::Secret, namespace, name);
        let Some(o) = self.get(&key)? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        if let Some(Value::Object(m)) = o.body.get("data") {
            for (k, v) in m {
                let bytes = v
                    .as_str()
                    .and_then(|s| decode_base64(s).ok())
                    .ok_or_else(|| {
                        StoreError::Encryption(format!("{key}: data.{k} is not base64"))
                    })?;
                out.insert(k.clone(), bytes);
            }
        }
        Ok(Some(out))
    }

    /// Opens a Secret read with [`Store::list_sealed`] in place.
    pub fn open_secret(&self, o: &mut Object) -> Result<(), StoreError> {
        self.open_object(o)
    }

    /// A Secret as stored (sealed), for the rotation controller.
    pub fn get_sealed(&self, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
        self.reader.get(key)
    }

    /// Every Secret as stored (sealed), for the rotation controller.
    pub fn list_sealed(&self) -> Result<Vec<Object>, StoreError> {
        Ok(self.reader.list(Kind::Secret, None)?.0)
    }

    /// The keyring's active key and key ids, if the cluster has one.
    pub fn keyring_status(&self) -> Result<Option<KeyringStatus>, StoreError> {
        let Some(o) = self.reader.get(&keyring_key())? else {
            return Ok(None);
        };
        let ring = read_keyring(&o)?;
        Ok(Some(KeyringStatus {
            active: ring.active,
            key_ids: ring.keys.iter().map(|k| k.id).collect(),
            version: o.resource_version(),
        }))
    }

    /// Adds a data key and makes it active; the rotation controller then
    /// re-seals every Secret under it and drops the old keys.
    pub async fn rotate_data_key(&self) -> Result<KeyringStatus, StoreError> {
        self.barrier().await?;
        self.data_keys_for_write().await?;
        let stored = self
            .reader
            .get(&keyring_key())?
            .ok_or_else(|| StoreError::Encryption("no keyring".into()))?;
        let rotated = self.sealer.rotated(&stored)?;
        self.put_keyring(&rotated, stored.resource_version())
            .await?;
        self.barrier().await?;
        self.keyring_status()?
            .ok_or_else(|| StoreError::Encryption("no keyring".into()))
    }

    /// Drops every data key but the active one, if the keyring is still at
    /// `version` (the controller checked no Secret uses them at that version).
    pub async fn retire_data_keys(&self, version: u64) -> Result<(), StoreError> {
        let stored = self
            .reader
            .get(&keyring_key())?
            .ok_or_else(|| StoreError::Encryption("no keyring".into()))?;
        if stored.resource_version() != version {
            return Err(StoreError::Txn(TxnError::Conflict {
                key: keyring_key(),
                expected: version,
                actual: stored.resource_version(),
            }));
        }
        let retired = self.sealer.retired(&stored)?;
        self.put_keyring(&retired, version).await
    }

    async fn put_keyring(&self, o: &Object, version: u64) -> Result<(), StoreError> {
        let op = Op::Put {
            key: keyring_key(),
            object: serde_json::to_vec(o).map_err(|e| StoreError::Storage(e.to_string()))?,
            precondition: Precondition::Version(version),
        };
        self.write_raw(Command { ops: vec![op] }).await.map(|_| ())
    }
}
