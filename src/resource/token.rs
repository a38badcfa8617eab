//! API tokens as the store keeps them: a caller is given `NAME.SECRET`
//! once; the Token object holds only the SHA-256 of SECRET. Shared by the
//! API (which checks tokens) and the ServiceAccount controller (which mints
//! them), so it lives below both.

use sha2::{Digest, Sha256};

/// Bytes of randomness in a token's secret (hex-encoded in the token).
const SECRET_BYTES: usize = 32;

/// A new token: what the caller is given once (`NAME.SECRET`) and what is
/// stored (the hex SHA-256 of SECRET).
pub fn new_token(name: &str) -> (String, String) {
    let mut secret = [0u8; SECRET_BYTES];
    rand::fill(&mut secret[..]);
    let secret = hex::encode(secret);
    let hash = secret_hash(&secret);
    (format!("{name}.{secret}"), hash)
}

/// The hash the store keeps for a whole `NAME.SECRET` token, or `None`
/// when it is not one (a controller checks that a Secret still holds the
/// token its Token object was made for).
pub fn stored_hash(token: &str) -> Option<String> {
    split_token(token).map(|(_, secret)| secret_hash(secret))
}

/// The stored form of a token's secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits `NAME.SECRET`; names may hold dots, secrets are hex.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (name, secret) = token.rsplit_once('.')?;
    let hex_ok = secret.len() == SECRET_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    (!name.is_empty() && hex_ok).then_some((name, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_and_hash() {
        let (token, hash) = new_token("ci.bot");
        let (name, secret) = split_token(&token).unwrap();
        assert_eq!(name, "ci.bot");
        assert_eq!(secret_hash(secret), hash);
        assert_ne!(new_token("ci.bot").0, token, "secrets are random");
        assert!(split_token("ci.bot").is_none());
        assert!(split_token(".abcd").is_none());
        assert!(split_token(&format!("x.{}", "g".repeat(64))).is_none());
    }
}
