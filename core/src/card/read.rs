//! Reading a character card back, to check it: a JSON card (CCSv3, CCSv2 or the flat V1),
//! a PNG carrying one base64-encoded in a `ccv3` or `chara` text chunk (`ccv3` preferred, as
//! SillyTavern and Lumiverse read them), or a CHARX's `card.json`. The kind is told from
//! the first bytes, never from the name. What it holds is shown through [`CardView`].
//!
//! A card file is as hostile as an archive. A PNG is walked chunk by chunk through the
//! caller's `Read + Seek` (only text chunks are read, and only a card chunk whole): a chunk
//! that runs past the end, has a length over 2³¹ − 1, a type that is not four letters, a
//! card chunk whose CRC-32 does not match, or a file that ends before `IEND` is
//! `bad_png_chunk`; a card chunk over [`MAX_CARD_BYTES`] is `too_large` before it is read. A
//! CHARX goes through the strict ZIP reader (names checked, counts and sizes capped) and only
//! `card.json` is inflated, under the same cap. Nothing here allocates by a claimed size
//! past that cap.

use std::io::{Read, Seek, SeekFrom};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::view::{card_view, CardSource, CardView};
use crate::container::{EntryNames, ZipContainer};
use crate::error::{FormatError, Result};
use crate::limits::Limits;

/// The largest card read: a JSON file, a PNG's card chunk (its base64 text), a CHARX's
/// `card.json`, each.
pub const MAX_CARD_BYTES: u64 = 16 << 20;

/// Chunks a PNG may have before the walk gives up (a real one has a few thousand at most).
const MAX_PNG_CHUNKS: u64 = 1 << 20;

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// The caps a CHARX is opened under: Lumiverse's archive caps, fewer entries.
const CHARX_LIMITS: Limits = Limits { max_entries: 100_000, ..Limits::STANDARD };

/// Reads the card a file holds and what it says (see the module documentation).
pub fn read_card<R: Read + Seek>(mut reader: R) -> Result<CardView> {
    let size = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 8];
    let head_len = read_up_to(&mut reader, &mut head)?;
    let head = &head[..head_len];
    let (source, json, assets) = if head.starts_with(PNG_SIGNATURE) {
        let (source, text) = png_card_text(&mut reader, size)?;
        (source, decode_base64(source, &text)?, None)
    } else if head.starts_with(ZIP_MAGIC) {
        let (json, assets) = charx_card(reader)?;
        (CardSource::Charx, json, Some(assets))
    } else if starts_like_json(head) {
        if size > MAX_CARD_BYTES {
            return Err(too_large("the JSON card", size));
        }
        reader.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::with_capacity(size as usize);
        reader.take(MAX_CARD_BYTES).read_to_end(&mut bytes)?;
        (CardSource::Json, bytes, None)
    } else {
        let found = head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        let found = if found.is_empty() { "nothing (the file is empty)".to_string() } else { found };
        return Err(FormatError::NotACard { detail: format!("it starts with {found}, not JSON, a PNG or a CHARX") });
    };
    let json = json.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(&json);
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| FormatError::BadCard { what: source.what().into(), detail: format!("not JSON: {e}") })?;
    card_view(source, &value, assets)
}

/// Fills `buffer` as far as the reader has bytes; answers how many.
fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Whether a file's first bytes could begin a JSON object (after a BOM and white space).
fn starts_like_json(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(head);
    head.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b == b'{')
}

fn too_large(what: &str, actual: u64) -> FormatError {
    FormatError::TooLarge { what: what.into(), limit: MAX_CARD_BYTES, actual }
}

fn decode_base64(source: CardSource, text: &[u8]) -> Result<Vec<u8>> {
    // Padding as writers leave it; white space around the text as some add it.
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    engine
        .decode(text.trim_ascii())
        .map_err(|e| FormatError::BadCard { what: source.what().into(), detail: format!("not base64: {e}") })
}

/// A malformed chunk: the index of the chunk, where it starts.
fn bad_chunk(index: u64, offset: u64, detail: impl Into<String>) -> FormatError {
    FormatError::BadPngChunk { index, offset, detail: detail.into() }
}

/// The text of the PNG's card chunk (`ccv3` before `chara`), walking every chunk to `IEND`.
fn png_card_text<R: Read + Seek>(reader: &mut R, size: u64) -> Result<(CardSource, Vec<u8>)> {
    let mut offset = PNG_SIGNATURE.len() as u64;
    let (mut ccv3, mut chara) = (None, None);
    for index in 0..MAX_PNG_CHUNKS {
        if offset >= size {
            return Err(bad_chunk(index, offset, "the file ends before an IEND chunk"));
        }
        if size - offset < 12 {
            return Err(bad_chunk(index, offset, format!("only {} bytes are left; a chunk takes 12", size - offset)));
        }
        reader.seek(SeekFrom::Start(offset))?;
        let mut header = [0u8; 8];
        reader.read_exact(&mut header)?;
        let length = u64::from(u32::from_be_bytes([header[0], header[1], header[2], header[3]]));
        let kind = [header[4], header[5], header[6], header[7]];
        if length > 0x7fff_ffff {
            return Err(bad_chunk(index, offset, format!("its length {length} is over 2^31 - 1")));
        }
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(bad_chunk(index, offset, format!("its type {kind:02x?} is not four letters")));
        }
        let end = offset + 12 + length;
        if end > size {
            return Err(bad_chunk(index, offset, format!("its {length} bytes run past the end of the file")));
        }
        if &kind == b"IEND" {
            return match (ccv3, chara) {
                (Some(text), _) => Ok((CardSource::Ccv3Chunk, text)),
                (None, Some(text)) => Ok((CardSource::CharaChunk, text)),
                (None, None) => Err(FormatError::NotACard { detail: "the PNG has no ccv3 or chara text chunk".into() }),
            };
        }
        if matches!(&kind, b"tEXt" | b"zTXt" | b"iTXt") {
            let mut prefix = vec![0u8; length.min(80) as usize];
            reader.read_exact(&mut prefix)?;
            let keyword = prefix.iter().position(|&b| b == 0).map(|nul| &prefix[..nul]);
            let slot = match keyword {
                Some(k) if k == b"ccv3" && ccv3.is_none() => Some((&mut ccv3, "ccv3")),
                Some(k) if k == b"chara" && chara.is_none() => Some((&mut chara, "chara")),
                _ => None,
            };
            if let Some((slot, keyword)) = slot {
                if length > MAX_CARD_BYTES {
                    return Err(too_large(&format!("the PNG's {keyword} chunk"), length));
                }
                reader.seek(SeekFrom::Start(offset + 4))?;
                let mut body = vec![0u8; 4 + length as usize + 4];
                reader.read_exact(&mut body)?;
                let (typed, crc) = body.split_at(4 + length as usize);
                if crc32fast::hash(typed) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
                    return Err(bad_chunk(index, offset, format!("the {keyword} chunk fails its CRC-32 check")));
                }
                let data = &typed[4 + keyword.len() + 1..];
                *slot = Some(chunk_text(&kind, data).map_err(|detail| bad_chunk(index, offset, detail))?);
            }
        }
        offset = end;
    }
    Err(bad_chunk(MAX_PNG_CHUNKS, offset, format!("the PNG has more than {MAX_PNG_CHUNKS} chunks")))
}

/// The text of a text chunk after its keyword and NUL: `tEXt` as it is, `zTXt` inflated,
/// `iTXt` past its flags and tags (inflated when compressed). Inflating stops at the cap.
fn chunk_text(kind: &[u8; 4], data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let compressed = match kind {
        b"tEXt" => return Ok(data.to_vec()),
        b"zTXt" => data.split_first().filter(|(method, _)| **method == 0).map(|(_, rest)| rest),
        _ => {
            let (&flag, rest) = data.split_first().ok_or("the iTXt chunk is cut short")?;
            let (_method, rest) = rest.split_first().ok_or("the iTXt chunk is cut short")?;
            let language = rest.iter().position(|&b| b == 0).ok_or("the iTXt chunk has no language tag")?;
            let rest = &rest[language + 1..];
            let translated = rest.iter().position(|&b| b == 0).ok_or("the iTXt chunk has no translated keyword")?;
            let text = &rest[translated + 1..];
            if flag == 0 {
                return Ok(text.to_vec());
            }
            Some(text)
        }
    };
    let compressed = compressed.ok_or("the text chunk uses an unknown compression method")?;
    let mut text = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_CARD_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("its compressed text is damaged: {e}"))?;
    if text.len() as u64 > MAX_CARD_BYTES {
        return Err(format!("its text inflates past the {MAX_CARD_BYTES}-byte card cap"));
    }
    Ok(text)
}

/// A CHARX's `card.json` and how many entries it has under `assets/`.
fn charx_card<R: Read + Seek>(reader: R) -> Result<(Vec<u8>, usize)> {
    let zip = ZipContainer::open_named(reader, &CHARX_LIMITS, EntryNames::Card)?;
    let assets = zip.entries().iter().filter(|e| e.name.starts_with("assets/") && !e.name.ends_with('/')).count();
    let index = zip
        .index_of("card.json")
        .ok_or_else(|| FormatError::NotACard { detail: "the ZIP has no card.json: it is not a CHARX".into() })?;
    Ok((zip.read_entry(index, MAX_CARD_BYTES)?, assets))
}
