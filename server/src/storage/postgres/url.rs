//! `--database-url` / `LVBAK_DATABASE_URL`: the PostgreSQL database rows and accounts live
//! in (`postgres://user:password@host:port/database`, or `postgresql://`; libpq's
//! `key=value` form also works). Shown without its password.

use std::fmt;

/// Where an instance's PostgreSQL database is.
#[derive(Clone)]
pub struct DatabaseUrl {
    pub(crate) config: tokio_postgres::Config,
}

impl std::str::FromStr for DatabaseUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://") || text.contains('=')) {
            anyhow::bail!("a database URL starts with postgres:// (got {:?})", text.split(':').next().unwrap_or(""));
        }
        let config: tokio_postgres::Config =
            text.parse().map_err(|error| anyhow::anyhow!("not a PostgreSQL URL: {error}"))?;
        if config.get_dbname().is_none() {
            anyhow::bail!("the database URL names no database (postgres://user@host:port/DATABASE)");
        }
        Ok(Self { config })
    }
}

impl fmt::Display for DatabaseUrl {
    /// `postgres://user@host:port/database`, never the password.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
        write!(formatter, "postgres://{user}{host}:{port}/{}", self.config.get_dbname().unwrap_or(""))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_shown_without_their_password() {
        let url: DatabaseUrl = "postgres://lvbak:secret@127.0.0.1:5433/accounts".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://lvbak@127.0.0.1:5433/accounts");
        assert_eq!(format!("{url:?}"), "postgres://lvbak@127.0.0.1:5433/accounts");
        assert!("mysql://x/y".parse::<DatabaseUrl>().is_err());
        assert!("postgres://127.0.0.1:5432".parse::<DatabaseUrl>().is_err(), "no database");
    }
}
