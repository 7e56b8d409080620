//! `lvbak migrate --data-dir DIR [--database-url URL] [--object-store s3://bucket/prefix]`:
//! moves a single-node instance, with its server stopped, into PostgreSQL, object storage
//! or both. With `--database-url`, every account is copied out of the data directory's
//! SQLite database with everything it is (`rows.rs`: the account and its password hash,
//! quota and recorded use, settings, stored API keys as they are sealed, ticket uses, every
//! Lumiverse row, the id map and the re-vectorization queue); sessions and job records stay
//! (users sign in again). With `--object-store`, its files and vector tables are copied.
//! Then every account is exported from the data directory and from where it moved and the
//! two compared entry by entry, with its account facts (`verify.rs`). Resumable: what is
//! there already is kept (rows by key, files by name, vectors by id), so a run cut short
//! completes when run again, and a run after a complete one copies nothing. The data
//! directory is left as it was.

mod rows;
mod verify;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;

use super::{fail, runtime};
use crate::config::DataDirArg;
use crate::storage::postgres::PostgresStores;
use crate::storage::{Store, UserRecord, VectorRow, WriteOutcome};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    data: DataDirArg,
}

/// What a run (or one account of it) moved, and found there already.
#[derive(Debug, Default)]
struct Moved {
    accounts: usize,
    rows: u64,
    rows_there: u64,
    files: u64,
    bytes: u64,
    files_there: u64,
    vectors: u64,
    vectors_there: u64,
}

impl Moved {
    fn add(&mut self, other: &Moved) {
        self.rows += other.rows;
        self.rows_there += other.rows_there;
        self.files += other.files;
        self.bytes += other.bytes;
        self.files_there += other.files_there;
        self.vectors += other.vectors;
        self.vectors_there += other.vectors_there;
    }

    /// `moved … rows (…), … files (…) and … vectors (…)`, of what this run moves.
    fn describe(&self, rows: bool, files: bool) -> String {
        let mut parts = Vec::new();
        if rows {
            parts.push(format!("{} rows ({} already there)", self.rows, self.rows_there));
        }
        if files {
            parts.push(format!("{} files ({} bytes; {} already there)", self.files, self.bytes, self.files_there));
            parts.push(format!("{} vectors ({} already there)", self.vectors, self.vectors_there));
        }
        let last = parts.pop().unwrap_or_default();
        match parts.is_empty() {
            true => format!("moved {last}"),
            false => format!("moved {} and {last}", parts.join(", ")),
        }
    }
}

pub fn run(args: &MigrateArgs) -> ExitCode {
    let started = Instant::now();
    match migrate(args) {
        Ok((moved, place)) => {
            let (rows, files) = (args.data.database_url.is_some(), args.data.object_store.is_some());
            println!(
                "{} of {} accounts in {:.1} s; every account exports the same from {place}",
                moved.describe(rows, files),
                moved.accounts,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

fn migrate(args: &MigrateArgs) -> anyhow::Result<(Moved, &'static str)> {
    let data = &args.data;
    let place = match (&data.database_url, &data.object_store) {
        (Some(_), Some(_)) => "PostgreSQL and the object store",
        (Some(_), None) => "PostgreSQL",
        (None, Some(_)) => "the object store",
        (None, None) => bail!(
            "give --database-url (LVBAK_DATABASE_URL), --object-store (LVBAK_OBJECT_STORE) or both: where to move \
             the instance"
        ),
    };
    let runtime = runtime()?;
    let identity = data.identity_key_file.as_deref();
    let source = runtime.block_on(Store::open_with_identity(&data.data_dir, None, None, identity))?;
    if let Some(url) = &data.database_url {
        // An object store is claimed with the instance's id: PostgreSQL keeps the data
        // directory's, so the one its files were moved to (now or by an earlier run) stays
        // this instance's.
        if let Some(id) = source.db.instance_id_if_any()? {
            let kept = runtime.block_on(async {
                let postgres = PostgresStores::connect(url.config.clone())
                    .await
                    .with_context(|| format!("cannot use the PostgreSQL database {url}"))?;
                anyhow::Ok(postgres.adopt_instance_id(&id).await?)
            })?;
            anyhow::ensure!(kept == id, "the PostgreSQL database {url} is another instance's: give an empty one");
        }
    }
    let target = runtime.block_on(Store::open_with_identity(
        &data.data_dir,
        data.object_store.as_ref(),
        data.database_url.as_ref(),
        identity,
    ))?;
    let names = runtime.block_on(source.accounts().user_names())?;
    let mut users = Vec::new();
    for name in &names {
        let user = runtime.block_on(source.accounts().user_by_name(name))?;
        users.push(user.with_context(|| format!("the account {name} went away"))?);
    }
    // The id map moves as one table: copies staged beside it join it first.
    source.db.merge_staged_copies()?;
    let tables = crate::storage::sqlite::copy_out::moved_tables()?;
    let mut moved = Moved { accounts: users.len(), ..Moved::default() };
    for user in &users {
        let started = Instant::now();
        let mut account = Moved::default();
        if let Some(postgres) = target.postgres() {
            if let Some(there) = runtime.block_on(target.accounts().user_by_name(&user.username))? {
                anyhow::ensure!(
                    there.id == user.id,
                    "{}: the PostgreSQL database has another account of that name",
                    crate::cli::printable::field(&user.username)
                );
            }
            (account.rows, account.rows_there) =
                rows::copy_account(&source, postgres, runtime.handle(), user, &tables)?;
        }
        if data.object_store.is_some() {
            copy_files(&source, &target, user, &mut account)?;
            runtime.block_on(copy_vectors(&source, &target, &user.id, &mut account))?;
        }
        eprintln!(
            "{}: {} in {:.2} s",
            crate::cli::printable::field(&user.username),
            account.describe(data.database_url.is_some(), data.object_store.is_some()),
            started.elapsed().as_secs_f64()
        );
        moved.add(&account);
    }
    for user in users {
        verify::same_account(&source, &target, runtime.handle(), user.clone(), target.postgres().is_some(), place)?;
        eprintln!("{}: exports the same from {place}", crate::cli::printable::field(&user.username));
    }
    Ok((moved, place))
}

/// Copies `user`'s files into the target's object store, keeping those there already.
fn copy_files(source: &Store, target: &Store, user: &UserRecord, moved: &mut Moved) -> anyhow::Result<()> {
    for (bucket, name) in source.files.stored_names(&user.id)? {
        if target.files.size_of(bucket, &user.id, &name)?.is_some() {
            moved.files_there += 1;
            continue;
        }
        let Some((mut file, _)) = source.files.open(bucket, &user.id, &name)? else { continue };
        match target.files.write_new(bucket, &user.id, &name, &mut file)? {
            WriteOutcome::Written { bytes } => {
                moved.files += 1;
                moved.bytes += bytes;
            }
            WriteOutcome::AlreadyThere => moved.files_there += 1,
        }
    }
    target.files.flush_writes(&user.id)?;
    Ok(())
}

/// Adds `user_id`'s vectors of every table and dimension to the target, a batch at a time,
/// leaving out those whose ids it has.
async fn copy_vectors(source: &Store, target: &Store, user_id: &str, moved: &mut Moved) -> anyhow::Result<()> {
    for name in lvbak_core::registry::VECTOR_TABLES {
        let mut rows = source.vectors.rows_of(name, user_id).await?;
        while let Some(batch) = rows.next_batch().await? {
            let mut by_dimension: std::collections::BTreeMap<usize, Vec<VectorRow>> = Default::default();
            for row in batch {
                by_dimension.entry(row.vector.len()).or_default().push(row);
            }
            for (dimension, mut rows) in by_dimension {
                let dimension = i32::try_from(dimension).context("a vector's dimension")?;
                let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
                let there = target.vectors.existing_ids(name, dimension, &ids).await?;
                rows.retain(|row| !there.contains(&row.id));
                moved.vectors_there += there.len() as u64;
                if !rows.is_empty() {
                    target.vectors.add(name, &rows, dimension).await?;
                    moved.vectors += rows.len() as u64;
                }
            }
        }
    }
    Ok(())
}
