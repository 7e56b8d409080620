//! The upload batch: how the browser sends a verified archive to the server piece by piece.
//! One type, [`Batch`], is what the uploader cuts ([`crate::upload`]), what goes on the wire
//! and what the server queues and applies.
//!
//! On the wire a batch is `LVB1`, a little-endian u32 header length, a JSON header, then the
//! payload. The header is the batch without its payload (`{"kind": "rows", "table": …}`,
//! serde's form of [`Batch`]); the payload is NDJSON lines raw-deflated for rows and vectors,
//! a segment of the archive's own deflate stream of a table (`crate::row_stream`), raw
//! bytes for a file chunk, an HPKE ciphertext for secrets, or, for a bundle
//! (`{"kind": "bundle", "frames": [lengths]}`), several small batches of those kinds one
//! after another (one request instead of one each: a few-millisecond round trip per tiny
//! table or avatar added up). [`Batch::decode`] checks everything but the lines (magic,
//! header, names through the one sanitizer, chunk bounds); the server decodes every batch
//! again with the same checks, since a client can lie, and inflates and checks the lines
//! as it applies them ([`InflatingPayload`]).

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::entry_name::{classify_entry_name, table_entry_name, vector_entry_name, EntryKind, FileBucket};
use crate::error::{FormatError, Result};

pub const BATCH_MAGIC: &[u8; 4] = b"LVB1";
/// The JSON header of a batch, at most.
pub const MAX_BATCH_HEADER_BYTES: usize = 64 * 1024;
/// The payload of a batch once inflated, at most: one legacy line (64 MiB) and some.
pub const MAX_BATCH_PAYLOAD_BYTES: u64 = 72 * 1024 * 1024;
/// How much NDJSON a client puts in one batch before closing it (a soft target).
pub const TARGET_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// One chunk of a file, at most.
pub const MAX_FILE_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// A batch smaller than this goes into a bundle with the batches around it.
pub const BUNDLE_FRAME_BYTES: usize = 64 * 1024;
/// A bundle's batches together, at most (the client closes a bundle before this).
pub const BUNDLE_BYTES: usize = 1024 * 1024;
/// Batches in one bundle, at most.
pub const MAX_BUNDLE_FRAMES: usize = 256;

/// One batch: what it carries, and its payload as it goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Batch {
    /// Lines of `database/<table>.ndjson` starting at line `first_line`, raw-deflated
    /// ([`deflate_ndjson`]): `lines` sent, and `held` more of the same stretch left out
    /// because the server said it has their ids (see `crate::upload`).
    Rows {
        table: String,
        first_line: u64,
        lines: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        held: u64,
        #[serde(skip)]
        deflated: Vec<u8>,
    },
    /// The next bytes of the archive's own deflate stream of `database/<table>.ndjson`,
    /// starting `offset` bytes into it; `last` ends it (see `crate::row_stream`). Sent for a
    /// table none of whose rows the server holds.
    RowStream {
        table: String,
        offset: u64,
        last: bool,
        #[serde(skip)]
        deflated: Vec<u8>,
    },
    /// Lines of `lancedb/<table>.ndjson`, raw-deflated.
    Vectors {
        table: String,
        first_line: u64,
        lines: u64,
        #[serde(skip)]
        deflated: Vec<u8>,
    },
    /// Bytes `offset..offset + bytes.len()` of `files/<bucket>/<name>`, a file of `size`
    /// bytes.
    FileChunk {
        #[serde(with = "folder")]
        bucket: FileBucket,
        name: String,
        offset: u64,
        size: u64,
        #[serde(skip)]
        bytes: Vec<u8>,
    },
    /// The decrypted secrets as a JSON array of [`PlainSecret`]s, sealed with HPKE to the
    /// import's key; `enc` is the encapsulated key (base64 on the wire).
    Secrets {
        #[serde(with = "encapsulated_key")]
        enc: [u8; 32],
        #[serde(skip)]
        sealed: Vec<u8>,
    },
    /// Several whole batches (rows, row streams, vectors or file chunks; no bundles, no
    /// secrets), applied in order as if each had come on its own, under one batch number.
    /// Its header lists the parts' lengths ([`encode_bundle`]).
    #[serde(skip)]
    Bundle(Vec<Batch>),
}

/// A bundle's header: the lengths of its batches.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename = "bundle")]
struct BundleHeader {
    frames: Vec<u64>,
}

/// A file chunk's header as sent, read again when its bucket is not one of ours, so the
/// refusal is the sanitizer's (`path_traversal`, `unknown_prefix`, …) as for a bad name.
#[derive(Deserialize)]
struct FileChunkName {
    bucket: String,
    name: String,
    #[serde(rename = "offset")]
    _offset: u64,
    #[serde(rename = "size")]
    _size: u64,
}

/// The `kind` of a header, read first: a bundle's header is not a [`Batch`]'s.
#[derive(Deserialize)]
struct HeaderKind<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// A file bucket on the wire: its folder name under `files/`.
mod folder {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::entry_name::FileBucket;

    pub fn serialize<S: Serializer>(bucket: &FileBucket, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(bucket.archive_folder())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<FileBucket, D::Error> {
        let folder = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        FileBucket::from_archive_folder(&folder)
            .ok_or_else(|| serde::de::Error::custom(format!("no file folder {folder:?}")))
    }
}

/// An HPKE encapsulated key on the wire: 32 bytes in base64.
mod encapsulated_key {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| serde::de::Error::custom("the encapsulated key is not 32 bytes of base64"))
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn bad(detail: impl Into<String>) -> FormatError {
    FormatError::BadBatch { detail: detail.into() }
}

/// Frames a header (its JSON) and a payload.
fn frame(header: &impl Serialize, payload: &[u8]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(header).map_err(|e| bad(e.to_string()))?;
    let length = u32::try_from(json.len()).map_err(|_| bad("header too long"))?;
    let mut out = Vec::with_capacity(8 + json.len() + payload.len());
    out.extend_from_slice(BATCH_MAGIC);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Deflates NDJSON lines for a rows or vectors batch (level 2: fast, and within 1.1x of an
/// archive at level 6 for NDJSON).
pub fn deflate_ndjson(lines: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(lines.len() / 3), Compression::new(2));
    encoder.write_all(lines).map_err(FormatError::Io)?;
    encoder.finish().map_err(FormatError::Io)
}

/// Builds a bundle of encoded batches (see [`Batch::Bundle`]).
pub fn encode_bundle(frames: &[Vec<u8>]) -> Result<Vec<u8>> {
    let header = BundleHeader { frames: frames.iter().map(|frame| frame.len() as u64).collect() };
    frame(&header, &frames.concat())
}

impl Batch {
    /// The batch on the wire.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Batch::Rows { deflated: payload, .. }
            | Batch::RowStream { deflated: payload, .. }
            | Batch::Vectors { deflated: payload, .. }
            | Batch::FileChunk { bytes: payload, .. }
            | Batch::Secrets { sealed: payload, .. } => frame(self, payload),
            Batch::Bundle(parts) => encode_bundle(&parts.iter().map(Batch::encode).collect::<Result<Vec<_>>>()?),
        }
    }

    /// Decodes and checks a batch: magic, header, names (through the one sanitizer), chunk
    /// bounds, a bundle's framing. Payloads stay as they came (deflated lines are inflated
    /// by whoever reads them, with [`InflatingPayload`] or [`inflate_ndjson`], which check
    /// the caps), so a server can acknowledge a batch before the costly part of checking it.
    pub fn decode(body: &[u8]) -> Result<Batch> {
        decode_frame(body, true)
    }

    /// The batches this one stands for: a bundle's parts, or itself.
    pub fn parts(&self) -> Vec<&Batch> {
        match self {
            Batch::Bundle(parts) => parts.iter().collect(),
            one => vec![one],
        }
    }

    /// Like [`Self::parts`], to change them.
    pub fn parts_mut(&mut self) -> Vec<&mut Batch> {
        match self {
            Batch::Bundle(parts) => parts.iter_mut().collect(),
            one => vec![one],
        }
    }

    /// Like [`Self::parts`], owned.
    pub fn into_parts(self) -> Vec<Batch> {
        match self {
            Batch::Bundle(parts) => parts,
            one => vec![one],
        }
    }
}

/// The table name of a batch, through the entry-name sanitizer.
fn checked_table(table: &str, entry: String) -> Result<String> {
    match classify_entry_name(entry.as_bytes())? {
        EntryKind::Table { table } | EntryKind::VectorTable { table } => Ok(table),
        _ => Err(bad(format!("{table:?} is not a table name"))),
    }
}

/// Inflates an NDJSON payload held to [`MAX_BATCH_PAYLOAD_BYTES`].
pub fn inflate_ndjson(deflated: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(deflated.len().saturating_mul(4).min(16 << 20));
    let read = DeflateDecoder::new(deflated)
        .take(MAX_BATCH_PAYLOAD_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("the payload does not inflate: {e}")))?;
    if read as u64 > MAX_BATCH_PAYLOAD_BYTES {
        return Err(FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES });
    }
    Ok(out)
}

/// An NDJSON payload that inflates as it is read, so that it never sits in memory whole:
/// held to [`MAX_BATCH_PAYLOAD_BYTES`], and every block produced is first reported to
/// `produced`, which may refuse it (a server holds a whole upload to its decompressed cap
/// this way). Damaged deflate data is `bad_batch`.
pub struct InflatingPayload<'a, F> {
    decoder: DeflateDecoder<&'a [u8]>,
    read: u64,
    produced: F,
}

impl<'a, F: FnMut(u64) -> Result<()>> InflatingPayload<'a, F> {
    pub fn new(deflated: &'a [u8], produced: F) -> Self {
        Self { decoder: DeflateDecoder::new(deflated), read: 0, produced }
    }
}

impl<F: FnMut(u64) -> Result<()>> Read for InflatingPayload<'_, F> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let refuse = |error: FormatError| std::io::Error::other(error);
        let got = self.decoder.read(buffer).map_err(|e| refuse(bad(format!("the payload does not inflate: {e}"))))?;
        self.read += got as u64;
        if self.read > MAX_BATCH_PAYLOAD_BYTES {
            return Err(refuse(FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES }));
        }
        (self.produced)(got as u64).map_err(refuse)?;
        Ok(got)
    }
}

/// The parts of a bundle: `frames` gives their lengths, which must cover `payload` exactly;
/// each part is decoded as a batch of its own, and may not be a bundle or secrets.
fn decode_bundle(frames: &[u64], payload: &[u8]) -> Result<Vec<Batch>> {
    if frames.is_empty() || frames.len() > MAX_BUNDLE_FRAMES {
        return Err(bad(format!("a bundle holds 1 to {MAX_BUNDLE_FRAMES} batches")));
    }
    let mut rest = payload;
    let mut parts = Vec::with_capacity(frames.len());
    for &length in frames {
        let length = usize::try_from(length).ok().filter(|&length| length <= rest.len());
        let Some(length) = length else { return Err(bad("a bundle's batches run past its end")) };
        let (frame, after) = rest.split_at(length);
        let part = decode_frame(frame, false)?;
        if matches!(part, Batch::Secrets { .. }) {
            return Err(bad("secrets come in a batch of their own"));
        }
        parts.push(part);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad("a bundle has bytes after its last batch"));
    }
    Ok(parts)
}

/// Reads a batch's header: a bundle's, or a [`Batch`] without its payload. A file chunk
/// whose bucket is not one of ours is refused as the sanitizer refuses its entry name.
fn read_header(json: &[u8]) -> Result<std::result::Result<Batch, BundleHeader>> {
    let kind = serde_json::from_slice::<HeaderKind>(json).map_err(|e| bad(e.to_string()))?.kind;
    if kind == "bundle" {
        return serde_json::from_slice(json).map(Err).map_err(|e| bad(e.to_string()));
    }
    serde_json::from_slice(json).map(Ok).map_err(|error| {
        let named = (kind == "fileChunk").then(|| serde_json::from_slice::<FileChunkName>(json).ok()).flatten();
        match named.map(|chunk| classify_entry_name(format!("files/{}/{}", chunk.bucket, chunk.name).as_bytes())) {
            Some(Err(refusal)) => refusal,
            _ => bad(error.to_string()),
        }
    })
}

fn decode_frame(body: &[u8], bundle_allowed: bool) -> Result<Batch> {
    if body.len() < 8 || &body[..4] != BATCH_MAGIC {
        return Err(bad("not an lvbak batch"));
    }
    let length = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
    if length > MAX_BATCH_HEADER_BYTES || body.len() < 8 + length {
        return Err(bad("the header length is out of bounds"));
    }
    let payload = &body[8 + length..];
    Ok(match read_header(&body[8..8 + length])? {
        Err(_) if !bundle_allowed => return Err(bad("a bundle inside a bundle")),
        Err(BundleHeader { frames }) => Batch::Bundle(decode_bundle(&frames, payload)?),
        Ok(Batch::Rows { table, first_line, lines, held, .. }) => {
            let table = checked_table(&table, table_entry_name(&table))?;
            Batch::Rows { table, first_line, lines, held, deflated: payload.to_vec() }
        }
        Ok(Batch::RowStream { table, offset, last, .. }) => {
            let table = checked_table(&table, table_entry_name(&table))?;
            Batch::RowStream { table, offset, last, deflated: payload.to_vec() }
        }
        Ok(Batch::Vectors { table, first_line, lines, .. }) => {
            let table = checked_table(&table, vector_entry_name(&table))?;
            Batch::Vectors { table, first_line, lines, deflated: payload.to_vec() }
        }
        Ok(Batch::FileChunk { bucket, name, offset, size, .. }) => {
            let entry = bucket.entry_name(&name);
            let EntryKind::File { bucket, name } = classify_entry_name(entry.as_bytes())? else {
                return Err(bad(format!("{entry:?} is not a file entry")));
            };
            if payload.len() > MAX_FILE_CHUNK_BYTES {
                return Err(bad("a file chunk is larger than 8 MiB"));
            }
            if offset.checked_add(payload.len() as u64).is_none_or(|end| end > size) {
                return Err(bad("the chunk runs past the end of its file"));
            }
            Batch::FileChunk { bucket, name, offset, size, bytes: payload.to_vec() }
        }
        Ok(Batch::Secrets { enc, .. }) => Batch::Secrets { enc, sealed: payload.to_vec() },
        Ok(Batch::Bundle(_)) => return Err(bad("a bundle's header is its own")),
    })
}

/// One decrypted secret as the browser sends it (inside the HPKE seal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainSecret {
    pub key: String,
    pub value: String,
}

impl Drop for PlainSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Batches of every kind as the uploader wrote them before its batch types became one
    /// (hex): rows (with and without held rows), a row stream's last segment, vectors, a
    /// file chunk, secrets, and a bundle of a rows batch and a file chunk.
    const PINNED_BATCHES: [&str; 7] = [
        "4c564231400000007b226b696e64223a22726f7773222c227461626c65223a226368617473222c2266697273744c696e65223a332c226c696e6573223a322c2268656c64223a317dab56ca4c51b2524a54aae5aa863093946ab900",
        "4c564231370000007b226b696e64223a22726f7773222c227461626c65223a226368617473222c2266697273744c696e65223a312c226c696e6573223a317dabaee50200",
        "4c5642313e0000007b226b696e64223a22726f7753747265616d222c227461626c65223a226d65737361676573222c226f6666736574223a372c226c617374223a747275657d0300",
        "4c5642313f0000007b226b696e64223a22766563746f7273222c227461626c65223a22656d62656464696e6773222c2266697273744c696e65223a312c226c696e6573223a317dab56ca4c51b2522a53d2512a4b4d2ec92f8a4f323351b2ca2bcdc9a9e50200",
        "4c564231510000007b226b696e64223a2266696c654368756e6b222c226275636b6574223a227468656d652d617373657473222c226e616d65223a22622f612e637373222c226f6666736574223a322c2273697a65223a367d6479",
        "4c564231470000007b226b696e64223a2273656372657473222c22656e63223a22427763484277634842776348427763484277634842776348427763484277634842776348427763484277633d227d7365616c6564",
        "4c564231220000007b226b696e64223a2262756e646c65222c226672616d6573223a5b36382c39315d7d4c564231370000007b226b696e64223a22726f7773222c227461626c65223a226368617473222c2266697273744c696e65223a312c226c696e6573223a317dabaee502004c564231510000007b226b696e64223a2266696c654368756e6b222c226275636b6574223a227468656d652d617373657473222c226e616d65223a22622f612e637373222c226f6666736574223a322c2273697a65223a367d6479",
    ];

    fn rows(table: &str, first_line: u64, lines: u64, held: u64, ndjson: &[u8]) -> Batch {
        Batch::Rows { table: table.into(), first_line, lines, held, deflated: deflate_ndjson(ndjson).unwrap() }
    }

    fn chunk(bucket: FileBucket, name: &str, offset: u64, size: u64, bytes: &[u8]) -> Batch {
        Batch::FileChunk { bucket, name: name.into(), offset, size, bytes: bytes.to_vec() }
    }

    /// A batch's encoded bytes with its header's JSON replaced.
    fn with_header(json: &str, payload: &[u8]) -> Vec<u8> {
        [BATCH_MAGIC.as_slice(), &(json.len() as u32).to_le_bytes(), json.as_bytes(), payload].concat()
    }

    /// The bytes of one batch of every kind, as the browser sent them before the batch
    /// types became one: the uploader writes them, and a server reads them, as they were.
    #[test]
    fn encoded_batches_keep_their_bytes() {
        let unheld = rows("chats", 1, 1, 0, b"{}\n");
        let file = chunk(FileBucket::ThemeAssets, "b/a.css", 2, 6, b"dy");
        let batches = [
            rows("chats", 3, 2, 1, b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n"),
            unheld.clone(),
            Batch::RowStream { table: "messages".into(), offset: 7, last: true, deflated: b"\x03\x00".to_vec() },
            Batch::Vectors {
                table: "embeddings".into(),
                first_line: 1,
                lines: 1,
                deflated: deflate_ndjson(b"{\"id\":\"v\",\"vector_b64\":null}\n").unwrap(),
            },
            file.clone(),
            Batch::Secrets { enc: [7; 32], sealed: b"sealed".to_vec() },
            Batch::Bundle(vec![unheld, file]),
        ];
        for (batch, pinned) in batches.iter().zip(PINNED_BATCHES) {
            assert_eq!(hex::encode(batch.encode().unwrap()), pinned);
            assert_eq!(&Batch::decode(&hex::decode(pinned).unwrap()).unwrap(), batch);
        }
    }

    #[test]
    fn rows_round_trip_deflated() {
        let ndjson = b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n".repeat(100);
        let body = rows("chats", 1, 200, 0, &ndjson).encode().unwrap();
        assert!(body.len() < ndjson.len() / 4);
        let Batch::Rows { table, deflated, .. } = Batch::decode(&body).unwrap() else { panic!("kind") };
        assert_eq!((table.as_str(), inflate_ndjson(&deflated).unwrap()), ("chats", ndjson));
    }

    #[test]
    fn a_bundle_carries_whole_batches_in_order_and_nothing_else() {
        let rows_frame = rows("chats", 1, 1, 0, b"{}\n").encode().unwrap();
        let file = chunk(FileBucket::Images, "0b6c4a9e-3d5f-4c1e-9a7b-2f8e6d4c3b2a.png", 0, 3, b"png");
        let file = file.encode().unwrap();
        let bundle = encode_bundle(&[rows_frame.clone(), file.clone()]).unwrap();
        let Batch::Bundle(parts) = Batch::decode(&bundle).unwrap() else { panic!("kind") };
        assert!(
            matches!(&parts[0], Batch::Rows { table, deflated, .. } if table == "chats" && inflate_ndjson(deflated).unwrap() == b"{}\n")
        );
        assert!(matches!(&parts[1], Batch::FileChunk { bytes, .. } if bytes == b"png"));

        let code = |frames: Vec<u64>, payload: &[u8]| {
            let header = serde_json::to_string(&BundleHeader { frames }).unwrap();
            Batch::decode(&with_header(&header, payload)).unwrap_err().code()
        };
        let both = [rows_frame.as_slice(), file.as_slice()].concat();
        let (rows_len, file_len) = (rows_frame.len() as u64, file.len() as u64);
        assert_eq!(code(vec![rows_len, file_len + 1], &both), "bad_batch", "past the end");
        assert_eq!(code(vec![rows_len], &both), "bad_batch", "bytes left over");
        assert_eq!(code(vec![], b""), "bad_batch", "empty");
        assert_eq!(code(vec![0; MAX_BUNDLE_FRAMES + 1], b""), "bad_batch", "too many");
        assert_eq!(code(vec![bundle.len() as u64], &bundle), "bad_batch", "nested");
        let secrets = Batch::Secrets { enc: [7; 32], sealed: b"sealed".to_vec() }.encode().unwrap();
        assert_eq!(code(vec![secrets.len() as u64], &secrets), "bad_batch", "secrets");
        // A part is checked as a batch of its own: names through the sanitizer.
        let traversal = rows("../x", 1, 0, 0, b"").encode().unwrap();
        assert_eq!(code(vec![traversal.len() as u64], &traversal), "path_traversal");
    }

    #[test]
    fn hostile_batches_are_refused_with_codes() {
        let code = |batch: Batch| Batch::decode(&batch.encode().unwrap()).unwrap_err().code();
        assert_eq!(code(chunk(FileBucket::Images, "../../etc/passwd", 0, 3, b"abc")), "path_traversal");
        assert_eq!(
            code(chunk(FileBucket::Images, "0b6c4a9e-3d5f-4c1e-9a7b-2f8e6d4c3b2a.png", 2, 3, b"abc")),
            "bad_batch"
        );
        assert_eq!(code(rows("../x", 1, 0, 0, b"")), "path_traversal");
        let header_code = |json: &str| Batch::decode(&with_header(json, b"abc")).unwrap_err().code();
        assert_eq!(header_code(r#"{"kind":"secrets","enc":"AAAA"}"#), "bad_batch");
        // A bucket that is not one of ours is refused as the sanitizer refuses its name.
        assert_eq!(
            header_code(r#"{"kind":"fileChunk","bucket":"..","name":"x","offset":0,"size":3}"#),
            "path_traversal"
        );
        assert_eq!(
            header_code(r#"{"kind":"fileChunk","bucket":"etc","name":"x","offset":0,"size":3}"#),
            "unknown_prefix"
        );
        assert_eq!(header_code(r#"{"kind":"fileChunk","bucket":"etc","name":"x","offset":-1,"size":3}"#), "bad_batch");
        assert_eq!(header_code(r#"{"kind":"rows","table":"chats"}"#), "bad_batch");
        assert_eq!(header_code(r#"{"kind":"other"}"#), "bad_batch");
        assert_eq!(header_code(r#"{"table":"chats"}"#), "bad_batch");
        assert_eq!(Batch::decode(b"PK\x03\x04....").unwrap_err().code(), "bad_batch");
        let mut body = rows("chats", 1, 0, 0, b"").encode().unwrap();
        body.truncate(9);
        assert_eq!(Batch::decode(&body).unwrap_err().code(), "bad_batch");
    }

    #[test]
    fn a_payload_inflates_as_it_is_read_and_reports_every_byte() {
        let ndjson = b"{\"id\":\"a\"}\n".repeat(10_000);
        let body = rows("chats", 1, 1, 0, &ndjson).encode().unwrap();
        let Batch::Rows { deflated, .. } = Batch::decode(&body).unwrap() else { panic!("kind") };
        let mut counted = 0u64;
        let mut back = Vec::new();
        InflatingPayload::new(&deflated, |n| {
            counted += n;
            Ok(())
        })
        .read_to_end(&mut back)
        .unwrap();
        assert_eq!((back.len() as u64, counted), (ndjson.len() as u64, ndjson.len() as u64));
        let mut refused = InflatingPayload::new(&deflated, |_| Err(FormatError::DecompressedCap { limit: 7 }));
        let error = FormatError::from_io(refused.read_to_end(&mut Vec::new()).unwrap_err());
        assert_eq!(error.code(), "decompressed_cap");
        let mut damaged = InflatingPayload::new(b"\xff\xff\xff\xff", |_| Ok(()));
        assert_eq!(FormatError::from_io(damaged.read_to_end(&mut Vec::new()).unwrap_err()).code(), "bad_batch");
    }

    /// A batch's lines are inflated by their reader, never past the payload cap, whether
    /// whole ([`inflate_ndjson`]) or as they are read ([`InflatingPayload`], the server's).
    #[test]
    fn a_deflate_bomb_stops_at_the_payload_cap() {
        let zeros = vec![b' '; (MAX_BATCH_PAYLOAD_BYTES + 1024) as usize];
        let body = rows("chats", 1, 1, 0, &zeros).encode().unwrap();
        assert!(body.len() < 200_000);
        let Batch::Rows { deflated, .. } = Batch::decode(&body).unwrap() else { panic!("kind") };
        assert_eq!(inflate_ndjson(&deflated).unwrap_err().code(), "decompressed_cap");
        let mut reader = InflatingPayload::new(&deflated, |_| Ok(()));
        let error = FormatError::from_io(std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err());
        assert_eq!(error.code(), "decompressed_cap");
    }
}
