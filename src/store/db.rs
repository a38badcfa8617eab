//! The node's rocksdb: its column families and how values are encoded.
//! `meta` and `logs` hold the Raft log (`log.rs`), `sm` and `sm_meta` the
//! state machine (`state_machine.rs`).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options};

/// Raft's vote, committed and purged marks.
pub(super) const CF_META: &str = "meta";
/// Raft log entries by index.
pub(super) const CF_LOGS: &str = "logs";
/// Objects, keyed `Kind/namespace/name`.
pub(super) const CF_SM: &str = "sm";
/// The applied mark, membership and the latest snapshot.
pub(super) const CF_SM_META: &str = "sm_meta";

/// Opens the node's rocksdb with every column family the store uses.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_keep_log_file_num(3);
    opts.set_max_total_wal_size(256 * 1024 * 1024);
    let cfs = [CF_META, CF_LOGS, CF_SM, CF_SM_META]
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

/// A column family handle, or an error naming it.
pub(super) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, std::io::Error> {
    db.cf_handle(name)
        .ok_or_else(|| std::io::Error::other(format!("column family {name} missing")))
}

/// Largest encoded value read back from disk or a peer; anything larger is
/// corruption or an attack.
pub(super) const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

fn bincode_cfg() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes a value for rocksdb or the wire.
pub(super) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(v, bincode_cfg())
}

/// Decodes a value, refusing more than [`MAX_DECODE_BYTES`].
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    b: &[u8],
) -> Result<T, bincode::error::DecodeError> {
    crate::net::decode_bounded::<T, MAX_DECODE_BYTES>(b).map(|(v, _)| v)
}

/// Decodes a value from the front of `b`, returning it and the bytes it took.
pub(super) fn decode_prefix<T: serde::de::DeserializeOwned>(
    b: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    crate::net::decode_bounded::<T, MAX_DECODE_BYTES>(b)
}
