//! Whether an account is the same where it moved as in the data directory. Its export
//! (rows, settings, files, vectors; one archive id and time for both) is written from each
//! store into the data directory's staging folder and read back entry by entry: a table's
//! lines compared as a multiset (each database reads rows in its own plan's order: count,
//! bytes and the sum of the lines' SHA-256), the stats trailer with its missing files as a
//! set, every other entry byte for byte — streamed, nothing held whole. With rows moved,
//! what no export holds is compared too: the account's record, password hash, quota and
//! recorded use, stored API keys as sealed, their endpoints, and whether its embeddings
//! setting was confirmed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use anyhow::{bail, ensure};
use lvbak_core::{Archive, Limits, ManifestStats};
use ring::digest::{Context, SHA256};

use crate::cli::printable::field;
use crate::export::archive::write_archive;
use crate::export::plan::ExportPlan;
use crate::storage::files::StagedFile;
use crate::storage::{Store, UserRecord};
use crate::util::now;

/// Our own exports, read back: no cap but the metadata entries' (read whole).
const READ_BACK: Limits = Limits {
    max_archive_bytes: u64::MAX,
    max_decompressed_bytes: u64::MAX,
    max_line_bytes: u64::MAX,
    max_legacy_line_bytes: u64::MAX,
    max_entries: u64::MAX,
    ..Limits::STANDARD
};

/// What an entry is compared by.
#[derive(Debug, PartialEq, Eq)]
enum Digest {
    Bytes(Vec<u8>),
    /// Lines in any order: how many, their bytes, and the sum of their SHA-256 digests.
    Lines {
        lines: u64,
        bytes: u64,
        sum: (u128, u128),
    },
}

/// Fails naming the first thing of `user` that differs between `source` (the data
/// directory) and `target` (`place`, where it moved).
pub(super) fn same_account(
    source: &Store,
    target: &Store,
    runtime: &tokio::runtime::Handle,
    user: UserRecord,
    rows_moved: bool,
    place: &str,
) -> anyhow::Result<()> {
    let name = field(&user.username).to_string();
    let again = "the data directory is untouched; run again (if the account changed since an earlier run, \
                 start over from an empty database)";
    if rows_moved {
        let (ours, theirs) =
            runtime.block_on(async { anyhow::Ok((facts(source, &user).await?, facts(target, &user).await?)) })?;
        for ((fact, ours), (_, theirs)) in ours.iter().zip(&theirs) {
            ensure!(ours == theirs, "{name}: {fact}: not the same in {place} as in the data directory; {again}");
        }
    }
    let plan = ExportPlan::new(user, now(), true);
    let ours = entry_digests(source, runtime, &plan)?;
    let theirs = entry_digests(target, runtime, &plan)?;
    let names: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for entry in names {
        let entry_name = field(entry);
        match (ours.get(entry), theirs.get(entry)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), None) => {
                bail!("{name}: {entry_name} is in its export from the data directory, not from {place}; {again}")
            }
            (None, Some(_)) => {
                bail!("{name}: {entry_name} is in its export from {place}, not from the data directory; {again}")
            }
            _ => bail!(
                "{name}: {entry_name} differs between its exports from the data directory and from {place}; {again}"
            ),
        }
    }
    Ok(())
}

/// What no export holds of an account, named, as text to compare.
async fn facts(store: &Store, user: &UserRecord) -> anyhow::Result<Vec<(&'static str, String)>> {
    let accounts = store.accounts();
    let mut secrets = store.secrets().secrets_of(&user.id).await?;
    secrets.sort_by(|a, b| a.key.cmp(&b.key));
    let endpoints: BTreeMap<_, _> = store.secrets().key_endpoints(&user.id).await?.into_iter().collect();
    Ok(vec![
        ("its record", format!("{:?}", accounts.user_by_name(&user.username).await?)),
        ("its password hash", format!("{:?}", accounts.credentials(&user.username).await?.map(|(_, hash)| hash))),
        ("its quota", format!("{:?}", accounts.quota_of(&user.id).await?)),
        ("its recorded disk use", format!("{:?}", accounts.usage_of(&user.id).await?)),
        ("its stored API keys", format!("{secrets:?}")),
        ("its API keys' endpoints", format!("{endpoints:?}")),
        (
            "its embeddings setting's confirmation",
            format!("{:?}", store.settings().embedding_unconfirmed(&user.id).await?),
        ),
    ])
}

/// `plan`'s export from `store`, entry by entry.
fn entry_digests(
    store: &Store,
    runtime: &tokio::runtime::Handle,
    plan: &ExportPlan,
) -> anyhow::Result<BTreeMap<String, Digest>> {
    let staging = store.staging_dir();
    std::fs::create_dir_all(&staging)?;
    let staged = StagedFile::new(staging.join(format!("migrate-{}.lvbak.partial", crate::util::new_id())));
    let file = BufWriter::new(std::fs::File::create(staged.path())?);
    let (file, _) = write_archive(store, runtime, plan, file, &|_| {})?;
    file.into_inner().map_err(|error| error.into_error())?.flush()?;
    let archive = Archive::open(BufReader::new(std::fs::File::open(staged.path())?), READ_BACK)?;
    let mut digests = BTreeMap::new();
    for (index, entry) in archive.entries().iter().enumerate() {
        let reader = archive.open_entry(index)?;
        let digest = if entry.name.ends_with(".ndjson") {
            lines_digest(BufReader::with_capacity(1 << 16, reader))?
        } else if entry.name == lvbak_core::manifest::STATS_ENTRY {
            let mut bytes = Vec::new();
            reader.take(READ_BACK.max_metadata_bytes).read_to_end(&mut bytes)?;
            let mut stats = ManifestStats::parse(&bytes)?;
            stats.missing_files.sort();
            Digest::Bytes(sha256(&stats.to_json()))
        } else {
            bytes_digest(reader)?
        };
        digests.insert(entry.name.clone(), digest);
    }
    Ok(digests)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&SHA256, bytes).as_ref().to_vec()
}

/// SHA-256 of everything `reader` gives.
fn bytes_digest(mut reader: impl Read) -> std::io::Result<Digest> {
    let mut context = Context::new(&SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(Digest::Bytes(context.finish().as_ref().to_vec()));
        }
        context.update(&buffer[..read]);
    }
}

/// The lines of `reader` as a multiset (a last line without its newline counts too).
fn lines_digest(mut reader: impl BufRead) -> std::io::Result<Digest> {
    let (mut lines, mut bytes, mut sum) = (0u64, 0u64, (0u128, 0u128));
    let mut line = Context::new(&SHA256);
    let mut open = false;
    let mut add = |line: Context| {
        let digest = line.finish();
        let digest = digest.as_ref();
        let half = |part: &[u8]| u128::from_le_bytes(part.try_into().unwrap_or_default());
        sum = (sum.0.wrapping_add(half(&digest[..16])), sum.1.wrapping_add(half(&digest[16..32])));
    };
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        let length = buffer.len();
        let mut start = 0;
        while let Some(at) = buffer[start..].iter().position(|&byte| byte == b'\n') {
            line.update(&buffer[start..start + at]);
            add(std::mem::replace(&mut line, Context::new(&SHA256)));
            lines += 1;
            start += at + 1;
            open = false;
        }
        if start < length {
            line.update(&buffer[start..]);
            open = true;
        }
        bytes += length as u64;
        reader.consume(length);
    }
    if open {
        add(line);
        lines += 1;
    }
    Ok(Digest::Lines { lines, bytes, sum })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Lines compare in any order, a missing last newline aside; any other change differs.
    #[test]
    fn lines_compare_as_a_multiset() {
        let digest = |text: &str| lines_digest(BufReader::with_capacity(3, text.as_bytes())).unwrap();
        assert_eq!(digest("a\nbb\nc\n"), digest("c\na\nbb\n"));
        assert_ne!(digest("a\nbb\nc\n"), digest("a\nb\nbc\n"));
        assert_ne!(digest("a\na\n"), digest("a\nb\n"));
        assert_ne!(digest("a\n"), digest("a\na\n"));
        assert_eq!(digest("x\ny"), digest("y\nx"));
    }
}
