//! What one export will write: the user, the archive id and time (which the archive and
//! ticket file names share), whether vectors go in, and the user's API keys re-sealed under
//! a fresh secrets master key whose ticket is handed to the user (FORMAT §6). Secrets that
//! cannot be opened under the identity key are left out and named.

use crate::util::new_id;
use lvbak_core::secrets::SecretsIndex;
use lvbak_core::{EncryptedSecret, Ticket, UtcTime};
use zeroize::Zeroizing;

// The plan is the record a `PreparedExportStore` keeps between preparing and fetching.
pub use crate::storage::backend::{ExportPlan, SealedSecrets};
use crate::storage::identity::{random_bytes, IdentityKey};
use crate::storage::{StoredSecret, UserRecord};

/// The secrets part of a prepared export.
pub struct SecretsOutcome {
    pub sealed: SealedSecrets,
    pub ticket: Option<Ticket>,
    pub unreachable: Vec<String>,
}

impl ExportPlan {
    pub fn new(user: UserRecord, exported_at: i64, include_vectors: bool) -> Self {
        Self { user, archive_id: new_id(), exported_at, include_vectors, secrets: None, only: None }
    }

    fn base_name(&self) -> String {
        let user: String = self
            .user
            .username
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
            .collect();
        format!("lumiverse-{user}-{}", UtcTime::from_unix(self.exported_at).file_name_stamp())
    }

    /// `lumiverse-<user>-<YYYY-MM-DD-HHMMSS>.lvbak`
    pub fn archive_file_name(&self) -> String {
        format!("{}.lvbak", self.base_name())
    }

    /// The ticket's file name, sharing the archive's stamp.
    pub fn ticket_file_name(&self) -> String {
        format!("{}.ticket.json", self.base_name())
    }

    /// Opens the user's stored secrets (`SecretStore::secrets_of`) with the instance's
    /// identity key and re-seals them for this archive.
    pub fn seal_secrets(&mut self, identity: &IdentityKey, stored_secrets: Vec<StoredSecret>) -> SecretsOutcome {
        let master_key = Zeroizing::new(random_bytes::<32>());
        let mut records = Vec::new();
        let mut unreachable = Vec::new();
        for stored in stored_secrets {
            match identity.open(&self.user.id, &stored) {
                Ok(plaintext) => {
                    records.push(EncryptedSecret::seal(&master_key, random_bytes::<12>(), &stored.key, &plaintext))
                }
                Err(_) => unreachable.push(stored.key),
            }
        }
        let keys: Vec<String> = records.iter().map(|record| record.key.clone()).collect();
        let index = SecretsIndex::new(&self.archive_id, keys);
        // Records in the index's (sorted) order.
        records.sort_by(|a, b| {
            let position = |key: &str| index.keys.iter().position(|k| k == key);
            position(&a.key).cmp(&position(&b.key))
        });
        let ticket = (!index.keys.is_empty())
            .then(|| Ticket::issue(&self.archive_id, &master_key, &index.keys, self.exported_at, None));
        let sealed = SealedSecrets { index, records };
        self.secrets = Some(sealed.clone());
        SecretsOutcome { sealed, ticket, unreachable }
    }
}
