//! What the server already holds, as the uploader learns it: the account's row ids as
//! hashes ([`held_id_hash`], [`HeldRows`]) and the archive's files as claims the server
//! compares with its own copies ([`FileClaim`], [`file_claims`]; under the names a restore
//! as a copy gives them, [`file_claims_as`]).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::archive::Archive;
use crate::closure::CopyPlan;
use crate::entry_name::EntryKind;
use crate::protocol::HeldRowsAnswer;

/// The hash by which client and server compare row ids: 64-bit FNV-1a of the id's UTF-8
/// bytes. Two different ids of one account and archive share it with a probability of
/// about n² / 2⁶⁴ (10⁻⁷ for a million rows on each side); only the account's own ids are
/// ever handed out, so nobody else's rows can make a row of yours be left out.
pub fn held_id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The server's `held-rows` answer, read: per table the hashes of the row ids the account
/// has, and the tables it had no rows of when the job began.
#[derive(Default)]
pub struct HeldRows {
    pub tables: HashMap<String, HashSet<u64>>,
    pub fresh: Option<HashSet<String>>,
}

impl HeldRows {
    /// Reads `{"tables": {"<table>": "<base64 of 8-byte little-endian hashes>"}, "fresh":
    /// ["<table>", …]}`; what is wrong with it, in words.
    pub fn parse(answer: &[u8]) -> std::result::Result<Self, String> {
        let answer: HeldRowsAnswer = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
        let mut tables = HashMap::new();
        for (table, hashes) in answer.tables {
            let bytes = BASE64.decode(hashes).map_err(|e| format!("the held rows of {table}: {e}"))?;
            let hashes =
                bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
            tables.insert(table, hashes.collect());
        }
        Ok(Self { tables, fresh: answer.fresh.map(|fresh| fresh.into_iter().collect()) })
    }
}

/// Only a row's id, borrowed from its line.
#[derive(serde::Deserialize)]
pub(super) struct RowId<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<std::borrow::Cow<'a, str>>,
}

/// One file of the archive as the client describes it when opening a batch import, from
/// the central directory (nothing is read).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileClaim {
    /// The archive's folder (`images`, `thumbnails`, `avatars`, …).
    pub bucket: String,
    /// The name inside it.
    pub name: String,
    pub size: u64,
    pub crc32: u32,
}

impl FileClaim {
    /// The archive entry this claim is about.
    pub fn entry_name(&self) -> String {
        format!("files/{}/{}", self.bucket, self.name)
    }
}

/// The archive's files, for the server to say which it already holds.
pub fn file_claims<R: Read + Seek>(archive: &Archive<R>) -> Vec<FileClaim> {
    archive
        .entries()
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::File { bucket, name } => Some(FileClaim {
                bucket: bucket.archive_folder().to_string(),
                name: name.clone(),
                size: entry.uncompressed_size,
                crc32: entry.crc32,
            }),
            _ => None,
        })
        .collect()
}

/// The name of entry `index` (`files/<bucket>/<name>`) as a copy sends it.
pub(super) fn entry_name_as<R: Read + Seek>(archive: &Archive<R>, index: usize, copy: Option<&CopyPlan>) -> String {
    let entry = &archive.entries()[index];
    match (copy, &entry.kind) {
        (Some(copy), EntryKind::File { bucket, name }) => bucket.entry_name(&copy.file_name(name)),
        _ => entry.name.clone(),
    }
}

/// The archive's files as [`file_claims`] describes them, under the names `copy` gives them
/// (a restore as a copy: the server answers held files by the names they will have).
pub fn file_claims_as<R: Read + Seek>(archive: &Archive<R>, copy: Option<&CopyPlan>) -> Vec<FileClaim> {
    let mut claims = file_claims(archive);
    if let Some(copy) = copy {
        for claim in &mut claims {
            claim.name = copy.file_name(&claim.name);
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Cursor;

    use lvbak_tests::corpus::manifest_json;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};

    use super::*;
    use crate::Limits;

    /// Client and server must agree on the hash bit for bit: FNV-1a's published 64-bit
    /// values, and the UTF-8 bytes of an id that is not ASCII.
    #[test]
    fn the_held_id_hash_is_fnv_1a_of_the_ids_bytes() {
        assert_eq!(held_id_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(held_id_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(held_id_hash("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(
            held_id_hash("é"),
            [0xc3u8, 0xa9].iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            })
        );
    }

    /// The server's answer as it writes it — 8-byte little-endian hashes in base64 per
    /// table, then `fresh` — reads back as the hashes and the tables; a damaged answer is
    /// refused in words naming its table.
    #[test]
    fn held_rows_read_the_servers_answer() {
        let hashes: Vec<u8> = ["c1", "c2"].iter().flat_map(|id| held_id_hash(id).to_le_bytes()).collect();
        let answer =
            format!(r#"{{"tables":{{"characters":"{}","chats":""}},"fresh":["presets"]}}"#, BASE64.encode(hashes));
        let held = HeldRows::parse(answer.as_bytes()).unwrap();
        assert_eq!(held.tables["characters"], HashSet::from([held_id_hash("c1"), held_id_hash("c2")]));
        assert!(held.tables["chats"].is_empty());
        assert_eq!(held.fresh, Some(HashSet::from(["presets".to_string()])));
        // An answer without `fresh` (a server before it) leaves the choice to the client.
        assert_eq!(HeldRows::parse(br#"{"tables":{}}"#).unwrap().fresh, None);
        let error = HeldRows::parse(br#"{"tables":{"characters":"not base64!"}}"#).err().unwrap();
        assert!(error.starts_with("the held rows of characters: "), "{error}");
        assert!(HeldRows::parse(b"<html>").is_err());
    }

    /// Only file entries are claimed, each by its folder, name, size and CRC-32 as the
    /// central directory gives them (nothing is read: a claimed CRC that lies goes as it is).
    #[test]
    fn file_claims_come_from_the_central_directory() {
        let mut lying = RawEntry::stored("files/avatars/b.png", b"bbb");
        lying.claimed_crc = Some(7);
        let zip = RawZip::new(vec![
            RawEntry::deflated("manifest.json", &manifest_json(&[])),
            RawEntry::deflated("database/world_books.ndjson", b"{\"id\":\"w\"}\n"),
            RawEntry::deflated("files/theme-assets/t/a.css", b"body{}"),
            lying,
        ]);
        let archive = Archive::open(Cursor::new(zip.build()), Limits::STANDARD).unwrap();
        let claims = file_claims(&archive);
        let claim =
            |bucket: &str, name: &str, size, crc32| FileClaim { bucket: bucket.into(), name: name.into(), size, crc32 };
        assert_eq!(
            claims,
            [claim("theme-assets", "t/a.css", 6, crc32fast::hash(b"body{}")), claim("avatars", "b.png", 3, 7)]
        );
        assert_eq!(claims[0].entry_name(), "files/theme-assets/t/a.css");
    }
}
