//! Small but real media for demo accounts: a PNG (zlib-compressed RGB gradient), a 1×1
//! lossless WebP (for thumbnails) and a short WAV tone (a completion sound that sniffs as
//! audio).

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A `width`×`height` RGB PNG whose colours depend on `seed`.
pub fn png(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width * 3 + 1) * height) as usize);
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.push(((x * 255 / width.max(1)) as u8).wrapping_add(seed as u8));
            raw.push((y * 255 / height.max(1)) as u8);
            raw.push(((seed * 47) % 256) as u8);
        }
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    let _ = encoder.write_all(&raw);
    let compressed = encoder.finish().unwrap_or_default();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &header);
    png_chunk(&mut out, b"IDAT", &compressed);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Packs bits least-significant first, as VP8L wants.
struct BitWriter {
    bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        for bit in 0..bits {
            if self.used.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if value >> bit & 1 == 1 {
                if let Some(last) = self.bytes.last_mut() {
                    *last |= 1 << (self.used % 8);
                }
            }
            self.used += 1;
        }
    }
}

/// A 1×1 lossless WebP of one colour: every prefix code is a one-symbol "simple" code, so
/// the single pixel costs no bits.
pub fn webp_1x1(red: u8, green: u8, blue: u8) -> Vec<u8> {
    let mut bits = BitWriter { bytes: Vec::new(), used: 0 };
    bits.put(0x2f, 8); // VP8L signature
    bits.put(0, 14); // width - 1
    bits.put(0, 14); // height - 1
    bits.put(0, 1); // no alpha in use
    bits.put(0, 3); // version 0
    bits.put(0, 1); // no transform
    bits.put(0, 1); // no colour cache
    bits.put(0, 1); // no meta prefix codes
    for symbol in [green, red, blue, 255] {
        bits.put(1, 1); // simple code
        bits.put(0, 1); // one symbol
        bits.put(1, 1); // eight-bit symbol
        bits.put(u32::from(symbol), 8);
    }
    bits.put(1, 1); // distance code: simple,
    bits.put(0, 1); // one symbol,
    bits.put(0, 1); // one-bit symbol,
    bits.put(0, 1); // value 0
    let mut payload = bits.bytes;
    let chunk_len = payload.len() as u32;
    if payload.len() % 2 == 1 {
        payload.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(4 + 8 + payload.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WEBPVP8L");
    out.extend_from_slice(&chunk_len.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// A short 8-bit mono WAV tone.
pub fn wav_tone(hertz: f64, milliseconds: u32) -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = RATE * milliseconds / 1000;
    let data: Vec<u8> = (0..samples)
        .map(|i| (128.0 + 90.0 * (2.0 * std::f64::consts::PI * hertz * f64::from(i) / f64::from(RATE)).sin()) as u8)
        .collect();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes()); // bytes per second
    out.extend_from_slice(&1u16.to_le_bytes()); // block align
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}
