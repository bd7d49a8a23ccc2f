//! Encrypted arguments (`#[job(encrypted = true)]`): a job's fields are stored sealed with
//! ChaCha20-Poly1305 (the RustCrypto `chacha20poly1305` crate), under a key from
//! `DJ_ENCRYPTION_KEYS`, bound to the job's stored name, so that a row's arguments can be read
//! only by a process holding the key, and a row altered or moved to another type fails to
//! open instead of loading.
//!
//! `DJ_ENCRYPTION_KEYS` lists `ID:KEY` pairs separated by commas, KEY being 32 bytes in
//! base64: the first seals new jobs, every one opens jobs sealed under its ID (rotation: put
//! the new key first and keep the old ones until their jobs are gone). A sealed value reads
//! `v1:ID:BASE64(nonce ‖ ciphertext)`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::error::{Error, Result};

/// The environment variable the keys are read from.
pub const KEYS_VAR: &str = "DJ_ENCRYPTION_KEYS";

/// The keys, in the order given: the first seals.
#[derive(Clone)]
pub(crate) struct Keys(Vec<(String, Key)>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_tuple("Keys").field(&ids).finish()
    }
}

impl Keys {
    /// The keys of `DJ_ENCRYPTION_KEYS` (none if it is unset or empty).
    pub(crate) fn from_env() -> std::result::Result<Keys, String> {
        Keys::parse(&std::env::var(KEYS_VAR).unwrap_or_default())
    }

    /// Parses `ID:BASE64,ID:BASE64,...`.
    pub(crate) fn parse(text: &str) -> std::result::Result<Keys, String> {
        let mut keys = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((id, key)) = pair.split_once(':') else {
                return Err(format!(
                    "{KEYS_VAR}: an entry has no `:`; each is ID:KEY (an id, a colon, 32 bytes \
                     in base64)"
                ));
            };
            let id_ok = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !id_ok {
                return Err(format!(
                    "{KEYS_VAR}: key id `{id}` is not 1 to 32 letters, digits, `_` or `-`"
                ));
            }
            let bytes = STANDARD.decode(key.trim()).map_err(|e| {
                format!("{KEYS_VAR}: key `{id}` is not base64 ({e}); make one with `openssl rand -base64 32`")
            })?;
            if bytes.len() != 32 {
                return Err(format!(
                    "{KEYS_VAR}: key `{id}` is {} bytes; it must be 32 (`openssl rand -base64 32`)",
                    bytes.len()
                ));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("{KEYS_VAR}: key id `{id}` is given twice"));
            }
            keys.push((id.to_owned(), *Key::from_slice(&bytes)));
        }
        Ok(Keys(keys))
    }

    /// Seals `plain` (a job's fields, as JSON) for job type `name` under the first key.
    pub(crate) fn seal(&self, name: &str, plain: &str) -> std::result::Result<String, String> {
        let Some((id, key)) = self.0.first() else {
            return Err(format!(
                "job {name} is marked `encrypted`, and {KEYS_VAR} gives no key: set it to \
                 ID:KEY, KEY being 32 bytes in base64 (`openssl rand -base64 32`)"
            ));
        };
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = ChaCha20Poly1305::new(key)
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| format!("job {name}: its fields could not be encrypted"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("v1:{id}:{}", STANDARD.encode(out)))
    }

    /// Opens a value [`Keys::seal`] made for job type `name`.
    pub(crate) fn open(&self, name: &str, sealed: &str) -> std::result::Result<String, String> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "job {name}: its encrypted fields are not in dj's form (v1:ID:DATA)"
            ));
        };
        let Some((_, key)) = self.0.iter().find(|(k, _)| k == id) else {
            return Err(format!(
                "job {name}: its fields are encrypted with key `{id}`, which {KEYS_VAR} does \
                 not have (it has {}): add that key to {KEYS_VAR} (after the current one) and \
                 retry the job",
                self.ids()
            ));
        };
        let bytes = STANDARD.decode(data).ok().filter(|b| b.len() > 12);
        let opened = bytes.and_then(|bytes| {
            let (nonce, sealed) = bytes.split_at(12);
            ChaCha20Poly1305::new(key)
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: name.as_bytes(),
                    },
                )
                .ok()
        });
        let Some(plain) = opened else {
            return Err(format!(
                "job {name}: its fields could not be decrypted with key `{id}`: the key under \
                 that id is not the one they were encrypted with, or the row was altered"
            ));
        };
        String::from_utf8(plain)
            .map_err(|_| format!("job {name}: its decrypted fields are not UTF-8"))
    }

    fn ids(&self) -> String {
        if self.0.is_empty() {
            return "no key".to_owned();
        }
        let ids: Vec<&str> = self.0.iter().map(|(id, _)| id.as_str()).collect();
        format!("`{}`", ids.join("`, `"))
    }
}

/// Seals job `name`'s fields under the keys of the environment.
pub(crate) fn seal(name: &'static str, plain: &str) -> Result<String> {
    Keys::from_env()
        .and_then(|keys| keys.seal(name, plain))
        .map_err(Error::Invalid)
}

/// Opens job `name`'s sealed fields with the keys of the environment.
pub(crate) fn open(name: &str, sealed: &str) -> std::result::Result<String, String> {
    Keys::from_env()?.open(name, sealed)
}

/// The key id a sealed value names, for display (`None` if it is not dj's form).
#[cfg(feature = "web")]
pub(crate) fn key_id(sealed: &str) -> Option<&str> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some("v1"), Some(id)) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

    #[test]
    fn sealed_fields_open_under_rotation_and_fail_clearly_otherwise() {
        let old = Keys::parse(K1).unwrap();
        let sealed = old.seal("Charge", r#"{"card":"4111"}"#).unwrap();
        assert!(
            sealed.starts_with("v1:k1:") && !sealed.contains("4111"),
            "{sealed}"
        );
        assert_ne!(
            sealed,
            old.seal("Charge", r#"{"card":"4111"}"#).unwrap(),
            "a fresh nonce"
        );
        // Rotated: the new key seals, the old one still opens.
        let rotated = Keys::parse(&format!("{K2},{K1}")).unwrap();
        assert_eq!(
            rotated.open("Charge", &sealed).unwrap(),
            r#"{"card":"4111"}"#
        );
        assert!(rotated.seal("Charge", "{}").unwrap().starts_with("v1:k2:"));
        // Without the old key, under another type, or altered: a clear error.
        let new_only = Keys::parse(K2).unwrap();
        let missing = new_only.open("Charge", &sealed).unwrap_err();
        assert!(
            missing.contains("key `k1`, which DJ_ENCRYPTION_KEYS does not have"),
            "{missing}"
        );
        let moved = old.open("Refund", &sealed).unwrap_err();
        assert!(
            moved.contains("could not be decrypted with key `k1`"),
            "{moved}"
        );
        let mut bytes = STANDARD.decode(sealed.rsplit(':').next().unwrap()).unwrap();
        bytes[20] ^= 1;
        let altered = format!("v1:k1:{}", STANDARD.encode(bytes));
        assert!(old
            .open("Charge", &altered)
            .unwrap_err()
            .contains("or the row was altered"));
        assert!(old
            .open("Charge", "garbage")
            .unwrap_err()
            .contains("not in dj's form"));
    }

    #[test]
    fn bad_key_lists_are_refused_without_showing_keys() {
        assert!(Keys::parse("")
            .unwrap()
            .seal("X", "{}")
            .unwrap_err()
            .contains("gives no key"));
        for (text, says) in [
            ("nocolon", "has no `:`"),
            ("k1:short", "not base64"),
            ("k1:AAAA", "is 3 bytes"),
            ("bad id:AAAA", "is not 1 to 32"),
            (&format!("{K1},{K1}") as &str, "given twice"),
        ] {
            let error = Keys::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
            assert!(!error.contains("AAECAw"), "{error}");
        }
    }
}
