//! [`SignInLimits`]: the sign-in attempts an instance allows — per client address, and
//! failures per user name — as token buckets every node of an instance must share (a
//! guesser spread over several nodes gets no more tries). `sign_in::SignInBuckets`, in the
//! process's memory, is today's. What protects a node's own resources (password hashes
//! computed at once) stays per node.
//!
//! What every backend guarantees: a bucket's tokens are taken and given back atomically
//! (two nodes never both take the last one), and the state it keeps is bounded whatever
//! the addresses and names asked for.

use std::time::Duration;

/// How sign-in attempts are rationed (see the module documentation). A refusal says how
/// long until the next token.
#[async_trait::async_trait]
pub(crate) trait SignInLimits: Send + Sync {
    /// Takes one attempt of a client address.
    async fn take_attempt(&self, address: &str) -> Result<(), Duration>;
    /// Takes one failure of a user name (lower-cased), before its password is checked.
    async fn take_failure(&self, name: &str) -> Result<(), Duration>;
    /// Gives back the failure a successful sign-in took.
    async fn give_back_failure(&self, name: &str);
}
