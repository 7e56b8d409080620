//! The upload batch: how the browser sends a verified archive to the server piece by piece.
//! A batch is `LVB1`, a little-endian u32 header length, a JSON [`BatchHeader`], then the
//! payload: NDJSON lines (raw-deflated) for rows and vectors, a segment of the archive's own
//! deflate stream of a table (`crate::row_stream`), raw bytes for a file chunk,
//! an HPKE ciphertext for secrets, or, for a bundle, several small batches of those kinds
//! (one request instead of one each: a few-millisecond round trip per tiny table or
//! avatar added up). Both sides use this module; the server decodes every batch again
//! with the same caps, since a client can lie.

use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
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

/// What a batch carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum BatchHeader {
    /// Lines of `database/<table>.ndjson`, starting at line `first_line`: `lines` sent, and
    /// `held` more of the same stretch left out because the server said it has their ids
    /// (see `crate::upload`).
    Rows {
        table: String,
        first_line: u64,
        lines: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        held: u64,
    },
    /// The next `payload` bytes of the archive's own deflate stream of
    /// `database/<table>.ndjson`, starting `offset` bytes into it; `last` ends it (see
    /// `crate::row_stream`). Sent for a table none of whose rows the server holds.
    RowStream { table: String, offset: u64, last: bool },
    /// Lines of `lancedb/<table>.ndjson`.
    Vectors { table: String, first_line: u64, lines: u64 },
    /// Bytes `offset..offset + payload` of `files/<bucket>/<name>`, a file of `size` bytes.
    FileChunk { bucket: String, name: String, offset: u64, size: u64 },
    /// The decrypted secrets as a JSON array of `{key, value}`, sealed with HPKE to the
    /// import's key; `enc` is the encapsulated key in base64.
    Secrets { enc: String },
    /// Several whole batches (rows, row streams, vectors or file chunks; no bundles, no
    /// secrets) of the given lengths, one after another: applied in order, as if each had
    /// come on its own, under one batch number.
    Bundle { frames: Vec<u64> },
}

/// A batch, decoded and checked.
#[derive(Debug)]
pub enum Batch {
    Rows { table: String, first_line: u64, lines: u64, held: u64, ndjson: Vec<u8> },
    RowStream { table: String, offset: u64, last: bool, deflated: Vec<u8> },
    Vectors { table: String, first_line: u64, lines: u64, ndjson: Vec<u8> },
    FileChunk { bucket: FileBucket, name: String, offset: u64, size: u64, bytes: Vec<u8> },
    Secrets { enc: [u8; 32], sealed: Vec<u8> },
    Bundle(Vec<Batch>),
}

impl Batch {
    /// The batches this one stands for: a bundle's parts, or itself.
    pub fn parts(&self) -> Vec<&Batch> {
        match self {
            Batch::Bundle(parts) => parts.iter().collect(),
            one => vec![one],
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn bad(detail: impl Into<String>) -> FormatError {
    FormatError::BadBatch { detail: detail.into() }
}

/// Builds a batch; NDJSON payloads are deflated here (level 2: fast, and within 1.1x of an archive at level 6 for NDJSON).
pub fn encode_batch(header: &BatchHeader, payload: &[u8]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(header).map_err(|e| bad(e.to_string()))?;
    let length = u32::try_from(json.len()).map_err(|_| bad("header too long"))?;
    let mut out = Vec::with_capacity(payload.len() / 3 + json.len() + 8);
    out.extend_from_slice(BATCH_MAGIC);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&json);
    match header {
        BatchHeader::Rows { .. } | BatchHeader::Vectors { .. } => {
            let mut encoder = DeflateEncoder::new(out, Compression::new(2));
            encoder.write_all(payload).map_err(FormatError::Io)?;
            out = encoder.finish().map_err(FormatError::Io)?;
        }
        BatchHeader::RowStream { .. }
        | BatchHeader::FileChunk { .. }
        | BatchHeader::Secrets { .. }
        | BatchHeader::Bundle { .. } => out.extend_from_slice(payload),
    }
    Ok(out)
}

/// Builds a bundle of encoded batches (see [`BatchHeader::Bundle`]).
pub fn encode_bundle(frames: &[Vec<u8>]) -> Result<Vec<u8>> {
    let header = BatchHeader::Bundle { frames: frames.iter().map(|frame| frame.len() as u64).collect() };
    encode_batch(&header, &frames.concat())
}

/// The table name of a batch, through the entry-name sanitizer.
fn checked_table(table: &str, vectors: bool) -> Result<String> {
    let entry = if vectors { vector_entry_name(table) } else { table_entry_name(table) };
    match classify_entry_name(entry.as_bytes())? {
        EntryKind::Table { table } | EntryKind::VectorTable { table } => Ok(table),
        _ => Err(bad(format!("{table:?} is not a table name"))),
    }
}

fn inflate(compressed: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(16 << 20));
    let read = DeflateDecoder::new(compressed)
        .take(MAX_BATCH_PAYLOAD_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("the payload does not inflate: {e}")))?;
    if read as u64 > MAX_BATCH_PAYLOAD_BYTES {
        return Err(FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES });
    }
    Ok(out)
}

/// Decodes and checks a batch: magic, header, names (through the one sanitizer), chunk
/// bounds, and the inflated size. Lines are checked by whoever reads them (line cap, JSON).
pub fn decode_batch(body: &[u8]) -> Result<Batch> {
    decode(body, true)
}

/// Like [`decode_batch`], but NDJSON payloads stay deflated (`ndjson` holds the deflated
/// bytes) for [`inflate_ndjson`] later, so a server can acknowledge a batch before the
/// costly part of checking it.
pub fn decode_batch_deflated(body: &[u8]) -> Result<Batch> {
    decode(body, false)
}

/// Inflates an NDJSON payload held to [`MAX_BATCH_PAYLOAD_BYTES`].
pub fn inflate_ndjson(deflated: &[u8]) -> Result<Vec<u8>> {
    inflate(deflated)
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

fn decode(body: &[u8], inflate_now: bool) -> Result<Batch> {
    decode_frame(body, inflate_now, true)
}

/// The parts of a bundle: `frames` gives their lengths, which must cover `payload` exactly;
/// each part is decoded as a batch of its own, and may not be a bundle or secrets.
fn decode_bundle(frames: &[u64], payload: &[u8], inflate_now: bool) -> Result<Vec<Batch>> {
    if frames.is_empty() || frames.len() > MAX_BUNDLE_FRAMES {
        return Err(bad(format!("a bundle holds 1 to {MAX_BUNDLE_FRAMES} batches")));
    }
    let mut rest = payload;
    let mut parts = Vec::with_capacity(frames.len());
    let mut inflated = 0u64;
    for &length in frames {
        let length = usize::try_from(length).ok().filter(|&length| length <= rest.len());
        let Some(length) = length else { return Err(bad("a bundle's batches run past its end")) };
        let (frame, after) = rest.split_at(length);
        let part = decode_frame(frame, inflate_now, false)?;
        if matches!(part, Batch::Secrets { .. }) {
            return Err(bad("secrets come in a batch of their own"));
        }
        // Inflated here, the parts together are held to one batch's payload.
        if let (true, Batch::Rows { ndjson, .. } | Batch::Vectors { ndjson, .. }) = (inflate_now, &part) {
            inflated += ndjson.len() as u64;
            if inflated > MAX_BATCH_PAYLOAD_BYTES {
                return Err(FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES });
            }
        }
        parts.push(part);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad("a bundle has bytes after its last batch"));
    }
    Ok(parts)
}

fn decode_frame(body: &[u8], inflate_now: bool, bundle_allowed: bool) -> Result<Batch> {
    let ndjson = |payload: &[u8]| if inflate_now { inflate(payload) } else { Ok(payload.to_vec()) };
    if body.len() < 8 || &body[..4] != BATCH_MAGIC {
        return Err(bad("not an lvbak batch"));
    }
    let length = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
    if length > MAX_BATCH_HEADER_BYTES || body.len() < 8 + length {
        return Err(bad("the header length is out of bounds"));
    }
    let header: BatchHeader = serde_json::from_slice(&body[8..8 + length]).map_err(|e| bad(e.to_string()))?;
    let payload = &body[8 + length..];
    Ok(match header {
        BatchHeader::Rows { table, first_line, lines, held } => {
            Batch::Rows { table: checked_table(&table, false)?, first_line, lines, held, ndjson: ndjson(payload)? }
        }
        BatchHeader::RowStream { table, offset, last } => {
            Batch::RowStream { table: checked_table(&table, false)?, offset, last, deflated: payload.to_vec() }
        }
        BatchHeader::Vectors { table, first_line, lines } => {
            Batch::Vectors { table: checked_table(&table, true)?, first_line, lines, ndjson: ndjson(payload)? }
        }
        BatchHeader::FileChunk { bucket, name, offset, size } => {
            let entry = format!("files/{bucket}/{name}");
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
        BatchHeader::Secrets { enc } => {
            let enc = BASE64
                .decode(&enc)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| bad("the encapsulated key is not 32 bytes of base64"))?;
            Batch::Secrets { enc, sealed: payload.to_vec() }
        }
        BatchHeader::Bundle { .. } if !bundle_allowed => return Err(bad("a bundle inside a bundle")),
        BatchHeader::Bundle { frames } => Batch::Bundle(decode_bundle(&frames, payload, inflate_now)?),
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

    /// The bytes of one batch of every kind, as the browser sent them before the batch
    /// types became one: a server must read them, and an uploader must write them, as they
    /// are.
    #[test]
    fn encoded_batches_keep_their_bytes() {
        let rows = encode_batch(
            &BatchHeader::Rows { table: "chats".into(), first_line: 3, lines: 2, held: 1 },
            b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n",
        )
        .unwrap();
        let unheld =
            encode_batch(&BatchHeader::Rows { table: "chats".into(), first_line: 1, lines: 1, held: 0 }, b"{}\n")
                .unwrap();
        let stream =
            encode_batch(&BatchHeader::RowStream { table: "messages".into(), offset: 7, last: true }, b"\x03\x00")
                .unwrap();
        let vectors = encode_batch(
            &BatchHeader::Vectors { table: "embeddings".into(), first_line: 1, lines: 1 },
            b"{\"id\":\"v\",\"vector_b64\":null}\n",
        )
        .unwrap();
        let chunk = encode_batch(
            &BatchHeader::FileChunk { bucket: "theme-assets".into(), name: "b/a.css".into(), offset: 2, size: 6 },
            b"dy",
        )
        .unwrap();
        let secrets = encode_batch(&BatchHeader::Secrets { enc: BASE64.encode([7u8; 32]) }, b"sealed").unwrap();
        let bundle = encode_bundle(&[unheld.clone(), chunk.clone()]).unwrap();
        let encoded = [rows, unheld, stream, vectors, chunk, secrets, bundle];
        for (body, pinned) in encoded.iter().zip(PINNED_BATCHES) {
            assert_eq!(hex::encode(body), pinned);
            decode_batch_deflated(body).unwrap();
        }
    }

    #[test]
    fn rows_round_trip_deflated() {
        let header = BatchHeader::Rows { table: "chats".into(), first_line: 1, lines: 2, held: 0 };
        let ndjson = b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n".repeat(100);
        let body = encode_batch(&header, &ndjson).unwrap();
        assert!(body.len() < ndjson.len() / 4);
        let Batch::Rows { table, ndjson: back, .. } = decode_batch(&body).unwrap() else { panic!("kind") };
        assert_eq!((table.as_str(), back), ("chats", ndjson));
    }

    #[test]
    fn a_bundle_carries_whole_batches_in_order_and_nothing_else() {
        let rows =
            encode_batch(&BatchHeader::Rows { table: "chats".into(), first_line: 1, lines: 1, held: 0 }, b"{}\n")
                .unwrap();
        let chunk = BatchHeader::FileChunk {
            bucket: "images".into(),
            name: "0b6c4a9e-3d5f-4c1e-9a7b-2f8e6d4c3b2a.png".into(),
            offset: 0,
            size: 3,
        };
        let file = encode_batch(&chunk, b"png").unwrap();
        let bundle = encode_bundle(&[rows.clone(), file.clone()]).unwrap();
        let Batch::Bundle(parts) = decode_batch(&bundle).unwrap() else { panic!("kind") };
        assert!(matches!(&parts[0], Batch::Rows { table, ndjson, .. } if table == "chats" && ndjson == b"{}\n"));
        assert!(matches!(&parts[1], Batch::FileChunk { bytes, .. } if bytes == b"png"));

        let code = |frames: Vec<u64>, payload: &[u8]| {
            decode_batch(&encode_batch(&BatchHeader::Bundle { frames }, payload).unwrap()).unwrap_err().code()
        };
        let both = [rows.as_slice(), file.as_slice()].concat();
        let (rows_len, file_len) = (rows.len() as u64, file.len() as u64);
        assert_eq!(code(vec![rows_len, file_len + 1], &both), "bad_batch", "past the end");
        assert_eq!(code(vec![rows_len], &both), "bad_batch", "bytes left over");
        assert_eq!(code(vec![], b""), "bad_batch", "empty");
        assert_eq!(code(vec![0; MAX_BUNDLE_FRAMES + 1], b""), "bad_batch", "too many");
        assert_eq!(code(vec![bundle.len() as u64], &bundle), "bad_batch", "nested");
        let secrets = encode_batch(&BatchHeader::Secrets { enc: BASE64.encode([7u8; 32]) }, b"sealed").unwrap();
        assert_eq!(code(vec![secrets.len() as u64], &secrets), "bad_batch", "secrets");
        // A part is checked as a batch of its own: names through the sanitizer.
        let traversal =
            encode_batch(&BatchHeader::Rows { table: "../x".into(), first_line: 1, lines: 0, held: 0 }, b"").unwrap();
        assert_eq!(code(vec![traversal.len() as u64], &traversal), "path_traversal");
    }

    #[test]
    fn hostile_batches_are_refused_with_codes() {
        let code = |header: BatchHeader, payload: &[u8]| {
            decode_batch(&encode_batch(&header, payload).unwrap()).unwrap_err().code()
        };
        let chunk = |name: &str, offset, size| BatchHeader::FileChunk {
            bucket: "images".into(),
            name: name.into(),
            offset,
            size,
        };
        assert_eq!(code(chunk("../../etc/passwd", 0, 3), b"abc"), "path_traversal");
        assert_eq!(code(chunk("0b6c4a9e-3d5f-4c1e-9a7b-2f8e6d4c3b2a.png", 2, 3), b"abc"), "bad_batch");
        assert_eq!(
            code(BatchHeader::Rows { table: "../x".into(), first_line: 1, lines: 0, held: 0 }, b""),
            "path_traversal"
        );
        assert_eq!(code(BatchHeader::Secrets { enc: "AAAA".into() }, b""), "bad_batch");
        assert_eq!(decode_batch(b"PK\x03\x04....").unwrap_err().code(), "bad_batch");
        let mut body =
            encode_batch(&BatchHeader::Rows { table: "chats".into(), first_line: 1, lines: 0, held: 0 }, b"").unwrap();
        body.truncate(9);
        assert_eq!(decode_batch(&body).unwrap_err().code(), "bad_batch");
    }

    #[test]
    fn a_payload_inflates_as_it_is_read_and_reports_every_byte() {
        let ndjson = b"{\"id\":\"a\"}\n".repeat(10_000);
        let body =
            encode_batch(&BatchHeader::Rows { table: "chats".into(), first_line: 1, lines: 1, held: 0 }, &ndjson)
                .unwrap();
        let Batch::Rows { ndjson: deflated, .. } = decode_batch_deflated(&body).unwrap() else { panic!("kind") };
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

    #[test]
    fn a_deflate_bomb_stops_at_the_payload_cap() {
        let header = BatchHeader::Rows { table: "chats".into(), first_line: 1, lines: 1, held: 0 };
        let zeros = vec![b' '; (MAX_BATCH_PAYLOAD_BYTES + 1024) as usize];
        let body = encode_batch(&header, &zeros).unwrap();
        assert!(body.len() < 200_000);
        assert_eq!(decode_batch(&body).unwrap_err().code(), "decompressed_cap");
    }
}
