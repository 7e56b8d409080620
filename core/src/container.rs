//! The ZIP container, read strictly through a caller's `Read + Seek`.
//!
//! [`ZipContainer::open`] reads only the end records and the central directory: magic bytes,
//! EOCD / ZIP64 locator / ZIP64 EOCD, the entry-count cap, every name through the sanitizer,
//! methods, encryption, symlinks, directories, duplicates, overlaps and the claimed sizes.
//! An entry's local header is checked against the central directory when that entry is
//! opened ([`ZipContainer::open_entry`]), and its data descriptor, length and CRC-32 when
//! its last byte has been read, so inspecting a multi-GB archive never reads its bulk.
//! Entries are opened through a shared reference: each reader reads at its own position
//! through a lock on the caller's reader, so a reader may stay open while its owner (the
//! uploader's state machine, `crate::upload`) does other things between reads.
//!
//! Why not `zip::ZipArchive` for this: it keys entries by name (a duplicate silently replaces
//! the first), falls back to earlier end records when the last is bad, and sizes its tables
//! from the claimed entry count. A validator must see every record exactly once.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use parking_lot::Mutex;

use flate2::bufread::DeflateDecoder;

use crate::entry_name::{classify_card_entry_name, classify_entry_name, EntryKind};
use crate::error::{FormatError, Result};
use crate::limits::Limits;

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const DATA_DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;

/// The first four bytes of every archive (FORMAT §1): the signature of its first local
/// header.
pub const ZIP_MAGIC: [u8; 4] = LOCAL_HEADER_SIGNATURE.to_le_bytes();

/// Whether a file starting with `head` (its first four bytes, or all of a shorter file) is
/// a ZIP file, or `not_zip` saying what it starts with. The container, the Worker (through
/// it) and the server's raw upload (before it stages a byte) all ask here.
pub fn check_zip_magic(head: &[u8]) -> Result<()> {
    if head == ZIP_MAGIC {
        return Ok(());
    }
    let found = if head.is_empty() {
        "nothing (the file is empty)".to_string()
    } else {
        head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    };
    Err(FormatError::NotZip { found })
}

const LOCAL_HEADER_LEN: u64 = 30;
const CENTRAL_HEADER_LEN: usize = 46;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_MIN_LEN: usize = 56;
const ZIP64_EXTRA_ID: u16 = 0x0001;

const FLAG_ENCRYPTED: u16 = 0x0001;
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
const FLAG_STRONG_ENCRYPTION: u16 = 0x0040;
const FLAG_MASKED_HEADERS: u16 = 0x2000;

/// The central directory is read into memory whole; beyond this size we refuse rather than
/// allocate. (Ours, not Lumiverse's: 500,000 entries with typical names need ~70 MB, while
/// 500,000 names of 4 KiB would need 2 GiB.)
pub const MAX_CENTRAL_DIRECTORY_BYTES: u64 = 256 * 1024 * 1024;

/// How an entry's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Stored,
    Deflated,
}

/// One central-directory record that passed every check.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub compression: Compression,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub crc32: u32,
    flags: u16,
    local_header_offset: u64,
    /// Where this entry's bytes must end: the next local header or the central directory.
    data_limit: u64,
    /// The name of what starts at `data_limit`, for error messages.
    next_name: String,
}

/// The caller's reader, with its position remembered so that seeking to where it already
/// is costs nothing. (Entries are mostly read front to back; a real seek would throw away
/// a `BufReader`'s buffer, or cost a browser a new `File.slice()`.)
pub(crate) struct Tracked<R> {
    inner: R,
    position: Option<u64>,
}

impl<R: Read + Seek> Read for Tracked<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buffer) {
            Ok(read) => {
                self.position = self.position.map(|at| at + read as u64);
                Ok(read)
            }
            Err(error) => {
                self.position = None;
                Err(error)
            }
        }
    }
}

impl<R: Read + Seek> Seek for Tracked<R> {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        if let (SeekFrom::Start(wanted), Some(at)) = (target, self.position) {
            if wanted == at {
                return Ok(at);
            }
        }
        self.position = None;
        let at = self.inner.seek(target)?;
        self.position = Some(at);
        Ok(at)
    }
}

/// Which names a container's entries may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryNames {
    /// A `.lvbak`: every name through [`classify_entry_name`].
    Archive,
    /// A CHARX card: any safe name ([`classify_card_entry_name`]), empty folder entries
    /// allowed (general ZIP tools write them).
    Card,
}

/// A ZIP file whose end records and central directory have been validated.
pub struct ZipContainer<R> {
    reader: Mutex<Tracked<R>>,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    archive_bytes: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn corrupt(what: impl Into<String>) -> FormatError {
    FormatError::CorruptArchive { what: what.into() }
}

fn truncated(what: impl Into<String>) -> FormatError {
    FormatError::Truncated { what: what.into() }
}

fn read_at<R: Read + Seek>(reader: &mut R, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
    reader.seek(SeekFrom::Start(offset))?;
    read_exact_here(reader, len, what)
}

/// Where the central directory is, according to the end records.
struct CentralDirectoryLocation {
    offset: u64,
    size: u64,
    entries: u64,
    /// Entry counts in a classic EOCD are 16 bits; a ZIP64 record has the full count.
    count_is_exact: bool,
}

impl<R: Read + Seek> ZipContainer<R> {
    /// Validates the container: everything but the entries' local headers and data.
    pub fn open(reader: R, limits: &Limits) -> Result<Self> {
        Self::open_named(reader, limits, EntryNames::Archive)
    }

    /// [`Self::open`] with entries named by `names`' rule.
    pub(crate) fn open_named(reader: R, limits: &Limits, names: EntryNames) -> Result<Self> {
        let mut reader = Tracked { inner: reader, position: None };
        let archive_bytes = reader.seek(SeekFrom::End(0))?;
        let head_len = archive_bytes.min(4) as usize;
        let head = read_at(&mut reader, 0, head_len, "the file")?;
        check_zip_magic(&head)?;
        if archive_bytes > limits.max_archive_bytes {
            return Err(FormatError::TooLarge {
                what: "the archive".into(),
                limit: limits.max_archive_bytes,
                actual: archive_bytes,
            });
        }
        let location = locate_central_directory(&mut reader, archive_bytes)?;
        if location.entries > limits.max_entries {
            return Err(FormatError::TooManyEntries { limit: limits.max_entries, actual: location.entries });
        }
        if location.size > MAX_CENTRAL_DIRECTORY_BYTES {
            return Err(FormatError::TooLarge {
                what: "the central directory".into(),
                limit: MAX_CENTRAL_DIRECTORY_BYTES,
                actual: location.size,
            });
        }
        let directory = read_at(&mut reader, location.offset, location.size as usize, "the central directory")?;
        let mut entries = parse_central_directory(&directory, limits, names)?;
        let count = entries.len() as u64;
        let count_matches = if location.count_is_exact {
            count == location.entries
        } else {
            count == location.entries && count <= u64::from(u16::MAX)
        };
        if !count_matches {
            return Err(corrupt(format!(
                "the end record says {} entries, the central directory holds {count}",
                location.entries
            )));
        }

        let mut by_name = HashMap::with_capacity(entries.len());
        let mut claimed_total: u64 = 0;
        for (index, entry) in entries.iter().enumerate() {
            if by_name.insert(entry.name.clone(), index).is_some() {
                return Err(FormatError::DuplicateEntry { name: entry.name.clone() });
            }
            if entry.kind.is_metadata() && entry.uncompressed_size > limits.max_metadata_bytes {
                return Err(FormatError::TooLarge {
                    what: entry.name.clone(),
                    limit: limits.max_metadata_bytes,
                    actual: entry.uncompressed_size,
                });
            }
            // Every entry is later held to producing no more than it claims, so the claimed
            // total bounds what inflating the whole archive can ever produce.
            claimed_total = claimed_total.saturating_add(entry.uncompressed_size);
            if claimed_total > limits.max_decompressed_bytes {
                return Err(FormatError::DecompressedCap { limit: limits.max_decompressed_bytes });
            }
        }
        fence_entries(&mut entries, location.offset)?;
        Ok(Self { reader: Mutex::new(reader), entries, by_name, archive_bytes })
    }

    /// Every entry, in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the entry with this exact name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The size of the archive file.
    pub fn archive_bytes(&self) -> u64 {
        self.archive_bytes
    }

    /// Entry indices in the order their bytes appear in the file, for sequential reading.
    pub fn indices_in_file_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by_key(|&i| self.entries[i].local_header_offset);
        order
    }

    /// Checks the entry's local header against its central record and returns a reader of
    /// its inflated bytes. The reader fails with `size_mismatch` as soon as the entry
    /// produces more than its header claims, and at the end checks length, CRC-32 and the
    /// data descriptor.
    pub fn open_entry(&self, index: usize) -> Result<EntryReader<'_, R>> {
        let entry = self.entries.get(index).ok_or_else(|| corrupt(format!("no entry number {index}")))?;
        // The local header is read front to back, leaving the reader at the data.
        let data_start = check_local_header(&mut *self.reader.lock(), entry)?;
        let raw = RawEntry { reader: &self.reader, at: data_start, left: entry.compressed_size };
        let decoder = match entry.compression {
            Compression::Stored => Decoder::Stored(raw),
            Compression::Deflated => Decoder::Deflated(Box::new(DeflateDecoder::new(BufReader::with_capacity(
                64 * 1024,
                Tap { inner: raw, tapped: None },
            )))),
        };
        Ok(EntryReader { decoder, entry, data_start, produced: 0, crc: crc32fast::Hasher::new(), finished: false })
    }

    /// Reads a whole entry into memory, refusing it past `cap` bytes.
    pub fn read_entry(&self, index: usize, cap: u64) -> Result<Vec<u8>> {
        let entry = self.entries.get(index).ok_or_else(|| corrupt(format!("no entry number {index}")))?;
        if entry.uncompressed_size > cap {
            return Err(FormatError::TooLarge {
                what: entry.name.clone(),
                limit: cap,
                actual: entry.uncompressed_size,
            });
        }
        let capacity = entry.uncompressed_size as usize;
        let mut reader = self.open_entry(index)?;
        let mut bytes = Vec::with_capacity(capacity);
        reader.read_to_end(&mut bytes).map_err(FormatError::from_io)?;
        Ok(bytes)
    }

    /// Checks the entry's local header against its central record (as [`Self::open_entry`]
    /// does) and answers where its stored or deflated bytes start, for a reader of its own
    /// (`crate::line_index`).
    pub(crate) fn data_start(&mut self, index: usize) -> Result<u64> {
        let entry = self.entries.get(index).ok_or_else(|| corrupt(format!("no entry number {index}")))?;
        check_local_header(self.reader.get_mut(), entry)
    }

    /// The reader under the container, for a reader of an entry's bytes of its own.
    pub(crate) fn raw_reader(&mut self) -> &mut Tracked<R> {
        self.reader.get_mut()
    }

    /// The checks an entry gets once its last byte was inflated by a reader of its own:
    /// its length, CRC-32 and data descriptor, as [`EntryReader`] checks them.
    pub(crate) fn check_end(&mut self, index: usize, crc32: u32, produced: u64) -> Result<()> {
        let entry = self.entries.get(index).ok_or_else(|| corrupt(format!("no entry number {index}")))?;
        if produced != entry.uncompressed_size {
            let (name, claimed) = (entry.name.clone(), entry.uncompressed_size);
            return Err(FormatError::SizeMismatch { name, claimed, actual: produced });
        }
        if crc32 != entry.crc32 {
            return Err(FormatError::CrcMismatch { name: entry.name.clone() });
        }
        if entry.flags & FLAG_DATA_DESCRIPTOR != 0 {
            let reader = self.reader.get_mut();
            let data_end = check_local_header(reader, entry)? + entry.compressed_size;
            check_data_descriptor(reader, entry, data_end)?;
        }
        Ok(())
    }

    /// Gives the caller's reader back.
    pub fn into_inner(self) -> R {
        self.reader.into_inner().inner
    }
}

/// Finds the EOCD (which must end exactly at the end of the file), follows the ZIP64
/// locator when there is one, and checks that the central directory ends where the end
/// records begin.
fn locate_central_directory<R: Read + Seek>(reader: &mut R, archive_bytes: u64) -> Result<CentralDirectoryLocation> {
    let tail_len = archive_bytes.min((EOCD_LEN + u16::MAX as usize) as u64) as usize;
    if tail_len < EOCD_LEN {
        return Err(truncated("no end-of-central-directory record"));
    }
    let tail_start = archive_bytes - tail_len as u64;
    let tail = read_at(reader, tail_start, tail_len, "the end record")?;
    let signature = EOCD_SIGNATURE.to_le_bytes();
    let eocd_at = (0..=tail_len - EOCD_LEN)
        .rev()
        .find(|&at| tail[at..at + 4] == signature && at + EOCD_LEN + u16_at(&tail, at + 20) as usize == tail_len)
        .ok_or_else(|| truncated("no end-of-central-directory record at the end of the file"))?;
    let eocd = &tail[eocd_at..eocd_at + EOCD_LEN];
    let eocd_offset = tail_start + eocd_at as u64;
    let disk = u16_at(eocd, 4);
    let directory_disk = u16_at(eocd, 6);
    let entries_here = u16_at(eocd, 8);
    let entries = u16_at(eocd, 10);
    let size = u32_at(eocd, 12);
    let offset = u32_at(eocd, 16);
    if entries_here != entries || (disk != 0 && disk != u16::MAX) || (directory_disk != 0 && directory_disk != u16::MAX)
    {
        return Err(corrupt("multi-disk archives are not supported"));
    }

    let has_locator = eocd_offset >= ZIP64_LOCATOR_LEN as u64 && {
        let locator = read_at(reader, eocd_offset - ZIP64_LOCATOR_LEN as u64, 4, "the ZIP64 locator")?;
        locator == ZIP64_LOCATOR_SIGNATURE.to_le_bytes()
    };
    if !has_locator {
        if size == u32::MAX || offset == u32::MAX {
            return Err(truncated("the end record points to ZIP64 records that are not there"));
        }
        let location = CentralDirectoryLocation {
            offset: u64::from(offset),
            size: u64::from(size),
            entries: u64::from(entries),
            count_is_exact: false,
        };
        return check_directory_fits(location, eocd_offset);
    }

    let locator_offset = eocd_offset - ZIP64_LOCATOR_LEN as u64;
    let locator = read_at(reader, locator_offset, ZIP64_LOCATOR_LEN, "the ZIP64 locator")?;
    let record_offset = u64_at(&locator, 8);
    if u32_at(&locator, 4) != 0 || u32_at(&locator, 16) > 1 {
        return Err(corrupt("multi-disk archives are not supported"));
    }
    if record_offset.saturating_add(ZIP64_EOCD_MIN_LEN as u64) > locator_offset {
        return Err(corrupt("the ZIP64 locator points past itself"));
    }
    let record = read_at(reader, record_offset, ZIP64_EOCD_MIN_LEN, "the ZIP64 end record")?;
    if u32_at(&record, 0) != ZIP64_EOCD_SIGNATURE {
        return Err(corrupt("the ZIP64 locator does not point at a ZIP64 end record"));
    }
    // The record (with any extensible data) must end exactly where the locator starts.
    if record_offset.checked_add(12).and_then(|end| end.checked_add(u64_at(&record, 4))) != Some(locator_offset) {
        return Err(corrupt("the ZIP64 end record's length does not reach the locator"));
    }
    if u32_at(&record, 16) != 0 || u32_at(&record, 20) != 0 {
        return Err(corrupt("multi-disk archives are not supported"));
    }
    let location = CentralDirectoryLocation {
        entries: u64_at(&record, 32),
        size: u64_at(&record, 40),
        offset: u64_at(&record, 48),
        count_is_exact: true,
    };
    if u64_at(&record, 24) != location.entries {
        return Err(corrupt("multi-disk archives are not supported"));
    }
    // A classic field is either the ZIP64 sentinel or the same value.
    let agrees = |classic: u64, sentinel: u64, full: u64| classic == sentinel || classic == full;
    if !agrees(u64::from(entries), u64::from(u16::MAX), location.entries)
        || !agrees(u64::from(size), u64::from(u32::MAX), location.size)
        || !agrees(u64::from(offset), u64::from(u32::MAX), location.offset)
    {
        return Err(corrupt("the classic and ZIP64 end records disagree"));
    }
    check_directory_fits(location, record_offset)
}

fn check_directory_fits(location: CentralDirectoryLocation, end_records_at: u64) -> Result<CentralDirectoryLocation> {
    match location.offset.checked_add(location.size) {
        Some(end) if end == end_records_at => Ok(location),
        Some(end) if end > end_records_at => Err(truncated("the central directory runs past the end records")),
        _ => Err(corrupt("the central directory does not end where the end records begin")),
    }
}

/// The fields of a ZIP64 extended-information extra field that a record needs.
struct Zip64Needs {
    uncompressed: bool,
    compressed: bool,
    offset: bool,
}

/// Reads the ZIP64 values out of an extra-field block; `None` where not needed.
fn zip64_values(extra: &[u8], needs: &Zip64Needs, name: &str) -> Result<[Option<u64>; 3]> {
    let mut at = 0;
    while at < extra.len() {
        if at + 4 > extra.len() {
            return Err(corrupt(format!("entry {name:?} has a damaged extra field")));
        }
        let id = u16_at(extra, at);
        let len = u16_at(extra, at + 2) as usize;
        let data = extra
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| corrupt(format!("entry {name:?} has a damaged extra field")))?;
        if id == ZIP64_EXTRA_ID {
            let mut values = [None; 3];
            let mut cursor = 0;
            for (slot, needed) in [needs.uncompressed, needs.compressed, needs.offset].into_iter().enumerate() {
                if needed {
                    if cursor + 8 > data.len() {
                        return Err(corrupt(format!("entry {name:?} has a short ZIP64 extra field")));
                    }
                    values[slot] = Some(u64_at(data, cursor));
                    cursor += 8;
                }
            }
            return Ok(values);
        }
        at += 4 + len;
    }
    if needs.uncompressed || needs.compressed || needs.offset {
        return Err(corrupt(format!("entry {name:?} needs a ZIP64 extra field and has none")));
    }
    Ok([None; 3])
}

fn parse_central_directory(directory: &[u8], limits: &Limits, names: EntryNames) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < directory.len() {
        if entries.len() as u64 >= limits.max_entries {
            // The end record's count was small (perhaps wrapped at 16 bits); the directory
            // itself says otherwise.
            return Err(FormatError::TooManyEntries { limit: limits.max_entries, actual: entries.len() as u64 + 1 });
        }
        let header = directory
            .get(at..at + CENTRAL_HEADER_LEN)
            .ok_or_else(|| corrupt(format!("central record {} is cut short", entries.len())))?;
        if u32_at(header, 0) != CENTRAL_HEADER_SIGNATURE {
            return Err(corrupt(format!("central record {} has a bad signature", entries.len())));
        }
        let made_by = u16_at(header, 4);
        let flags = u16_at(header, 8);
        let method = u16_at(header, 10);
        let crc32 = u32_at(header, 16);
        let compressed32 = u32_at(header, 20);
        let uncompressed32 = u32_at(header, 24);
        let name_len = u16_at(header, 28) as usize;
        let extra_len = u16_at(header, 30) as usize;
        let comment_len = u16_at(header, 32) as usize;
        let disk_start = u16_at(header, 34);
        let external_attributes = u32_at(header, 38);
        let offset32 = u32_at(header, 42);
        let name_start = at + CENTRAL_HEADER_LEN;
        let record_end = name_start + name_len + extra_len + comment_len;
        if record_end > directory.len() {
            return Err(corrupt(format!("central record {} is cut short", entries.len())));
        }
        let raw_name = &directory[name_start..name_start + name_len];
        let extra = &directory[name_start + name_len..name_start + name_len + extra_len];
        let shown_name = String::from_utf8_lossy(raw_name).into_owned();

        if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS) != 0 {
            return Err(FormatError::EncryptedEntry { name: shown_name });
        }
        let compression = match method {
            0 => Compression::Stored,
            8 => Compression::Deflated,
            other => return Err(FormatError::UnsupportedCompression { name: shown_name, method: other }),
        };
        // Unix hosts keep the file type in the high half of the external attributes;
        // MS-DOS attributes keep a directory bit in the low byte.
        let unix_mode = external_attributes >> 16;
        if made_by >> 8 == 3 && unix_mode & 0o170000 == 0o120000 {
            return Err(FormatError::SymlinkEntry { name: shown_name });
        }
        let is_directory = (made_by >> 8 == 3 && unix_mode & 0o170000 == 0o040000) || external_attributes & 0x10 != 0;
        let empty = compressed32 == 0 && uncompressed32 == 0;
        if is_directory && !(names == EntryNames::Card && empty) {
            return Err(FormatError::DirectoryEntry { name: shown_name });
        }
        let kind = match names {
            EntryNames::Archive => classify_entry_name(raw_name)?,
            EntryNames::Card => classify_card_entry_name(raw_name)?,
        };
        if disk_start != 0 && disk_start != u16::MAX {
            return Err(corrupt("multi-disk archives are not supported"));
        }
        let needs = Zip64Needs {
            uncompressed: uncompressed32 == u32::MAX,
            compressed: compressed32 == u32::MAX,
            offset: offset32 == u32::MAX,
        };
        let [uncompressed64, compressed64, offset64] = zip64_values(extra, &needs, &shown_name)?;
        let entry = Entry {
            name: shown_name,
            kind,
            compression,
            compressed_size: compressed64.unwrap_or(u64::from(compressed32)),
            uncompressed_size: uncompressed64.unwrap_or(u64::from(uncompressed32)),
            crc32,
            flags,
            local_header_offset: offset64.unwrap_or(u64::from(offset32)),
            data_limit: 0,
            next_name: String::new(),
        };
        if entry.compression == Compression::Stored && entry.compressed_size != entry.uncompressed_size {
            return Err(FormatError::HeaderMismatch {
                name: entry.name,
                field: "sizes (a stored entry must have equal compressed and uncompressed sizes)".into(),
            });
        }
        entries.push(entry);
        at = record_end;
    }
    Ok(entries)
}

/// Sorts the entries by position and gives each the offset its bytes must end before.
/// Any two entries whose minimal footprints (local header, name, data) intersect, or an
/// entry that runs into the central directory, are refused: overlapping entries are how
/// the best-compressing zip bombs reuse one blob of data many times.
fn fence_entries(entries: &mut [Entry], directory_offset: u64) -> Result<()> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].local_header_offset);
    for (position, &index) in order.iter().enumerate() {
        let (limit, next_name) = match order.get(position + 1) {
            Some(&next) => (entries[next].local_header_offset, entries[next].name.clone()),
            None => (directory_offset, "(central directory)".to_string()),
        };
        let entry = &mut entries[index];
        let minimal_end = entry
            .local_header_offset
            .checked_add(LOCAL_HEADER_LEN + entry.name.len() as u64)
            .and_then(|end| end.checked_add(entry.compressed_size));
        if minimal_end.is_none_or(|end| end > limit) {
            return Err(FormatError::OverlappingEntries { first: entry.name.clone(), second: next_name });
        }
        entry.data_limit = limit;
        entry.next_name = next_name;
    }
    Ok(())
}

/// Reads the local header of `entry`, checks it against the central record, and returns
/// where the entry's data starts.
fn check_local_header<R: Read + Seek>(reader: &mut R, entry: &Entry) -> Result<u64> {
    let mismatch = |field: &str| FormatError::HeaderMismatch { name: entry.name.clone(), field: field.to_string() };
    let header = read_at(reader, entry.local_header_offset, LOCAL_HEADER_LEN as usize, "a local header")?;
    if u32_at(&header, 0) != LOCAL_HEADER_SIGNATURE {
        return Err(mismatch("the local header signature"));
    }
    let flags = u16_at(&header, 6);
    let method = u16_at(&header, 8);
    let crc32 = u32_at(&header, 14);
    let compressed32 = u32_at(&header, 18);
    let uncompressed32 = u32_at(&header, 22);
    let name_len = u16_at(&header, 26) as usize;
    let extra_len = u16_at(&header, 28) as usize;
    if (flags ^ entry.flags) & (FLAG_ENCRYPTED | FLAG_DATA_DESCRIPTOR) != 0 {
        return Err(mismatch("flags"));
    }
    let central_method = match entry.compression {
        Compression::Stored => 0,
        Compression::Deflated => 8,
    };
    if method != central_method {
        return Err(mismatch("compression method"));
    }
    let rest = read_at(reader, entry.local_header_offset + LOCAL_HEADER_LEN, name_len + extra_len, "a local header")?;
    if &rest[..name_len] != entry.name.as_bytes() {
        return Err(mismatch("name"));
    }
    // Local ZIP64 extra fields carry both sizes whenever either is a sentinel.
    let sentinel = compressed32 == u32::MAX || uncompressed32 == u32::MAX;
    let needs = Zip64Needs { uncompressed: sentinel, compressed: sentinel, offset: false };
    let [uncompressed64, compressed64, _] = zip64_values(&rest[name_len..], &needs, &entry.name)?;
    let compressed = compressed64.unwrap_or(u64::from(compressed32));
    let uncompressed = uncompressed64.unwrap_or(u64::from(uncompressed32));
    let deferred = flags & FLAG_DATA_DESCRIPTOR != 0;
    // With a data descriptor the local values may be zero; otherwise they must agree.
    let agrees = |local: u64, central: u64| local == central || (deferred && local == 0);
    if !agrees(u64::from(crc32), u64::from(entry.crc32)) {
        return Err(mismatch("CRC-32"));
    }
    if !agrees(compressed, entry.compressed_size) || !agrees(uncompressed, entry.uncompressed_size) {
        return Err(mismatch("sizes"));
    }
    let data_start = entry.local_header_offset + LOCAL_HEADER_LEN + (name_len + extra_len) as u64;
    if data_start.saturating_add(entry.compressed_size) > entry.data_limit {
        return Err(FormatError::OverlappingEntries { first: entry.name.clone(), second: entry.next_name.clone() });
    }
    Ok(data_start)
}

/// Checks the data descriptor that follows the data of an entry written with flag bit 3:
/// optional signature, CRC-32, then sizes of 4 bytes each (or 8 in the ZIP64 form). Reads
/// exactly the descriptor, so the next local header follows without a seek.
fn check_data_descriptor<R: Read + Seek>(reader: &mut R, entry: &Entry, data_end: u64) -> Result<()> {
    let mismatch = || FormatError::HeaderMismatch { name: entry.name.clone(), field: "data descriptor".into() };
    let room = entry.data_limit.saturating_sub(data_end);
    if room < 12 {
        return Err(mismatch());
    }
    let first = read_at(reader, data_end, 4, "a data descriptor")?;
    let (crc_at, mut body) =
        if u32_at(&first, 0) == DATA_DESCRIPTOR_SIGNATURE { (data_end + 4, Vec::new()) } else { (data_end, first) };
    let short_len = (crc_at - data_end) + 12;
    if short_len > room {
        return Err(mismatch());
    }
    body.extend(read_exact_here(reader, 12 - body.len(), "a data descriptor")?);
    if u32_at(&body, 0) != entry.crc32 {
        return Err(mismatch());
    }
    if u64::from(u32_at(&body, 4)) == entry.compressed_size && u64::from(u32_at(&body, 8)) == entry.uncompressed_size {
        return Ok(());
    }
    // The ZIP64 form: two 8-byte sizes.
    if short_len + 8 > room {
        return Err(mismatch());
    }
    body.extend(read_exact_here(reader, 8, "a data descriptor")?);
    if u64_at(&body, 4) == entry.compressed_size && u64_at(&body, 12) == entry.uncompressed_size {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Reads `len` bytes from where the reader is.
fn read_exact_here<R: Read>(reader: &mut R, len: usize, what: &str) -> Result<Vec<u8>> {
    let mut buffer = vec![0u8; len];
    reader.read_exact(&mut buffer).map_err(|error| match error.kind() {
        io::ErrorKind::UnexpectedEof => truncated(format!("{what} ends past the end of the file")),
        _ => FormatError::from_io(error),
    })?;
    Ok(buffer)
}

/// An entry's bytes as stored in the archive (deflated or not), read at the entry's own
/// position through the lock on the caller's reader (a seek to where the reader already is
/// costs nothing: see [`Tracked`]).
struct RawEntry<'a, R> {
    reader: &'a Mutex<Tracked<R>>,
    /// Where the next byte is in the archive.
    at: u64,
    /// Bytes of the entry not read yet.
    left: u64,
}

impl<R: Read + Seek> Read for RawEntry<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let wanted = usize::try_from(self.left).unwrap_or(usize::MAX).min(buffer.len());
        if wanted == 0 {
            return Ok(0);
        }
        let mut reader = self.reader.lock();
        reader.seek(SeekFrom::Start(self.at))?;
        let read = reader.read(&mut buffer[..wanted])?;
        self.at += read as u64;
        self.left -= read as u64;
        Ok(read)
    }
}

enum Decoder<'a, R> {
    Stored(RawEntry<'a, R>),
    Deflated(Box<DeflateDecoder<BufReader<Tap<RawEntry<'a, R>>>>>),
}

/// A reader that can keep a copy of what passes through it (an entry's deflated bytes, for
/// a client that sends them on as they are: see `crate::upload`).
struct Tap<T> {
    inner: T,
    tapped: Option<Vec<u8>>,
}

impl<T: Read> Read for Tap<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if let Some(tapped) = &mut self.tapped {
            tapped.extend_from_slice(&buffer[..read]);
        }
        Ok(read)
    }
}

/// The inflated bytes of one entry, checked as they are produced.
pub struct EntryReader<'a, R> {
    decoder: Decoder<'a, R>,
    entry: &'a Entry,
    data_start: u64,
    produced: u64,
    crc: crc32fast::Hasher,
    finished: bool,
}

impl<R: Read + Seek> EntryReader<'_, R> {
    /// The entry being read.
    pub fn entry(&self) -> &Entry {
        self.entry
    }

    /// For a stored entry, where its bytes lie in the archive (offset, length), so a caller
    /// holding the file can copy them without passing them through memory. Reading this
    /// reader to its end still checks them (length, CRC-32, data descriptor).
    pub fn stored_range(&self) -> Option<(u64, u64)> {
        (self.entry.compression == Compression::Stored).then_some((self.data_start, self.entry.compressed_size))
    }

    /// For a deflated entry, starts keeping a copy of its deflated bytes as they are read
    /// (before any is read: `false` for a stored entry, or once reading began), for
    /// [`Self::take_deflated`].
    pub fn keep_deflated(&mut self) -> bool {
        match &mut self.decoder {
            Decoder::Deflated(inflater) if self.produced == 0 => {
                inflater.get_mut().get_mut().tapped = Some(Vec::new());
                true
            }
            _ => false,
        }
    }

    /// The entry's deflated bytes read since the last call (with [`Self::keep_deflated`]):
    /// read ahead of the inflated bytes handed out so far, and all of them by the end.
    pub fn take_deflated(&mut self) -> Vec<u8> {
        match &mut self.decoder {
            Decoder::Deflated(inflater) => inflater.get_mut().get_mut().tapped.as_mut().map(std::mem::take),
            Decoder::Stored(_) => None,
        }
        .unwrap_or_default()
    }

    /// Whether every deflated byte of the entry has been read (into the tap, with
    /// [`Self::keep_deflated`]): the deflated bytes taken next hold the stream's end.
    pub fn deflated_read_through(&self) -> bool {
        match &self.decoder {
            Decoder::Deflated(inflater) => inflater.get_ref().get_ref().inner.left == 0,
            Decoder::Stored(raw) => raw.left == 0,
        }
    }

    fn read_checked(&mut self, buffer: &mut [u8]) -> Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let read = match &mut self.decoder {
            Decoder::Stored(raw) => raw.read(buffer).map_err(FormatError::from_io)?,
            Decoder::Deflated(inflater) => inflater.read(buffer).map_err(|error| match error.kind() {
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                    FormatError::CorruptEntry { name: self.entry.name.clone(), detail: error.to_string() }
                }
                _ => FormatError::from_io(error),
            })?,
        };
        self.produced += read as u64;
        if self.produced > self.entry.uncompressed_size {
            return Err(FormatError::SizeMismatch {
                name: self.entry.name.clone(),
                claimed: self.entry.uncompressed_size,
                actual: self.produced,
            });
        }
        self.crc.update(&buffer[..read]);
        if read == 0 && !buffer.is_empty() {
            self.finish()?;
        }
        Ok(read)
    }

    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        if self.produced != self.entry.uncompressed_size {
            return Err(FormatError::SizeMismatch {
                name: self.entry.name.clone(),
                claimed: self.entry.uncompressed_size,
                actual: self.produced,
            });
        }
        if self.crc.clone().finalize() != self.entry.crc32 {
            return Err(FormatError::CrcMismatch { name: self.entry.name.clone() });
        }
        if self.entry.flags & FLAG_DATA_DESCRIPTOR != 0 {
            let data_end = self.data_start + self.entry.compressed_size;
            let reader = match &self.decoder {
                Decoder::Stored(raw) => raw.reader,
                Decoder::Deflated(inflater) => inflater.get_ref().get_ref().inner.reader,
            };
            check_data_descriptor(&mut *reader.lock(), self.entry, data_end)?;
        }
        Ok(())
    }
}

impl<R: Read + Seek> Read for EntryReader<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.read_checked(buffer).map_err(FormatError::into_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_header_signature_is_a_zip() {
        assert!(check_zip_magic(b"PK\x03\x04").is_ok());
        let found = |head: &[u8]| match check_zip_magic(head) {
            Err(FormatError::NotZip { found }) => found,
            other => format!("{other:?}"),
        };
        assert_eq!(found(b""), "nothing (the file is empty)");
        assert_eq!(found(b"PK"), "50 4b");
        assert_eq!(found(b"PK\x05\x06"), "50 4b 05 06");
        assert_eq!(found(b"%PDF"), "25 50 44 46");
    }
}
