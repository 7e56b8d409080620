//! HPKE (RFC 9180) in base mode with one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM, from the `hpke` crate. The browser seals the API keys it decrypted from a
//! ticket to a key pair the server made for that import, so no plaintext key crosses HTTP
//! or lands in a proxy log. Single-shot only (sequence number 0). Randomness comes from the
//! caller: this crate has no RNG (the `hpke` crate is built without one), and the browser
//! and the server each have their own. The crate refuses an all-zero X25519 shared secret
//! (RFC 9180 §7.1.4), so a low-order public key cannot force a known key.

use std::convert::Infallible;

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::rand_core::{utils::next_word_via_fill, TryCryptoRng, TryRng};
use hpke::{Deserializable, HpkeError, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::error::{FormatError, Result};

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// The `info` every lvbak secrets transfer binds to.
pub const SECRETS_INFO: &[u8] = b"lvbak import secrets v1";

/// A recipient key pair; the secret half is wiped on drop.
pub struct HpkeKeyPair {
    secret: PrivateKey,
    public: [u8; 32],
}

impl HpkeKeyPair {
    /// The key pair whose private key is `secret` (32 random bytes from the caller), as
    /// RFC 9180's DeserializePrivateKey reads it.
    pub fn from_secret(secret: [u8; 32]) -> Result<Self> {
        let secret = Zeroizing::new(secret);
        let secret =
            PrivateKey::from_bytes(secret.as_slice()).map_err(|error| sealed_error(error, "a bad private key"))?;
        let public = Kem::sk_to_pk(&secret).to_bytes().into();
        Ok(Self { secret, public })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Opens what [`seal`] made for this key pair.
    pub fn open(&self, enc: &[u8; 32], info: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let enc = EncappedKey::from_bytes(enc).map_err(|error| sealed_error(error, "a bad encapsulated key"))?;
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(&OpModeR::Base, &self.secret, &enc, info, ciphertext, aad)
            .map(Zeroizing::new)
            .map_err(|error| sealed_error(error, "the sealed secrets do not open with this import's key"))
    }
}

/// A refusal of sealed secrets; an all-zero key exchange is named as such.
fn sealed_error(error: HpkeError, detail: &str) -> FormatError {
    let detail = match error {
        HpkeError::EncapError | HpkeError::DecapError => {
            "the key exchange gave an all-zero secret (a low-order public key)"
        }
        _ => detail,
    };
    FormatError::BadSecrets { detail: detail.into() }
}

/// Seals `plaintext` to `recipient`; `ephemeral` must be 32 fresh random bytes: the
/// ephemeral key pair is RFC 9180's DeriveKeyPair of them (what the crate's own key
/// generation does with bytes from an RNG). Returns the encapsulated key and the ciphertext
/// (with its 16-byte tag).
pub fn seal(
    recipient: &[u8; 32],
    ephemeral: [u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; 32], Vec<u8>)> {
    let recipient = PublicKey::from_bytes(recipient).map_err(|error| sealed_error(error, "a bad public key"))?;
    let mut randomness = CallerRandomness { bytes: Zeroizing::new(ephemeral), taken: 0 };
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
        &OpModeS::Base,
        &recipient,
        info,
        plaintext,
        aad,
        &mut randomness,
    )
    .map_err(|error| sealed_error(error, "the secrets could not be sealed"))?;
    // More than the caller's bytes would have been zeros: such a seal is not sent.
    if randomness.taken != randomness.bytes.len() {
        return Err(FormatError::BadSecrets {
            detail: format!("sealing took {} random bytes, not the 32 given", randomness.taken),
        });
    }
    Ok((enc.to_bytes().into(), ciphertext))
}

/// The caller's 32 random bytes, given to the `hpke` crate as its RNG; what is asked past
/// them is zeros, and [`seal`] refuses a seal that took any.
struct CallerRandomness {
    bytes: Zeroizing<[u8; 32]>,
    taken: usize,
}

impl TryRng for CallerRandomness {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> std::result::Result<u32, Infallible> {
        next_word_via_fill(self)
    }

    fn try_next_u64(&mut self) -> std::result::Result<u64, Infallible> {
        next_word_via_fill(self)
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> std::result::Result<(), Infallible> {
        for byte in destination {
            *byte = self.bytes.get(self.taken).copied().unwrap_or(0);
            self.taken += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for CallerRandomness {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn array(text: &str) -> [u8; 32] {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    /// RFC 9180's test vector for lvbak's suite: mode 0 (base), KEM 0x0020, KDF 0x0001,
    /// AEAD 0x0002. The RFC's text prints only AES-128-GCM and ChaCha20-Poly1305 for X25519;
    /// this one is from its `test-vectors.json` (as shipped in pyhpke 0.6.5's tests, whose
    /// A.1.1 entry is the RFC's). Sequence number 0, the only one single-shot uses.
    #[test]
    fn seal_and_open_match_rfc_9180_for_x25519_hkdf_sha256_aes_256_gcm() {
        let info = hex::decode("4f6465206f6e2061204772656369616e2055726e").unwrap();
        let ikm_e = array("2cd7c601cefb3d42a62b04b7a9041494c06c7843818e0ce28a8f704ae7ab20f9");
        let ikm_r = array("dac33b0e9db1b59dbbea58d59a14e7b5896e9bdf98fad6891e99d1686492b9ee");
        let sk_rm = array("497b4502664cfea5d5af0b39934dac72242a74f8480451e1aee7d6a53320333d");
        let sk_em = array("179d4b53b6365c45b600c4163b61d95cbc2f4d9e36f1695558dce265ab8bab11");
        let pk_rm = array("430f4b9859665145a6b1ba274024487bd66f03a2dd577d7753c68d7d7d00c00c");
        let pk_em = array("6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256");
        let aad = hex::decode("436f756e742d30").unwrap();
        let plaintext = hex::decode("4265617574792069732074727574682c20747275746820626561757479").unwrap();
        let ciphertext = "e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be9931980a41de125a925cdad859d5b7a";

        // DeriveKeyPair: the recipient's from ikmR, the ephemeral one (inside `seal`) from ikmE.
        // (skRm as the RFC prints it is unclamped; keys compare as X25519 reads them, clamped.)
        let (derived_r, derived_pk_r) = Kem::derive_keypair(&ikm_r);
        assert!(derived_r == PrivateKey::from_bytes(&sk_rm).unwrap());
        assert_eq!(derived_pk_r.to_bytes().as_slice(), pk_rm);
        assert_eq!(HpkeKeyPair::from_secret(sk_em).unwrap().public_key(), pk_em);
        let recipient = HpkeKeyPair::from_secret(sk_rm).unwrap();
        assert_eq!(recipient.public_key(), pk_rm);

        let (enc, sealed) = seal(&pk_rm, ikm_e, &info, &aad, &plaintext).unwrap();
        assert_eq!(enc, pk_em);
        assert_eq!(hex::encode(&sealed), ciphertext);
        assert_eq!(
            recipient.open(&pk_em, &info, &aad, &hex::decode(ciphertext).unwrap()).unwrap().as_slice(),
            plaintext
        );
    }

    /// Secrets sealed by lvbak's own RFC 9180 code, before this crate replaced it
    /// (`core/tests/data/hpke-sealed-by-own-code.json`), open. That code used the 32 bytes
    /// as the ephemeral private key itself, where `seal` now derives the key pair from them
    /// (RFC 9180's DeriveKeyPair, as the test vectors do): the same inputs seal differently
    /// now, and both open.
    #[test]
    fn secrets_sealed_by_the_code_before_the_hpke_crate_still_open() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/hpke-sealed-by-own-code.json")).unwrap();
        let field = |name: &str| fixture[name].as_str().unwrap();
        let recipient = HpkeKeyPair::from_secret(array(field("recipientSecret"))).unwrap();
        assert_eq!(recipient.public_key(), array(field("recipientPublic")));
        let (info, aad, plaintext) = (field("info").as_bytes(), field("aad").as_bytes(), field("plaintext").as_bytes());
        assert_eq!(info, SECRETS_INFO);
        let enc = array(field("enc"));
        let sealed = hex::decode(field("ciphertext")).unwrap();
        assert_eq!(recipient.open(&enc, info, aad, &sealed).unwrap().as_slice(), plaintext);

        let (new_enc, new_sealed) =
            seal(&recipient.public_key(), array(field("ephemeral")), info, aad, plaintext).unwrap();
        assert_ne!(new_enc, enc);
        assert_eq!(new_sealed.len(), sealed.len());
        assert_eq!(recipient.open(&new_enc, info, aad, &new_sealed).unwrap().as_slice(), plaintext);
    }

    /// What an independent implementation sealed (pyhpke 0.6.5, `CipherSuite.new(DHKEM_
    /// X25519_HKDF_SHA256, HKDF_SHA256, AES256_GCM)`, with the ephemeral private key
    /// e539715b…), for keys of a draft of RFC 9180 A.1.1, opens.
    #[test]
    fn opens_what_an_independent_implementation_sealed() {
        let sk_r = array("ad5e716159a11fdb33527ce98fe39f24ae3449ffb6e93e8911f62c0e9781718a");
        let info = hex::decode("4f6465206f6e2061204772656369616e2055726e").unwrap();
        let enc = array("e7d9aa41faa0481c005d1343b26939c0748a5f6bf1f81fbd1a4e924bf0719149");
        let recipient = HpkeKeyPair::from_secret(sk_r).unwrap();
        assert_eq!(recipient.public_key(), array("46570dfa9f66e17c38e7a081c65cf42bc00e6fed969d326c692748ae866eac6f"));
        let sealed = "635763d8fe5e54e0521d1233691a1cd9f7ca970ba896bc3b4c15fba442a2f0b206912ed5a7c99d4bb18db9b160";
        let opened =
            recipient.open(&enc, &info, &hex::decode("436f756e742d30").unwrap(), &hex::decode(sealed).unwrap());
        assert_eq!(opened.unwrap().as_slice(), b"Beauty is truth, truth beauty");
        let lvbak = "b87131285fac184bbf78eb701c505ee5ab747a30ccf34c81e08239585937954935e973d895c42184caccb3377ab1e0";
        let opened = recipient.open(&enc, SECRETS_INFO, b"job-1", &hex::decode(lvbak).unwrap());
        assert_eq!(opened.unwrap().as_slice(), br#"[{"key":"k","value":"sk-live"}]"#);
    }

    #[test]
    fn a_low_order_public_key_is_refused() {
        let recipient = HpkeKeyPair::from_secret([7; 32]).unwrap();
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
        let recipient = HpkeKeyPair::from_secret([7; 32]).unwrap();
        let (enc, sealed) = seal(&recipient.public_key(), [9; 32], SECRETS_INFO, b"job-1", b"sk-live").unwrap();
        assert_eq!(recipient.open(&enc, SECRETS_INFO, b"job-1", &sealed).unwrap().as_slice(), b"sk-live");
        assert!(!sealed.windows(7).any(|w| w == b"sk-live"));
        let wrong = HpkeKeyPair::from_secret([8; 32]).unwrap();
        assert_eq!(wrong.open(&enc, SECRETS_INFO, b"job-1", &sealed).unwrap_err().code(), "bad_secrets");
        assert!(recipient.open(&enc, SECRETS_INFO, b"job-2", &sealed).is_err());
        assert!(recipient.open(&enc, b"other", b"job-1", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(recipient.open(&enc, SECRETS_INFO, b"job-1", &flipped).is_err());
    }

    /// Different random bytes give different ephemeral keys; the same bytes, the same seal.
    #[test]
    fn the_ephemeral_key_comes_from_the_callers_bytes() {
        let recipient = HpkeKeyPair::from_secret([7; 32]).unwrap().public_key();
        let sealed = |ephemeral| seal(&recipient, ephemeral, SECRETS_INFO, b"job-1", b"sk-live").unwrap();
        assert_eq!(sealed([9; 32]), sealed([9; 32]));
        assert_ne!(sealed([9; 32]).0, sealed([10; 32]).0);
    }
}
