//! The key schedule and sealing of stored tokens.
//!
//! Everything a store holds is derived from the **client secret** with
//! HKDF-SHA256 (RFC 5869), salted with a fixed, versioned domain string:
//!
//! - the **credential id** (provider, base URL, client id) and the **entry
//!   id** (that plus the scopes and header parameters) are HMAC-SHA256 tags
//!   under derived keys, truncated to 128 bits and base64url-encoded: key
//!   names reveal neither the provider, the client id nor the scopes, and
//!   two credentials never share a name;
//! - each entry's value is AES-256-GCM under its own derived key, with a
//!   fresh random 96-bit nonce per write (from the operating system's
//!   random source) and the entry id as associated
//!   data: a flipped byte, a value copied from another entry, a value
//!   written without the key (plaintext) all fail to open and are a miss.
//!
//! Only holders of the client secret can find or open an entry; a rotated
//! secret finds nothing and mints afresh.
//!
//! **What this assumes of the secret.** HKDF is a key-derivation function
//! for secrets that already have high entropy, not a password hash: it is
//! fast, so anyone who can read the store can test guesses of the secret
//! offline against a stored entry. Client secrets issued by the providers
//! paytokens supports are long random strings (well over 128 bits), which
//! puts that out of reach; a short, human-chosen secret would not be
//! protected at rest by this scheme, and the store should then be protected
//! by its own access control (Redis ACLs, file permissions) alone.

use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CacheKey;

/// The HKDF salt: the scheme and its version. A new scheme gets a new
/// salt, so old entries simply miss.
const SALT: &[u8] = b"paytokens token store v1";
/// The first bytes of every sealed token.
const MAGIC: &[u8] = b"pt1";
/// The first bytes of every sealed failed mint. Part of the associated
/// data too: a token never opens as a failure, nor a failure as a token.
const FAILURE_MAGIC: &[u8] = b"pf1";

/// The names and the sealing key of one cache key's entry, derived from
/// the client secret. Holds no secret in clear; `Debug` shows the ids only.
pub(crate) struct Keys {
    /// The credential's id (provider, base URL, client id): the budget and
    /// the status are per credential.
    pub(crate) credential: String,
    /// The entry's id within the credential (scopes, header parameters).
    pub(crate) entry: String,
    seal: LessSafeKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("credential", &self.credential)
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// An output length for HKDF expansion.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, label: &[u8], context: &[&[u8]]) -> [u8; 32] {
    let mut info: Vec<&[u8]> = vec![label];
    info.extend_from_slice(context);
    let mut out = [0u8; 32];
    prk.expand(&info, Len(32))
        .and_then(|okm| okm.fill(&mut out))
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
        .unwrap_or_else(|_| unreachable!("HKDF-SHA256 expands to 32 bytes"));
    out
}

/// `fields` as one unambiguous byte string: each length-prefixed.
fn encode(fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

fn tag(key: &[u8; 32], message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, message);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
}

impl Keys {
    /// The keys of `key`'s entry for the credential whose secret is `secret`.
    pub(crate) fn derive(secret: &SecretString, key: &CacheKey) -> Self {
        let prk =
            hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret.expose_secret().as_bytes());
        let credential = encode(&[key.provider.id(), &key.base_url, &key.client_id]);
        let mut entry_fields: Vec<&str> = key.scopes.iter().map(String::as_str).collect();
        entry_fields.push("");
        for (name, value) in &key.headers {
            entry_fields.push(name);
            entry_fields.push(value);
        }
        let entry = encode(&entry_fields);
        let names = expand(&prk, b"names", &[&credential]);
        let seal = expand(&prk, b"seal", &[&credential, &entry]);
        let unbound = UnboundKey::new(&AES_256_GCM, &seal)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
        Self {
            credential: tag(&names, b"credential"),
            entry: tag(&names, &[b"entry".as_slice(), &entry].concat()),
            seal: LessSafeKey::new(unbound),
        }
    }

    /// The associated data of this entry's values: the kind of value and
    /// the entry's names.
    fn aad(&self, magic: &[u8]) -> Vec<u8> {
        [
            magic,
            self.credential.as_bytes(),
            b":",
            self.entry.as_bytes(),
        ]
        .concat()
    }

    /// `record` sealed for this entry: `pt1 || nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, record: &Record) -> Vec<u8> {
        self.seal_as(MAGIC, record)
    }

    /// The record in `sealed`, or `None` when it was not sealed by this
    /// entry's key: tampered, copied from another entry, plaintext, or
    /// sealed under another secret.
    pub(crate) fn open(&self, sealed: &[u8]) -> Option<Record> {
        self.open_as(MAGIC, sealed)
    }

    /// `failure` sealed for this entry: `pf1 || nonce || ciphertext || tag`.
    pub(crate) fn seal_failure(&self, failure: &Failure) -> Vec<u8> {
        self.seal_as(FAILURE_MAGIC, failure)
    }

    /// The failed mint in `sealed`, or `None` as for [`open`](Self::open).
    pub(crate) fn open_failure(&self, sealed: &[u8]) -> Option<Failure> {
        self.open_as(FAILURE_MAGIC, sealed)
    }

    fn seal_as(&self, magic: &[u8], value: &impl Serialize) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        let mut buffer = serde_json::to_vec(value)
            .unwrap_or_else(|_| unreachable!("a record always serializes"));
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(magic)),
                &mut buffer,
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any record this small"));
        [magic, &nonce, &buffer].concat()
    }

    fn open_as<T: DeserializeOwned>(&self, magic: &[u8], sealed: &[u8]) -> Option<T> {
        let rest = sealed.strip_prefix(magic)?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(self.aad(magic)), &mut buffer)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// What is sealed in an entry: the token and what the cache needs to use
/// it. Its expiry is not here: it is the entry's time to live in the store,
/// on the store's clock.
#[derive(Serialize, Deserialize)]
pub(crate) struct Record {
    /// The access token.
    #[serde(rename = "t")]
    pub(crate) token: String,
    /// The scopes granted.
    #[serde(rename = "s")]
    pub(crate) scopes: Vec<String>,
    /// The lifetime the provider gave, in milliseconds.
    #[serde(rename = "l")]
    pub(crate) lifetime_ms: u64,
    /// A random id of this mint, sent when it is invalidated so that other
    /// processes drop their copies; it says nothing about the token.
    #[serde(rename = "m")]
    pub(crate) mint: String,
}

impl Record {
    pub(crate) fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms)
    }
}

/// What is sealed in an entry's failed-mint slot: the error its holder got
/// from the provider, so that the processes waiting for that mint return it
/// instead of asking again. It holds what the error's `Display` shows (the
/// provider's code and message, already masked of the client secret) and
/// never a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(crate) enum Failure {
    /// The provider refused the request.
    #[serde(rename = "rejected")]
    Rejected {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// The provider was unavailable.
    #[serde(rename = "transient")]
    Transient {
        reason: String,
        cause: String,
        status: Option<u16>,
    },
    /// The provider's answer was unusable.
    #[serde(rename = "invalid")]
    Invalid { status: u16, problem: String },
}

/// A fresh random id: 128 bits, base64url.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Fills `out` from the operating system's random source (`getrandom(2)`
/// on Linux), for nonces and ids. Not aws-lc-rs's generator: its first use
/// in a process seeds a DRBG from CPU-jitter entropy, tens of milliseconds
/// that a short-lived `paytokens token` would spend on every run; the
/// kernel's generator is already seeded, and each call is one system call.
fn random_bytes(out: &mut [u8]) {
    getrandom::fill(out)
        .unwrap_or_else(|err| panic!("the operating system's random source failed: {err}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Provider;

    fn key(client_id: &str, scopes: &[&str]) -> CacheKey {
        CacheKey {
            provider: Provider::all().next().unwrap(),
            base_url: "http://127.0.0.1:1".into(),
            client_id: client_id.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            headers: vec![],
        }
    }

    fn record() -> Record {
        Record {
            token: "tok-123".into(),
            scopes: vec!["a".into()],
            lifetime_ms: 60_000,
            mint: random_id(),
        }
    }

    #[test]
    fn a_sealed_record_opens_with_its_own_keys_only() {
        let secret = SecretString::from("s3cret-s3cret-s3cret");
        let keys = Keys::derive(&secret, &key("id", &["a"]));
        let sealed = keys.seal(&record());
        assert_eq!(keys.open(&sealed).map(|r| r.token), Some("tok-123".into()));
        // Another entry of the same credential, another credential, another secret.
        let scopes = Keys::derive(&secret, &key("id", &["b"]));
        assert_eq!(scopes.credential, keys.credential);
        assert_ne!(scopes.entry, keys.entry);
        assert!(scopes.open(&sealed).is_none());
        assert!(
            Keys::derive(&secret, &key("id2", &["a"]))
                .open(&sealed)
                .is_none()
        );
        let rotated = Keys::derive(&SecretString::from("rotated"), &key("id", &["a"]));
        assert_ne!(rotated.credential, keys.credential);
        assert!(rotated.open(&sealed).is_none());
    }

    #[test]
    fn a_flipped_byte_or_plaintext_is_refused() {
        let keys = Keys::derive(&SecretString::from("s"), &key("id", &[]));
        let sealed = keys.seal(&record());
        for at in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[at] ^= 0x01;
            assert!(keys.open(&tampered).is_none(), "byte {at}");
        }
        let plain = serde_json::to_vec(&record()).unwrap();
        assert!(keys.open(&plain).is_none());
        assert!(keys.open(&[b"pt1".as_slice(), &plain].concat()).is_none());
        assert!(keys.open(b"").is_none());
    }

    #[test]
    fn a_failure_opens_as_a_failure_only_and_a_token_as_a_token_only() {
        let keys = Keys::derive(&SecretString::from("s"), &key("id", &["a"]));
        let failure = Failure::Rejected {
            status: 401,
            code: Some("invalid_client".into()),
            message: Some("Client authentication failed".into()),
        };
        let sealed = keys.seal_failure(&failure);
        assert!(sealed.starts_with(b"pf1"));
        assert_eq!(keys.open_failure(&sealed), Some(failure));
        assert!(keys.open(&sealed).is_none(), "a failure opened as a token");
        let token = keys.seal(&record());
        assert!(
            keys.open_failure(&token).is_none(),
            "a token opened as a failure"
        );
        // The magic is in the associated data: relabelled, neither opens.
        let relabelled = [b"pt1".as_slice(), &sealed[3..]].concat();
        assert!(keys.open(&relabelled).is_none());
        let other = Keys::derive(&SecretString::from("s"), &key("id", &["b"]));
        assert!(other.open_failure(&sealed).is_none());
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("invalid_client") && !text.contains("Client"));
    }

    #[test]
    fn names_hold_no_identifier_in_clear() {
        let keys = Keys::derive(
            &SecretString::from("s"),
            &key("client-4711", &["billing:read"]),
        );
        for name in [&keys.credential, &keys.entry] {
            assert_eq!(name.len(), 22);
            assert!(!name.contains("4711") && !name.contains("billing"));
        }
        let sealed = keys.seal(&record());
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("tok-123"));
    }
}
