//! HPKE (RFC 9180) in base mode with one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM. The browser seals the API keys it decrypted from a ticket to a key pair the
//! server made for that import, so no plaintext key crosses HTTP or lands in a proxy log.
//! Single-shot only (sequence number 0). Randomness comes from the caller: this crate has
//! no RNG, and the browser and the server each have their own.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{FormatError, Result};

const KEM_ID: u16 = 0x0020;
const KDF_ID: u16 = 0x0001;
const AEAD_ID: u16 = 0x0002;
const BLOCK: usize = 64;

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
        let dh = Zeroizing::new(self.secret.diffie_hellman(&PublicKey::from(*enc)).to_bytes());
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
    let dh = Zeroizing::new(ephemeral.diffie_hellman(&PublicKey::from(*recipient)).to_bytes());
    let shared = shared_secret(dh.as_slice(), &enc, recipient);
    let (key, nonce) = key_schedule(&shared, info, AEAD_ID, 32);
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| sealed_error("bad key length"))?;
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| sealed_error("the secrets could not be sealed"))?;
    Ok((enc, ciphertext))
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
    Zeroizing::new(hmac_sha256(salt, &labeled).to_vec())
}

fn labeled_expand(suite: &[u8], prk: &[u8], label: &[u8], info: &[u8], length: u16) -> Zeroizing<Vec<u8>> {
    let labeled = [&length.to_be_bytes()[..], b"HPKE-v1", suite, label, info].concat();
    hkdf_expand(prk, &labeled, usize::from(length))
}

/// HKDF-Expand (RFC 5869) with SHA-256; `length` at most 255 × 32.
pub fn hkdf_expand(prk: &[u8], info: &[u8], length: usize) -> Zeroizing<Vec<u8>> {
    let mut output = Zeroizing::new(Vec::with_capacity(length + 32));
    let mut previous: Vec<u8> = Vec::new();
    let mut counter = 1u8;
    while output.len() < length {
        let block = hmac_sha256(prk, &[&previous[..], info, &[counter]].concat());
        output.extend_from_slice(&block);
        previous.zeroize();
        previous = block.to_vec();
        counter = counter.wrapping_add(1);
    }
    previous.zeroize();
    output.truncate(length);
    output
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
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

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac.to_vec(), hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    }

    #[test]
    fn hkdf_matches_rfc_5869_case_1() {
        let prk = hmac_sha256(&hex("000102030405060708090a0b0c"), &[0x0b; 22]);
        assert_eq!(prk.to_vec(), hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"));
        let okm = hkdf_expand(&prk, &hex("f0f1f2f3f4f5f6f7f8f9"), 42);
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
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
