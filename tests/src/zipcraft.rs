//! A ZIP writer that will write what a real writer never would: duplicate names, entries
//! sharing bytes, local headers that disagree with the central directory, lying sizes,
//! wrapped entry counts. Each knob exists for one attack in the corpus.

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::Compression;

/// One entry as the crafter writes it.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    /// The entry's content before compression.
    pub data: Vec<u8>,
    /// 0 stored, 8 deflated; anything else is written as-is (data stored).
    pub method: u16,
    pub flags: u16,
    pub made_by: u16,
    pub external_attributes: u32,
    /// Write a data descriptor (flag bit 3) and zeros in the local header, as Lumiverse does.
    pub data_descriptor: bool,
    /// Size claimed in both headers instead of the real one.
    pub claimed_size: Option<u64>,
    /// CRC-32 written instead of the real one.
    pub claimed_crc: Option<u32>,
    /// Name written in the local header instead of `name`.
    pub local_name: Option<Vec<u8>>,
    /// Point the central record at another entry's local header instead of writing one.
    pub alias_of: Option<usize>,
}

impl RawEntry {
    /// A deflated entry written the way Lumiverse writes one.
    pub fn deflated(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            method: 8,
            flags: 0x0008,
            made_by: 0x032d,
            external_attributes: 0x81a4_0020,
            data_descriptor: true,
            claimed_size: None,
            claimed_crc: None,
            local_name: None,
            alias_of: None,
        }
    }

    /// A stored entry (files are stored).
    pub fn stored(name: &str, data: &[u8]) -> Self {
        Self { method: 0, ..Self::deflated(name, data) }
    }

    /// The same entry under a name given as raw bytes.
    pub fn named(mut self, name: &[u8]) -> Self {
        self.name = name.to_vec();
        self
    }
}

/// How the archive ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndRecords {
    /// ZIP64 end record and locator before a classic EOCD full of sentinels (Lumiverse).
    Zip64,
    /// A classic EOCD only.
    Classic,
}

/// A whole archive to craft.
#[derive(Clone, Debug)]
pub struct RawZip {
    pub entries: Vec<RawEntry>,
    pub end: EndRecords,
    /// Entry count written in the end records instead of the real one.
    pub claimed_count: Option<u64>,
}

impl RawZip {
    pub fn new(entries: Vec<RawEntry>) -> Self {
        Self { entries, end: EndRecords::Zip64, claimed_count: None }
    }

    /// The archive's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::with_capacity(self.entries.len());
        let mut sealed = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let compressed = match entry.method {
                8 => deflate(&entry.data),
                _ => entry.data.clone(),
            };
            let crc = entry.claimed_crc.unwrap_or_else(|| crc32(&entry.data));
            let size = entry.claimed_size.unwrap_or(entry.data.len() as u64);
            if let Some(original) = entry.alias_of {
                offsets.push(offsets.get(original).copied().unwrap_or(0));
                sealed.push((crc, compressed.len() as u64, size));
                continue;
            }
            offsets.push(out.len() as u64);
            let local_name = entry.local_name.as_ref().unwrap_or(&entry.name);
            let (local_crc, local_compressed, local_size) =
                if entry.data_descriptor { (0, 0, 0) } else { (crc, compressed.len() as u32, size as u32) };
            put32(&mut out, 0x0403_4b50);
            put16(&mut out, 20);
            put16(&mut out, entry.flags);
            put16(&mut out, entry.method);
            put16(&mut out, 0);
            put16(&mut out, 0x5b76);
            put32(&mut out, local_crc);
            put32(&mut out, local_compressed);
            put32(&mut out, local_size);
            put16(&mut out, local_name.len() as u16);
            put16(&mut out, 0);
            out.extend_from_slice(local_name);
            out.extend_from_slice(&compressed);
            if entry.data_descriptor {
                put32(&mut out, 0x0807_4b50);
                put32(&mut out, crc);
                put32(&mut out, compressed.len() as u32);
                put32(&mut out, size as u32);
            }
            sealed.push((crc, compressed.len() as u64, size));
        }
        let directory_offset = out.len() as u64;
        for ((entry, &offset), &(crc, compressed, size)) in self.entries.iter().zip(&offsets).zip(&sealed) {
            put32(&mut out, 0x0201_4b50);
            put16(&mut out, entry.made_by);
            put16(&mut out, 20);
            put16(&mut out, entry.flags);
            put16(&mut out, entry.method);
            put16(&mut out, 0);
            put16(&mut out, 0x5b76);
            put32(&mut out, crc);
            put32(&mut out, compressed as u32);
            put32(&mut out, size as u32);
            put16(&mut out, entry.name.len() as u16);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put16(&mut out, 0);
            put32(&mut out, entry.external_attributes);
            put32(&mut out, offset as u32);
            out.extend_from_slice(&entry.name);
        }
        let directory_size = out.len() as u64 - directory_offset;
        let count = self.claimed_count.unwrap_or(self.entries.len() as u64);
        match self.end {
            EndRecords::Zip64 => {
                let record_offset = out.len() as u64;
                put32(&mut out, 0x0606_4b50);
                put64(&mut out, 44);
                put16(&mut out, 45);
                put16(&mut out, 45);
                put32(&mut out, 0);
                put32(&mut out, 0);
                put64(&mut out, count);
                put64(&mut out, count);
                put64(&mut out, directory_size);
                put64(&mut out, directory_offset);
                put32(&mut out, 0x0706_4b50);
                put32(&mut out, 0);
                put64(&mut out, record_offset);
                put32(&mut out, 1);
                put32(&mut out, 0x0605_4b50);
                put16(&mut out, 0);
                put16(&mut out, 0);
                put16(&mut out, 0xffff);
                put16(&mut out, 0xffff);
                put32(&mut out, 0xffff_ffff);
                put32(&mut out, 0xffff_ffff);
                put16(&mut out, 0);
            }
            EndRecords::Classic => {
                put32(&mut out, 0x0605_4b50);
                put16(&mut out, 0);
                put16(&mut out, 0);
                put16(&mut out, count as u16);
                put16(&mut out, count as u16);
                put32(&mut out, directory_size as u32);
                put32(&mut out, directory_offset as u32);
                put16(&mut out, 0);
            }
        }
        out
    }
}

/// Raw deflate at Lumiverse's level.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::new(3));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(data);
    hasher.finalize()
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}
