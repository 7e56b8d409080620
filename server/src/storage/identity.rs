//! The instance identity key: 32 random bytes in `<data>/identity.key` (mode 0600, made
//! on first start), under which every stored API key is sealed with AES-256-GCM. The
//! user id and key name are bound as associated data, so a sealed value cannot be moved to
//! another user or another key.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lvbak_core::SecretSkip;
use rand::RngCore;
use zeroize::Zeroizing;

use super::sqlite::StoredSecret;

pub struct IdentityKey {
    key: Zeroizing<[u8; 32]>,
}

fn associated_data(user_id: &str, key_name: &str) -> Vec<u8> {
    format!("lvbak-secret\n{user_id}\n{key_name}").into_bytes()
}

/// Fills a buffer from the thread's CSPRNG (ChaCha, seeded from the OS).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

impl IdentityKey {
    /// Reads a key file that must exist (the one every node of an instance is given).
    pub fn load(path: &Path) -> io::Result<Self> {
        OpenOptions::new().read(true).open(path)?;
        Self::load_or_create(path)
    }

    /// A digest that tells keys apart without telling anything of the key (SHA-256 of a
    /// label and the key), which the nodes of an instance compare.
    pub fn check_value(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        digest.update(b"lvbak identity key check\n");
        digest.update(*self.key);
        hex::encode(digest.finalize())
    }

    /// Reads the key file, or creates it (0600) if there is none.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => {
                let key = Zeroizing::new(random_bytes::<32>());
                file.write_all(format!("{}\n", BASE64.encode(*key)).as_bytes())?;
                file.sync_all()?;
                Ok(Self { key })
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let mut file = OpenOptions::new().read(true).open(path)?;
                // Tighten a key file someone loosened.
                if file.metadata()?.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
                let mut text = Zeroizing::new(String::new());
                file.read_to_string(&mut text)?;
                let bytes = Zeroizing::new(BASE64.decode(text.trim()).map_err(io::Error::other)?);
                let mut key = Zeroizing::new([0u8; 32]);
                if bytes.len() != 32 {
                    return Err(io::Error::other(format!("{} does not hold a 32-byte key", path.display())));
                }
                key.copy_from_slice(&bytes);
                Ok(Self { key })
            }
            Err(error) => Err(error),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }

    /// Seals a secret for storage.
    pub fn seal(&self, user_id: &str, key_name: &str, plaintext: &str) -> StoredSecret {
        let iv = random_bytes::<12>();
        let aad = associated_data(user_id, key_name);
        // Sealing with a valid key and nonce only fails past 64 GiB of plaintext.
        let mut sealed = self
            .cipher()
            .encrypt(&Nonce::from(iv), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .unwrap_or_default();
        let tag = sealed.split_off(sealed.len().saturating_sub(16));
        StoredSecret {
            key: key_name.to_string(),
            encrypted_value: BASE64.encode(&sealed),
            iv: BASE64.encode(iv),
            tag: BASE64.encode(tag),
        }
    }

    /// Opens a stored secret of `user_id`.
    pub fn open(&self, user_id: &str, stored: &StoredSecret) -> Result<Zeroizing<String>, SecretSkip> {
        let decode = |value: &str| BASE64.decode(value).map_err(|_| SecretSkip::Malformed("not base64".into()));
        let iv: [u8; 12] =
            decode(&stored.iv)?.try_into().map_err(|_| SecretSkip::Malformed("iv is not 12 bytes".into()))?;
        let mut sealed = decode(&stored.encrypted_value)?;
        sealed.extend_from_slice(&decode(&stored.tag)?);
        let aad = associated_data(user_id, &stored.key);
        let plaintext = Zeroizing::new(
            self.cipher()
                .decrypt(&Nonce::from(iv), Payload { msg: &sealed, aad: &aad })
                .map_err(|_| SecretSkip::TagMismatch)?,
        );
        String::from_utf8(plaintext.to_vec()).map(Zeroizing::new).map_err(|_| SecretSkip::NotText)
    }
}
