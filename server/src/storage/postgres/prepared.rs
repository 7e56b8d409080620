//! [`PostgresPreparedExports`]: exports prepared and not yet fetched (`PreparedExportStore`)
//! in PostgreSQL (`lvbak_prepared_exports`), so that the `GET` of an export may land on
//! another node than its `POST /export/prepare`. A plan is stored as JSON text
//! ([`StoredPlan`]: its API keys are already sealed for the archive, as the archive will
//! carry them); it is handed out once, by a `DELETE … RETURNING` that names its user, and
//! none past [`PREPARED_LIFETIME`]; a user keeps `per_user` at most, the oldest going first
//! (under an advisory lock per user, so two nodes' inserts do not both keep one too many).

use std::time::Duration;

use lvbak_core::secrets::SecretsIndex;
use lvbak_core::EncryptedSecret;
use serde::{Deserialize, Serialize};

use super::PostgresStores;
use crate::storage::backend::{ExportPlan, PreparedExportStore, SealedSecrets, UserRecord};
use crate::storage::sqlite::{DbError, DbResult};

/// Prepared exports not fetched within this time are forgotten (as in memory).
const PREPARED_LIFETIME: Duration = Duration::from_secs(3600);

/// An [`ExportPlan`] as the table keeps it.
#[derive(Serialize, Deserialize)]
struct StoredPlan {
    user_id: String,
    username: String,
    archive_id: String,
    exported_at: i64,
    include_vectors: bool,
    secrets: Option<(SecretsIndex, Vec<EncryptedSecret>)>,
    /// A selective export's picks (`KIND:ID`) and whether characters come without chats.
    #[serde(default)]
    only: Option<(Vec<String>, bool)>,
}

impl StoredPlan {
    fn of(plan: &ExportPlan) -> Self {
        Self {
            user_id: plan.user.id.clone(),
            username: plan.user.username.clone(),
            archive_id: plan.archive_id.clone(),
            exported_at: plan.exported_at,
            include_vectors: plan.include_vectors,
            secrets: plan.secrets.as_ref().map(|sealed| (sealed.index.clone(), sealed.records.clone())),
            only: plan
                .only
                .as_ref()
                .map(|selection| (selection.picks.iter().map(ToString::to_string).collect(), selection.without_chats)),
        }
    }

    fn into_plan(self) -> ExportPlan {
        ExportPlan {
            user: UserRecord { id: self.user_id, username: self.username },
            archive_id: self.archive_id,
            exported_at: self.exported_at,
            include_vectors: self.include_vectors,
            secrets: self.secrets.map(|(index, records)| SealedSecrets { index, records }),
            only: self.only.map(|(picks, without_chats)| lvbak_core::closure::Selection {
                picks: picks.iter().filter_map(|pick| pick.parse().ok()).collect(),
                without_chats,
            }),
        }
    }
}

/// Prepared exports every node shares (see the module documentation).
pub(crate) struct PostgresPreparedExports {
    stores: PostgresStores,
    per_user: i64,
}

impl PostgresPreparedExports {
    /// Prepared exports in `stores`' database, `per_user` at most per user.
    pub(crate) fn new(stores: PostgresStores, per_user: usize) -> Self {
        Self { stores, per_user: i64::try_from(per_user.max(1)).unwrap_or(i64::MAX) }
    }

    async fn try_insert(&self, plan: &ExportPlan) -> DbResult<()> {
        let text = serde_json::to_string(&StoredPlan::of(plan)).map_err(|error| DbError::Invalid(error.to_string()))?;
        let lifetime = PREPARED_LIFETIME.as_secs_f64();
        let user_id = plan.user.id.as_str();
        let mut client = self.stores.client().await?;
        let transaction = client.transaction().await?;
        transaction.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&user_id]).await?;
        transaction
            .execute(
                "DELETE FROM lvbak_prepared_exports WHERE made_at <= clock_timestamp() - make_interval(secs => $1::float8)",
                &[&lifetime],
            )
            .await?;
        // Room for the new one: the user's newest `per_user - 1` stay.
        transaction
            .execute(
                "DELETE FROM lvbak_prepared_exports WHERE archive_id IN (SELECT archive_id FROM lvbak_prepared_exports
                 WHERE user_id = $1 ORDER BY made DESC OFFSET $2::bigint - 1)",
                &[&user_id, &self.per_user],
            )
            .await?;
        transaction
            .execute(
                "INSERT INTO lvbak_prepared_exports (archive_id, user_id, made_at, plan) VALUES ($1, $2, clock_timestamp(), $3)
                 ON CONFLICT (archive_id) DO UPDATE SET user_id = excluded.user_id, made = DEFAULT,
                     made_at = excluded.made_at, plan = excluded.plan",
                &[&plan.archive_id, &user_id, &text],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn try_take(&self, archive_id: &str, user_id: &str) -> DbResult<Option<ExportPlan>> {
        let lifetime = PREPARED_LIFETIME.as_secs_f64();
        let client = self.stores.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM lvbak_prepared_exports WHERE archive_id = $1 AND user_id = $2
                 AND made_at > clock_timestamp() - make_interval(secs => $3::float8) RETURNING plan",
                &[&archive_id, &user_id, &lifetime],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: StoredPlan =
            serde_json::from_str(row.get(0)).map_err(|error| DbError::Invalid(error.to_string()))?;
        Ok(Some(stored.into_plan()))
    }
}

#[async_trait::async_trait]
impl PreparedExportStore for PostgresPreparedExports {
    /// A plan the database could not keep is logged; its `GET` then finds none.
    async fn insert(&self, plan: ExportPlan) {
        if let Err(error) = self.try_insert(&plan).await {
            tracing::warn!("prepared export {} not kept: {error}", plan.archive_id);
        }
    }

    async fn take(&self, archive_id: &str, user_id: &str) -> Option<ExportPlan> {
        self.try_take(archive_id, user_id).await.unwrap_or_else(|error| {
            tracing::warn!("prepared export {archive_id} not read: {error}");
            None
        })
    }
}
