//! What a run may use: the account's setting as it takes effect (a restored one reads as
//! switched off) and its API key, only when the key was saved for the endpoint the setting
//! sends to; keys stored before keys were bound get bound at start.

use super::*;

impl Embeddings {
    /// The user's settings as they take effect: as stored, except that a setting restored
    /// from a backup and not confirmed in this account reads as switched off.
    pub async fn settings(&self, user_id: &str) -> Result<EmbeddingSettings, DbError> {
        let stored = self.store.settings().setting(user_id, SETTING_KEY).await?;
        let mut settings = EmbeddingSettings::from_setting(stored.as_deref());
        if self.store.settings().embedding_unconfirmed(user_id).await? {
            settings.restored = true;
            settings.enabled = false;
        }
        Ok(settings)
    }

    /// The user's API key for `settings`' provider (or the older shared name), when it was
    /// saved for the endpoint `settings` sends to: a key is never sent anywhere else.
    pub async fn api_key(
        &self,
        user_id: &str,
        settings: &EmbeddingSettings,
    ) -> Result<Option<zeroize::Zeroizing<String>>, DbError> {
        let endpoint = settings.endpoint();
        let bound = self.store.secrets().key_endpoints(user_id).await?;
        let secrets = self.store.secrets().secrets_of(user_id).await?;
        for wanted in [settings.secret_key().as_str(), LEGACY_SECRET_KEY] {
            let Some(stored) = secrets.iter().find(|s| s.key == wanted) else { continue };
            if bound.get(wanted).and_then(Option::as_deref) == Some(endpoint.as_str()) {
                return Ok(self.store.identity.open(user_id, stored).ok());
            }
        }
        Ok(None)
    }

    /// Where the key `settings` would use is allowed to go, when a key is stored but may
    /// not be sent to `settings`' endpoint: `Some(None)` for a key restored from a backup
    /// and bound nowhere yet, `Some(Some(url))` for one saved for another URL.
    pub async fn key_bound_elsewhere(
        &self,
        user_id: &str,
        settings: &EmbeddingSettings,
    ) -> Result<Option<Option<String>>, DbError> {
        if self.api_key(user_id, settings).await?.is_some() {
            return Ok(None);
        }
        let bound = self.store.secrets().key_endpoints(user_id).await?;
        let secrets = self.store.secrets().secrets_of(user_id).await?;
        let own = settings.secret_key();
        let stored =
            [own.as_str(), LEGACY_SECRET_KEY].into_iter().find(|wanted| secrets.iter().any(|s| s.key == *wanted));
        Ok(stored.map(|key| bound.get(key).cloned().flatten()))
    }

    /// Binds the embeddings keys stored before keys were bound to endpoints to the endpoint
    /// their account's setting names now ("the URL stored then"). Runs when a process
    /// starts; keys stored since always have a binding.
    pub(super) async fn bind_keys_saved_before_bindings(store: &Store) {
        let keys = match store.secrets().keys_without_endpoint().await {
            Ok(keys) => keys,
            Err(error) => return tracing::warn!("cannot read unbound embeddings keys: {error}"),
        };
        for key in keys {
            let endpoint = EmbeddingSettings::from_setting(key.setting.as_deref()).endpoint();
            if let Err(error) = store.secrets().bind_key_saved_earlier(&key.user_id, &key.key, &endpoint).await {
                tracing::warn!("cannot bind an embeddings key of {}: {error}", key.user_id);
            }
        }
    }
}
