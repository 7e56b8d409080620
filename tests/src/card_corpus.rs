//! The hostile card-file corpus: one named case per attack on the card reader (JSON, PNG,
//! CHARX), each with the exact code reading the card back must give, and valid cards of
//! every kind (so the corpus also proves what must pass). Core (native and wasm32) and the
//! CLI run this one table. Every valid card is the character [`CARD_NAME`].

use std::io::Write;

use base64::Engine as _;
use flate2::write::ZlibEncoder;

use crate::zipcraft::{RawEntry, RawZip};

/// The name of the character every valid case holds.
pub const CARD_NAME: &str = "Aria of the Lanterns";

/// One card file and what must become of it.
#[derive(Clone, Debug)]
pub struct CardCase {
    pub name: &'static str,
    /// `None`: the card reads. `Some(code)`: it must be refused with exactly `code`.
    pub expected: Option<&'static str>,
    pub bytes: Vec<u8>,
}

/// The largest card the reader takes (16 MiB), as the corpus knows it.
pub const CARD_CAP: usize = 16 << 20;

/// A CCSv3 card with two book entries.
pub fn card_v3() -> String {
    serde_json::json!({
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": CARD_NAME,
            "description": "Keeps the harbour lights.",
            "first_mes": "The lanterns are lit.",
            "tags": ["harbour", "night"],
            "alternate_greetings": ["Evening.", "Again?"],
            "character_book": {
                "name": "Harbour lore",
                "entries": [
                    {"keys": ["lantern"], "content": "Lanterns burn whale oil.", "comment": "oil", "enabled": true},
                    {"keys": ["tide", "moon"], "content": "The tide turns at midnight.", "enabled": false}
                ]
            }
        }
    })
    .to_string()
}

/// The card as CCSv2.
fn card_v2() -> String {
    card_v3().replace("chara_card_v3", "chara_card_v2").replace("\"3.0\"", "\"2.0\"")
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A PNG chunk with its length and CRC-32.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    chunk
}

fn text_chunk(keyword: &str, text: &str) -> Vec<u8> {
    png_chunk(b"tEXt", format!("{keyword}\0{text}").as_bytes())
}

/// A 1 × 1 transparent PNG with these chunks between its IHDR and its IDAT.
pub fn png_with(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]));
    for chunk in chunks {
        png.extend_from_slice(chunk);
    }
    // One filter byte and four zero bytes, deflated (zlib).
    png.extend(png_chunk(b"IDAT", &zlib(&[0, 0, 0, 0, 0])));
    png.extend(png_chunk(b"IEND", b""));
    png
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// A CHARX of these entries.
fn charx(entries: Vec<RawEntry>) -> Vec<u8> {
    RawZip::new(entries).build()
}

fn charx_card(card_json: &[u8]) -> Vec<u8> {
    charx(vec![
        RawEntry::deflated("card.json", card_json),
        RawEntry::stored("assets/icon/image/main.png", &png_with(&[])),
    ])
}

/// Every case, valid ones first.
pub fn card_cases() -> Vec<CardCase> {
    let case = |name, expected, bytes| CardCase { name, expected, bytes };
    let v3 = card_v3();
    let ccv3 = text_chunk("ccv3", &base64(&v3));
    let mut ztxt = b"ccv3\0\0".to_vec();
    ztxt.extend(zlib(base64(&v3).as_bytes()));
    let mut itxt = b"chara\0\x01\0\0\0".to_vec();
    itxt.extend(zlib(base64(&card_v2()).as_bytes()));
    let mut bomb = b"ccv3\0\0".to_vec();
    bomb.extend(zlib(&vec![b'A'; CARD_CAP + 1]));
    let png = png_with(std::slice::from_ref(&ccv3));
    let iend_at = png.len() - 12;
    let v1 = serde_json::json!({"name": CARD_NAME, "description": "Keeps the harbour lights."}).to_string();
    vec![
        case("valid_json_v3", None, v3.clone().into_bytes()),
        case("valid_json_v2_with_bom", None, [b"\xef\xbb\xbf \n".as_slice(), card_v2().as_bytes()].concat()),
        case("valid_json_v1", None, v1.clone().into_bytes()),
        case("valid_png_ccv3_and_chara", None, png_with(&[ccv3.clone(), text_chunk("chara", &base64(&card_v2()))])),
        case("valid_png_chara_only_v1", None, png_with(&[text_chunk("chara", &base64(&v1))])),
        case("valid_png_ztxt_ccv3", None, png_with(&[png_chunk(b"zTXt", &ztxt)])),
        case("valid_png_itxt_compressed_chara", None, png_with(&[png_chunk(b"iTXt", &itxt)])),
        case("valid_charx", None, charx_card(v3.as_bytes())),
        case(
            "valid_charx_with_folder_entries_and_unicode_names",
            None,
            charx(vec![
                RawEntry { external_attributes: 0x10, ..RawEntry::stored("assets/", b"") },
                RawEntry::deflated("card.json", v3.as_bytes()),
                RawEntry::stored("assets/other/image/ランタン.png", &png_with(&[])),
            ]),
        ),
        case("empty_file", Some("not_a_card"), Vec::new()),
        case("plain_text", Some("not_a_card"), b"Aria keeps the harbour lights.".to_vec()),
        case("json_array", Some("not_a_card"), b"[1, 2, 3]".to_vec()),
        case("json_without_spec_or_name", Some("not_a_card"), b"{\"hello\": \"world\"}".to_vec()),
        case("json_broken", Some("bad_card"), b"{\"spec\": \"chara_card_v3\", \"data\": {".to_vec()),
        case("json_v3_without_data", Some("bad_card"), b"{\"spec\": \"chara_card_v3\"}".to_vec()),
        case(
            "json_v3_name_not_text",
            Some("bad_card"),
            b"{\"spec\": \"chara_card_v3\", \"data\": {\"name\": 7}}".to_vec(),
        ),
        case(
            "json_book_not_object",
            Some("bad_card"),
            serde_json::json!({"spec": "chara_card_v3", "data": {"name": CARD_NAME, "character_book": [1]}})
                .to_string()
                .into_bytes(),
        ),
        case("json_over_the_cap", Some("too_large"), [b"{}".as_slice(), &vec![b' '; CARD_CAP]].concat()),
        case("png_without_card_chunk", Some("not_a_card"), png_with(&[text_chunk("Comment", "just a picture")])),
        case("png_chunk_past_the_end", Some("bad_png_chunk"), {
            let mut cut = png.clone();
            cut[iend_at..iend_at + 4].copy_from_slice(&1000u32.to_be_bytes());
            cut
        }),
        case("png_chunk_length_over_2_31", Some("bad_png_chunk"), {
            let mut huge = png.clone();
            huge[8..12].copy_from_slice(&0x8000_0000u32.to_be_bytes());
            huge
        }),
        case("png_chunk_type_not_letters", Some("bad_png_chunk"), png_with(&[png_chunk(b"t\0Xt", b"x")])),
        case("png_card_chunk_crc_mismatch", Some("bad_png_chunk"), {
            let mut broken = png.clone();
            // The last byte of the ccv3 chunk's CRC (it follows the 33-byte signature and IHDR).
            let crc_at = 33 + ccv3.len() - 1;
            broken[crc_at] ^= 0xff;
            broken
        }),
        case("png_without_iend", Some("bad_png_chunk"), png[..iend_at].to_vec()),
        case("png_cut_inside_a_chunk_header", Some("bad_png_chunk"), png[..iend_at + 5].to_vec()),
        case(
            "png_card_chunk_over_16_mib",
            Some("too_large"),
            png_with(&[text_chunk("ccv3", &"A".repeat(CARD_CAP + 1))]),
        ),
        case("png_card_chunk_inflates_past_16_mib", Some("bad_png_chunk"), png_with(&[png_chunk(b"zTXt", &bomb)])),
        case("png_card_not_base64", Some("bad_card"), png_with(&[text_chunk("ccv3", "%%% not base64 %%%")])),
        case("png_card_not_json", Some("bad_card"), png_with(&[text_chunk("ccv3", &base64("not json"))])),
        case("charx_without_card_json", Some("not_a_card"), charx(vec![RawEntry::stored("assets/a.png", b"x")])),
        case("charx_card_not_json", Some("bad_card"), charx_card(b"{ nope")),
        case(
            "charx_entry_climbing_out",
            Some("path_traversal"),
            charx(vec![RawEntry::deflated("card.json", v3.as_bytes()), RawEntry::stored("../../evil.png", b"x")]),
        ),
        case("charx_card_json_over_16_mib", Some("too_large"), charx_card(&vec![b' '; CARD_CAP + 1])),
        case("charx_card_json_lying_size", Some("size_mismatch"), {
            let mut entry = RawEntry::deflated("card.json", &[v3.as_bytes(), &vec![b' '; 100_000]].concat());
            entry.claimed_size = Some(v3.len() as u64);
            charx(vec![entry])
        }),
    ]
}
