//! [`AccountStore`]: accounts and their credentials, each account's quota and recorded disk
//! use, and sign-in sessions.
//!
//! A backend must guarantee: a user name belongs to one account at most (`create_user`
//! refuses a taken one with `DbError::NameTaken`, atomically with the insert); a session
//! resolves only to the account it was created for, and only before it expires; quota and
//! use are per account, a missing record reading as `None`; a charge is checked against the
//! quota and added in one step, so two charges never both fit where one would.

use async_trait::async_trait;

use crate::storage::sqlite::DbResult;

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
}

/// The user a session belongs to.
pub type SessionUser = UserRecord;

#[async_trait]
pub(crate) trait AccountStore: Send + Sync {
    /// Creates an account with its password hash; fails if the name is taken.
    async fn create_user(&self, id: &str, username: &str, password_hash: &str, now: i64) -> DbResult<UserRecord>;

    /// The account of a user name.
    async fn user_by_name(&self, username: &str) -> DbResult<Option<UserRecord>>;

    /// Every account name, sorted.
    async fn user_names(&self) -> DbResult<Vec<String>>;

    /// Every account's id, sorted.
    async fn user_ids(&self) -> DbResult<Vec<String>>;

    /// The account and password hash of a user name.
    async fn credentials(&self, username: &str) -> DbResult<Option<(UserRecord, String)>>;

    /// The account's own quota: `None` if it has none (the instance's applies),
    /// `Some(None)` for no limit.
    async fn quota_of(&self, user_id: &str) -> DbResult<Option<Option<u64>>>;

    /// Gives the account a quota of its own (`Some(None)`: no limit), or takes it away
    /// (`None`: the instance's applies).
    async fn set_quota(&self, user_id: &str, quota: Option<Option<u64>>) -> DbResult<()>;

    /// What the account keeps on disk, as recorded (`None` until first measured).
    async fn usage_of(&self, user_id: &str) -> DbResult<Option<u64>>;

    /// Records what the account keeps on disk.
    async fn set_usage(&self, user_id: &str, bytes: u64) -> DbResult<()>;

    /// Adds `bytes` to what the account keeps if they fit in its quota (its own, else
    /// `instance_quota`), atomically; refuses them with `DbError::QuotaExceeded` otherwise.
    async fn charge_usage(&self, user_id: &str, bytes: u64, instance_quota: Option<u64>) -> DbResult<()>;

    /// Records a session of `user_id` by the hash of its token, live until `expires_at`;
    /// sessions expired at `now` may be swept.
    async fn create_session(&self, token_hash: &str, user_id: &str, now: i64, expires_at: i64) -> DbResult<()>;

    /// The user of a session live at `now`.
    async fn session_user(&self, token_hash: &str, now: i64) -> DbResult<Option<SessionUser>>;

    /// Ends a session (one already gone is no error).
    async fn delete_session(&self, token_hash: &str) -> DbResult<()>;
}
