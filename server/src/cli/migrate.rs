//! `lvbak migrate --data-dir DIR --object-store s3://bucket/prefix`: moves a single-node
//! instance's files and vector tables from its data directory into object storage, then
//! verifies by exporting every account (files and vectors) from both and comparing the
//! archives byte for byte. Run it with the server stopped. Resumable: a file already in
//! the object store is kept, a vector written again replaces itself. The data directory's
//! files and tables are left where they are (remove them once the instance runs on the
//! object store); accounts, rows and sessions stay in its database either way.

use std::io::{BufWriter, Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use super::{fail, runtime};
use crate::config::DataDirArg;
use crate::export::archive::write_archive;
use crate::export::plan::ExportPlan;
use crate::storage::{Store, VectorRow, WriteOutcome};
use crate::util::now;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    data: DataDirArg,
}

/// What a run moved.
#[derive(Debug, Default)]
struct Moved {
    accounts: usize,
    files: u64,
    bytes: u64,
    already_there: u64,
    vectors: u64,
}

pub fn run(args: &MigrateArgs) -> ExitCode {
    match migrate(args) {
        Ok(moved) => {
            println!(
                "moved {} files ({} bytes; {} already there) and {} vectors of {} accounts; every account exports \
                 the same from the object store",
                moved.files, moved.bytes, moved.already_there, moved.vectors, moved.accounts
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

fn migrate(args: &MigrateArgs) -> anyhow::Result<Moved> {
    let Some(url) = &args.data.object_store else {
        bail!("--object-store (LVBAK_OBJECT_STORE) names where to move files and vectors");
    };
    let runtime = runtime()?;
    let source = runtime.block_on(Store::open(&args.data.data_dir))?;
    let target = runtime.block_on(Store::open_with(&args.data.data_dir, Some(url), None))?;
    let names = runtime.block_on(source.accounts().user_names())?;
    let mut moved = Moved { accounts: names.len(), ..Moved::default() };
    let mut users = Vec::new();
    for name in &names {
        let user = runtime.block_on(source.accounts().user_by_name(name))?;
        users.push(user.with_context(|| format!("the account {name} went away"))?);
    }
    for user in &users {
        for (bucket, name) in source.files.stored_names(&user.id)? {
            if target.files.size_of(bucket, &user.id, &name)?.is_some() {
                moved.already_there += 1;
                continue;
            }
            let Some((mut file, _)) = source.files.open(bucket, &user.id, &name)? else { continue };
            match target.files.write_new(bucket, &user.id, &name, &mut file)? {
                WriteOutcome::Written { bytes } => {
                    moved.files += 1;
                    moved.bytes += bytes;
                }
                WriteOutcome::AlreadyThere => moved.already_there += 1,
            }
        }
        target.files.flush_writes(&user.id)?;
        moved.vectors += runtime.block_on(copy_vectors(&source, &target, &user.id))?;
        eprintln!("{}: moved", crate::cli::printable::field(&user.username));
    }
    let handle = runtime.handle().clone();
    let staging = source.staging_dir();
    std::fs::create_dir_all(&staging)?;
    for user in users {
        let plan = ExportPlan::new(user, now(), true);
        let digests: Vec<Vec<u8>> = [&source, &target]
            .iter()
            .map(|store| {
                let path = staging.join(format!("migrate-{}.lvbak.partial", crate::util::new_id()));
                let staged = crate::storage::files::StagedFile::new(path.clone());
                let file = BufWriter::new(std::fs::File::create(&path)?);
                let (file, _) = write_archive(store, &handle, &plan, file, &|_| {})?;
                file.into_inner().map_err(|error| error.into_error())?.flush()?;
                let digest = sha256_of(staged.path())?;
                Ok::<_, anyhow::Error>(digest)
            })
            .collect::<Result<_, _>>()?;
        if digests[0] != digests[1] {
            bail!(
                "{}: the export from the object store differs from the data directory's; the data directory is \
                 untouched, run again",
                plan.user.username
            );
        }
    }
    Ok(moved)
}

/// Writes `user_id`'s vectors of every table and dimension into the target; how many.
async fn copy_vectors(source: &Store, target: &Store, user_id: &str) -> anyhow::Result<u64> {
    let mut copied = 0;
    for name in lvbak_core::registry::VECTOR_TABLES {
        let mut rows = source.vectors.rows_of(name, user_id).await?;
        while let Some(batch) = rows.next_batch().await? {
            let mut by_dimension: std::collections::BTreeMap<usize, Vec<VectorRow>> = Default::default();
            for row in batch {
                by_dimension.entry(row.vector.len()).or_default().push(row);
            }
            for (dimension, rows) in by_dimension {
                let dimension = i32::try_from(dimension).context("a vector's dimension")?;
                target.vectors.replace(name, &rows, dimension).await?;
                copied += rows.len() as u64;
            }
        }
    }
    Ok(copied)
}

/// SHA-256 of a file's bytes.
fn sha256_of(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    Ok(context.finish().as_ref().to_vec())
}
