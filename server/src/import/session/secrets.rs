//! API keys of an import: opened with the ticket's key (or sealed by the browser to the
//! job's), stored sealed under the instance's identity, counted against the quota, an
//! embeddings key bound to where this account itself sends requests.

use super::*;

/// The longest secret (name or value) stored, in bytes: API keys are far shorter.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The bytes a stored secret counts for against the quota: its sealed value as stored and
/// its row's keys.
pub fn stored_secret_bytes(secret: &crate::storage::StoredSecret) -> u64 {
    (secret.key.len() + secret.encrypted_value.len() + secret.iv.len() + secret.tag.len()) as u64 + 64
}

impl ImportSession<'_> {
    /// Starts applying secrets: `count` records will follow (see [`Self::apply_secret`]).
    pub fn begin_secrets(&mut self, count: usize) {
        self.progress(Event::SecretsApplyStart { count });
        self.summary.secrets.applied = true;
    }

    /// Decrypts one secret record with the ticket's key and stores it (see
    /// [`Self::store_secret`]); a record that fails is skipped alone. Plaintext only lives
    /// in memory.
    pub fn apply_secret(&mut self, record: &EncryptedSecret, key: &SecretKey) -> Result<(), ImportError> {
        match record.open(key) {
            Ok(plaintext) => self.store_secret(&record.key, &plaintext),
            Err(_) => {
                self.reject_secret(&record.key);
                Ok(())
            }
        }
    }

    pub(super) fn reject_secret(&mut self, key: &str) {
        self.summary.secrets.rejected += 1;
        if self.summary.secrets.rejected_keys.len() < LISTED {
            self.summary.secrets.rejected_keys.push(clipped(key, 128));
        }
    }

    /// Stores secrets the browser decrypted itself (and sent sealed to this import's key),
    /// by the same rules as [`Self::apply_secret`].
    pub fn apply_plain_secrets(&mut self, secrets: &[PlainSecret]) -> Result<(), ImportError> {
        self.begin_secrets(secrets.len());
        for secret in secrets {
            self.store_secret(&secret.key, &secret.value)?;
        }
        self.end_secrets();
        Ok(())
    }

    pub fn end_secrets(&self) {
        self.progress(Event::SecretsApplyDone {
            imported: self.summary.secrets.imported,
            skipped: self.summary.secrets.skipped,
        });
    }

    /// Stores one secret sealed under this instance's identity key, unless the importer
    /// already has a secret of that name (kept, as rows are). A value over
    /// [`MAX_SECRET_BYTES`] is no API key: it is rejected.
    pub(super) fn store_secret(&mut self, key: &str, plaintext: &str) -> Result<(), ImportError> {
        if plaintext.len() > MAX_SECRET_BYTES || key.len() > MAX_SECRET_BYTES {
            self.reject_secret(key);
            return Ok(());
        }
        let sealed = self.store.identity.seal(&self.user_id, key, plaintext);
        // A secret takes room like a row (and stays, like a vector, if the import is rolled
        // back: secrets are not among the rows a rollback removes).
        let bytes = stored_secret_bytes(&sealed);
        self.ensure_fits(bytes)?;
        // The secret goes in through the database's own writer: no transaction of ours open.
        self.applier.commit()?;
        // A restored embeddings key may go only where this account's own confirmed setting
        // sends requests; with none confirmed, nowhere until the user confirms one.
        let endpoint = self.confirmed_embedding_endpoint()?;
        // A session runs on a blocking thread (a job's, the batch worker's, the CLI's), never
        // in an async task: it may wait on the runtime.
        let stored =
            self.store.secrets().put_secret_if_absent(&self.user_id, &sealed, crate::util::now(), endpoint.as_deref());
        if !self.runtime.block_on(stored)? {
            self.summary.secrets.skipped += 1;
            return Ok(());
        }
        self.applier.charge(bytes, true)?;
        if let Some((table, id)) = connection_of_secret(key) {
            self.applier.mark_has_api_key(table, id)?;
        }
        self.summary.secrets.imported += 1;
        Ok(())
    }

    /// The endpoint of the account's embeddings setting if the user confirmed it in this
    /// account (not one an import restored).
    pub(super) fn confirmed_embedding_endpoint(&self) -> Result<Option<String>, ImportError> {
        // On the session's blocking thread (see `store_secret`).
        let settings = self.store.settings();
        let setting = self.runtime.block_on(settings.setting(&self.user_id, crate::embeddings::SETTING_KEY))?;
        if setting.is_none() || self.runtime.block_on(settings.embedding_unconfirmed(&self.user_id))? {
            return Ok(None);
        }
        Ok(Some(crate::embeddings::EmbeddingSettings::from_setting(setting.as_deref()).endpoint()))
    }
}
