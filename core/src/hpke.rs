//! HPKE (RFC 9180) in base mode with one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM. The browser seals the API keys it decrypted from a ticket to a key pair the
//! server made for that import, so no plaintext key crosses HTTP or lands in a proxy log.
//! Single-shot only (sequence number 0). Randomness comes from the caller: this crate has
//! no RNG, and the browser and the server each have their own. HKDF is RustCrypto's; the
//! X25519 shared secret is checked not to be all zeros (RFC 9180 §7.1.4), so a low-order
//! public key cannot force a known key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{FormatError, Result};

const KEM_ID: u16 = 0x0020;
const KDF_ID: u16 = 0x0001;
const AEAD_ID: u16 = 0x0002;

/// The `info` every lvbak secrets transfer binds to.
pub const SECRETS_INFO: &[u8] = b"lvbak import secrets v1";

/// A recipient key pair; the secret half is wiped on drop.
pub struct HpkeKeyPair {
    secret: StaticSecret,
    public: [u8; 32],
}

impl HpkeKeyPair {
    /// The key pair whose private key is `secret` (32 random bytes from the caller).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Opens what [`seal`] made for this key pair.
    pub fn open(&self, enc: &[u8; 32], info: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let dh = diffie_hellman(&self.secret, enc)?;
        let shared = shared_secret(dh.as_slice(), enc, &self.public);
        let (key, nonce) = key_schedule(&shared, info, AEAD_ID, 32);
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| sealed_error("bad key length"))?;
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad })
            .map(Zeroizing::new)
            .map_err(|_| sealed_error("the sealed secrets do not open with this import's key"))
    }
}

fn sealed_error(detail: &str) -> FormatError {
    FormatError::BadSecrets { detail: detail.into() }
}

/// Seals `plaintext` to `recipient`; `ephemeral` must be 32 fresh random bytes. Returns
/// the encapsulated key and the ciphertext (with its 16-byte tag).
pub fn seal(
    recipient: &[u8; 32],
    ephemeral: [u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; 32], Vec<u8>)> {
    let ephemeral = StaticSecret::from(ephemeral);
    let enc = PublicKey::from(&ephemeral).to_bytes();
    let dh = diffie_hellman(&ephemeral, recipient)?;
    let shared = shared_secret(dh.as_slice(), &enc, recipient);
    let (key, nonce) = key_schedule(&shared, info, AEAD_ID, 32);
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| sealed_error("bad key length"))?;
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| sealed_error("the secrets could not be sealed"))?;
    Ok((enc, ciphertext))
}

/// X25519 with `public`; an all-zero result (a low-order point) is refused.
fn diffie_hellman(secret: &StaticSecret, public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(sealed_error("the key exchange gave an all-zero secret (a low-order public key)"));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// DHKEM's ExtractAndExpand over `dh`, with `kem_context = enc || pkR`.
fn shared_secret(dh: &[u8], enc: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let suite = kem_suite();
    let eae_prk = labeled_extract(&suite, b"", b"eae_prk", dh);
    let context = [enc.as_slice(), recipient.as_slice()].concat();
    labeled_expand(&suite, &eae_prk, b"shared_secret", &context, 32)
}

/// The base-mode key schedule: the AEAD key (`key_len` bytes) and base nonce.
fn key_schedule(shared: &[u8], info: &[u8], aead_id: u16, key_len: u16) -> (Zeroizing<Vec<u8>>, [u8; 12]) {
    let suite = hpke_suite(aead_id);
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let context = [&[0u8][..], &psk_id_hash[..], &info_hash[..]].concat();
    let secret = labeled_extract(&suite, shared, b"secret", b"");
    let key = labeled_expand(&suite, &secret, b"key", &context, key_len);
    let nonce_bytes = labeled_expand(&suite, &secret, b"base_nonce", &context, 12);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&nonce_bytes);
    (key, nonce)
}

fn kem_suite() -> Vec<u8> {
    [&b"KEM"[..], &KEM_ID.to_be_bytes()].concat()
}

fn hpke_suite(aead_id: u16) -> Vec<u8> {
    [&b"HPKE"[..], &KEM_ID.to_be_bytes(), &KDF_ID.to_be_bytes(), &aead_id.to_be_bytes()].concat()
}

fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
    let labeled = Zeroizing::new([&b"HPKE-v1"[..], suite, label, ikm].concat());
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &labeled);
    Zeroizing::new(prk.to_vec())
}

fn labeled_expand(suite: &[u8], prk: &[u8], label: &[u8], info: &[u8], length: u16) -> Zeroizing<Vec<u8>> {
    let labeled = [&length.to_be_bytes()[..], b"HPKE-v1", suite, label, info].concat();
    let mut output = Zeroizing::new(vec![0u8; usize::from(length)]);
    // A 32-byte PRK and at most 32 bytes out: both within HKDF's bounds.
    if let Ok(hkdf) = Hkdf::<Sha256>::from_prk(prk) {
        let _ = hkdf.expand(&labeled, &mut output);
    }
    output
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn array(text: &str) -> [u8; 32] {
        hex(text).try_into().unwrap()
    }

    /// RFC 9180 A.1.1 (X25519, HKDF-SHA256, AES-128-GCM): the KEM and key schedule are the
    /// same as ours but for the AEAD (id and key length), which are parameters here.
    #[test]
    fn kem_and_key_schedule_match_rfc_9180_a_1_1() {
        let sk_e = array("e539715b257cc9e81cc577233fec6316779be43505b026a957d27692c44a485c");
        let pk_r = array("46570dfa9f66e17c38e7a081c65cf42bc00e6fed969d326c692748ae866eac6f");
        let sk_r = array("ad5e716159a11fdb33527ce98fe39f24ae3449ffb6e93e8911f62c0e9781718a");
        let info = hex("4f6465206f6e2061204772656369616e2055726e");
        let enc = PublicKey::from(&StaticSecret::from(sk_e)).to_bytes();
        assert_eq!(enc, array("e7d9aa41faa0481c005d1343b26939c0748a5f6bf1f81fbd1a4e924bf0719149"));
        assert_eq!(HpkeKeyPair::from_secret(sk_r).public_key(), pk_r);
        let dh = StaticSecret::from(sk_e).diffie_hellman(&PublicKey::from(pk_r)).to_bytes();
        let shared = shared_secret(&dh, &enc, &pk_r);
        assert_eq!(shared.to_vec(), hex("0c2abdf57191ee4118f124a746247a8be5c8252ffaf93015bf88e82e948bd551"));
        let (key, nonce) = key_schedule(&shared, &info, 0x0001, 16);
        assert_eq!(key.to_vec(), hex("c3b328a61b07876f2896f6f42361253e"));
        assert_eq!(nonce.to_vec(), hex("ede5198c19b2591389fc7cea"));
    }

    /// The suite lvbak uses, AES-256-GCM, with RFC 9180 A.1.1's keys and info: the answer
    /// of an independent implementation (pyhpke 0.6.5, `CipherSuite.new(DHKEM_X25519_
    /// HKDF_SHA256, HKDF_SHA256, AES256_GCM)` with the same ephemeral key).
    #[test]
    fn seal_matches_an_independent_aes_256_gcm_implementation() {
        let sk_e = array("e539715b257cc9e81cc577233fec6316779be43505b026a957d27692c44a485c");
        let sk_r = array("ad5e716159a11fdb33527ce98fe39f24ae3449ffb6e93e8911f62c0e9781718a");
        let info = hex("4f6465206f6e2061204772656369616e2055726e");
        let recipient = HpkeKeyPair::from_secret(sk_r);
        let plaintext = b"Beauty is truth, truth beauty";
        let (enc, sealed) = seal(&recipient.public_key(), sk_e, &info, &hex("436f756e742d30"), plaintext).unwrap();
        assert_eq!(enc, array("e7d9aa41faa0481c005d1343b26939c0748a5f6bf1f81fbd1a4e924bf0719149"));
        let expected = "635763d8fe5e54e0521d1233691a1cd9f7ca970ba896bc3b4c15fba442a2f0b206912ed5a7c99d4bb18db9b160";
        assert_eq!(sealed, hex(expected));
        assert_eq!(recipient.open(&enc, &info, &hex("436f756e742d30"), &sealed).unwrap().as_slice(), plaintext);
        let (_, lvbak) =
            seal(&recipient.public_key(), sk_e, SECRETS_INFO, b"job-1", br#"[{"key":"k","value":"sk-live"}]"#).unwrap();
        let expected = "b87131285fac184bbf78eb701c505ee5ab747a30ccf34c81e08239585937954935e973d895c42184caccb3377ab1e0";
        assert_eq!(lvbak, hex(expected));
    }

    #[test]
    fn a_low_order_public_key_is_refused() {
        let recipient = HpkeKeyPair::from_secret([7; 32]);
        for point in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(seal(&point, [9; 32], SECRETS_INFO, b"", b"x").unwrap_err().code(), "bad_secrets");
            assert_eq!(recipient.open(&point, SECRETS_INFO, b"", &[0; 32]).unwrap_err().code(), "bad_secrets");
        }
    }

    #[test]
    fn sealed_secrets_open_only_with_the_right_key_info_and_aad() {
        let recipient = HpkeKeyPair::from_secret([7; 32]);
        let (enc, sealed) = seal(&recipient.public_key(), [9; 32], SECRETS_INFO, b"job-1", b"sk-live").unwrap();
        assert_eq!(recipient.open(&enc, SECRETS_INFO, b"job-1", &sealed).unwrap().as_slice(), b"sk-live");
        assert!(!sealed.windows(7).any(|w| w == b"sk-live"));
        let wrong = HpkeKeyPair::from_secret([8; 32]);
        assert_eq!(wrong.open(&enc, SECRETS_INFO, b"job-1", &sealed).unwrap_err().code(), "bad_secrets");
        assert!(recipient.open(&enc, SECRETS_INFO, b"job-2", &sealed).is_err());
        assert!(recipient.open(&enc, b"other", b"job-1", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(recipient.open(&enc, SECRETS_INFO, b"job-1", &flipped).is_err());
    }
}
