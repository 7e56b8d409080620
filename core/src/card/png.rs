//! The PNG card: the avatar as a PNG, its stale card chunks removed, the card written in
//! a `ccv3` text chunk as Lumiverse 1.1 writes it (`stripCardTextChunks`,
//! `embedPngTextChunk`), and beside it a `chara` chunk holding the card as CCSv2 for
//! readers that know only that one (Lumiverse writes none).
//!
//! Lumiverse reads chunk types and keywords as Node's `ascii` decoding reads bytes (the
//! high bit cleared), walks chunks without checking their CRCs, and stops removing at
//! `IEND` or at a chunk that runs past the end; so does this.

use base64::Engine;

use super::js::{JsObject, JsValue};
use crate::error::{FormatError, Result};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Text-chunk keywords that carry a card.
const CARD_KEYWORDS: [&[u8]; 2] = [b"ccv3", b"chara"];

/// A 1 × 1 transparent PNG: the picture of a character without an avatar.
pub(crate) fn transparent_pixel() -> Vec<u8> {
    let mut out = Vec::new();
    let pixel = image::RgbaImage::new(1, 1);
    // Writing a 1 × 1 picture to memory cannot fail.
    let _ = image::DynamicImage::ImageRgba8(pixel).write_with_encoder(image::codecs::png::PngEncoder::new(&mut out));
    out
}

/// Bytes as Node's `ascii` decoding sees them: the high bit of each cleared.
fn ascii_equal(bytes: &[u8], expected: &[u8]) -> bool {
    bytes.len() == expected.len() && bytes.iter().zip(expected).all(|(&b, &e)| b & 0x7f == e)
}

fn read_u32(bytes: &[u8], at: usize) -> usize {
    bytes.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// The PNG without its `tEXt`/`zTXt`/`iTXt` chunks whose keyword is `ccv3` or `chara`
/// (`None` when it has none, or is not a PNG). What follows `IEND`, or a chunk that runs
/// past the end, is dropped with them.
pub(crate) fn strip_card_chunks(png: &[u8]) -> Option<Vec<u8>> {
    if !png.starts_with(SIGNATURE) {
        return None;
    }
    let mut kept = SIGNATURE.to_vec();
    let mut stripped = false;
    let mut offset = SIGNATURE.len();
    while offset + 12 <= png.len() {
        let length = read_u32(png, offset);
        let kind = &png[offset + 4..offset + 8];
        let Some(end) = (offset + 12).checked_add(length).filter(|&end| end <= png.len()) else { break };
        let is_text = [b"tEXt", b"zTXt", b"iTXt"].iter().any(|t| ascii_equal(kind, *t));
        let data = &png[offset + 8..offset + 8 + length];
        let card = is_text
            && memchr::memchr(0, data).is_some_and(|nul| CARD_KEYWORDS.iter().any(|k| ascii_equal(&data[..nul], k)));
        if card {
            stripped = true;
        } else {
            kept.extend_from_slice(&png[offset..end]);
        }
        offset = end;
        if ascii_equal(kind, b"IEND") {
            break;
        }
    }
    stripped.then_some(kept)
}

/// A `tEXt` chunk: keyword, NUL, text (ASCII here), and its CRC.
fn text_chunk(keyword: &str, text: &str) -> Vec<u8> {
    let mut body = b"tEXt".to_vec();
    body.extend_from_slice(keyword.as_bytes());
    body.push(0);
    body.extend_from_slice(text.as_bytes());
    let mut chunk = ((body.len() - 4) as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    chunk
}

/// Where the first chunk of `kind` starts, walking chunk lengths as Lumiverse does.
fn chunk_at(png: &[u8], kind: &[u8]) -> Option<usize> {
    let mut offset = SIGNATURE.len();
    while offset + 12 <= png.len() {
        if ascii_equal(&png[offset + 4..offset + 8], kind) {
            return Some(offset);
        }
        offset = offset.checked_add(12 + read_u32(png, offset))?;
    }
    None
}

/// Inserts a `tEXt` chunk before the first `IDAT` (else before `IEND`).
pub(crate) fn insert_text_chunk(png: &[u8], keyword: &str, text: &str) -> Result<Vec<u8>> {
    if !png.starts_with(SIGNATURE) {
        return Err(FormatError::UnsupportedImage { detail: "not a PNG file".into() });
    }
    let at = chunk_at(png, b"IDAT").or_else(|| chunk_at(png, b"IEND")).ok_or_else(|| {
        FormatError::UnsupportedImage { detail: "the PNG has neither an IDAT nor an IEND chunk".into() }
    })?;
    let chunk = text_chunk(keyword, text);
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..at]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[at..]);
    Ok(out)
}

/// The card as CCSv2 for the `chara` chunk: the same data under `chara_card_v2` 2.0, with
/// the two fields CCSv2 requires and a CCSv3 card may lack (`character_version` `""`,
/// `extensions` `{}`) added.
fn as_ccsv2(card: &JsValue) -> JsValue {
    let mut data =
        card.as_object().and_then(|c| c.get("data")).and_then(JsValue::as_object).cloned().unwrap_or_default();
    if !data.contains_key("character_version") {
        data.insert("character_version", JsValue::from(""));
    }
    if !data.contains_key("extensions") {
        data.insert("extensions", JsValue::Object(JsObject::new()));
    }
    let mut v2 = JsObject::new();
    v2.insert("spec", JsValue::from("chara_card_v2"));
    v2.insert("spec_version", JsValue::from("2.0"));
    v2.insert("data", JsValue::Object(data));
    JsValue::Object(v2)
}

/// The PNG card from the avatar (already a PNG; `None` for none) and the CCSv3 card.
pub(crate) fn png_card(avatar: Option<Vec<u8>>, card: &JsValue) -> Result<Vec<u8>> {
    let avatar = avatar.unwrap_or_else(transparent_pixel);
    let avatar = strip_card_chunks(&avatar).unwrap_or(avatar);
    let base64 = |value: &JsValue| base64::engine::general_purpose::STANDARD.encode(value.to_json());
    let with_v3 = insert_text_chunk(&avatar, "ccv3", &base64(card))?;
    insert_text_chunk(&with_v3, "chara", &base64(&as_ccsv2(card)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        out
    }

    fn png_of(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        for c in chunks {
            out.extend_from_slice(c);
        }
        out
    }

    fn ihdr() -> Vec<u8> {
        chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0])
    }

    #[test]
    fn card_chunks_of_every_text_kind_are_removed_and_the_rest_kept() {
        let png = png_of(&[
            ihdr(),
            chunk(b"tEXt", b"chara\0old"),
            chunk(b"tEXt", b"Comment\0kept"),
            chunk(b"zTXt", b"ccv3\0\0xx"),
            chunk(b"iTXt", b"chara\0\0\0\0\0old"),
            chunk(b"tEXt", b"ccv3x\0kept too"),
            chunk(b"tEXt", b"no keyword end"),
            chunk(b"IDAT", b"pixels"),
            chunk(b"IEND", b""),
        ]);
        let expected = png_of(&[
            ihdr(),
            chunk(b"tEXt", b"Comment\0kept"),
            chunk(b"tEXt", b"ccv3x\0kept too"),
            chunk(b"tEXt", b"no keyword end"),
            chunk(b"IDAT", b"pixels"),
            chunk(b"IEND", b""),
        ]);
        assert_eq!(strip_card_chunks(&png).unwrap(), expected);
        assert_eq!(strip_card_chunks(&expected), None);
        assert_eq!(strip_card_chunks(b"GIF89a"), None);
    }

    #[test]
    fn types_and_keywords_are_read_without_their_high_bit() {
        // Node's `ascii` decoding: 0xe3 reads as 'c', 0xf4 as 't'.
        let png = png_of(&[ihdr(), chunk(b"\xf4EXt", b"\xe3cv3\0old"), chunk(b"IEND", b"")]);
        assert_eq!(strip_card_chunks(&png).unwrap(), png_of(&[ihdr(), chunk(b"IEND", b"")]));
    }

    #[test]
    fn removing_ends_at_iend_or_at_a_chunk_past_the_end() {
        let mut png = png_of(&[ihdr(), chunk(b"tEXt", b"chara\0x"), chunk(b"IEND", b"")]);
        png.extend_from_slice(b"trailing bytes");
        assert_eq!(strip_card_chunks(&png).unwrap(), png_of(&[ihdr(), chunk(b"IEND", b"")]));
        // A chunk claiming more bytes than there are ends the walk; it is dropped.
        let mut png = png_of(&[ihdr(), chunk(b"tEXt", b"ccv3\0x")]);
        png.extend_from_slice(&[0, 0, 1, 0, b'I', b'D', b'A', b'T', 1, 2, 3, 4]);
        assert_eq!(strip_card_chunks(&png).unwrap(), png_of(&[ihdr()]));
    }

    #[test]
    fn a_text_chunk_goes_before_the_first_idat_else_before_iend() {
        let idat = chunk(b"IDAT", b"a");
        let png = png_of(&[ihdr(), idat.clone(), idat.clone(), chunk(b"IEND", b"")]);
        let text = chunk(b"tEXt", b"ccv3\0e30=");
        assert_eq!(
            insert_text_chunk(&png, "ccv3", "e30=").unwrap(),
            png_of(&[ihdr(), text.clone(), idat.clone(), idat, chunk(b"IEND", b"")])
        );
        let png = png_of(&[ihdr(), chunk(b"IEND", b"")]);
        assert_eq!(insert_text_chunk(&png, "ccv3", "e30=").unwrap(), png_of(&[ihdr(), text, chunk(b"IEND", b"")]));
        for broken in [png_of(&[ihdr()]), b"not a png".to_vec()] {
            assert_eq!(insert_text_chunk(&broken, "ccv3", "").unwrap_err().code(), "unsupported_image");
        }
    }

    #[test]
    fn a_card_without_avatar_is_one_transparent_pixel_with_both_chunks() {
        let card =
            JsValue::parse(r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"N","tags":[]}}"#).unwrap();
        let png = png_card(None, &card).unwrap();
        let picture = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap().to_rgba8();
        assert_eq!((picture.dimensions(), picture.as_raw().as_slice()), ((1, 1), [0u8, 0, 0, 0].as_slice()));
        let texts: Vec<&[u8]> = png.windows(5).filter(|w| w == b"ccv3\0" || w == b"chara").collect();
        assert_eq!(texts, [b"ccv3\0".as_slice(), b"chara".as_slice()]);
        let v3 = base64::engine::general_purpose::STANDARD.encode(card.to_json());
        assert!(png.windows(v3.len()).any(|w| w == v3.as_bytes()));
        let v2 = r#"{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"N","tags":[],"character_version":"","extensions":{}}}"#;
        let v2 = base64::engine::general_purpose::STANDARD.encode(v2);
        assert!(png.windows(v2.len()).any(|w| w == v2.as_bytes()));
    }

    #[test]
    fn the_v2_card_keeps_fields_the_card_has() {
        let card = JsValue::parse(r#"{"data":{"name":"N","character_version":"1","extensions":{"a":1}}}"#).unwrap();
        assert_eq!(
            as_ccsv2(&card).to_json(),
            r#"{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"N","character_version":"1","extensions":{"a":1}}}"#
        );
    }
}
