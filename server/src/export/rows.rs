//! Encoding a table's rows as NDJSON the way Lumiverse's `JSON.stringify` of a SQLite row
//! does (columns in table order; integral reals as integers), with the export scrubs of the
//! registry (secret settings dropped, `has_api_key` written as 0), and collecting the files
//! each row names.

use std::io::Write as _;

use lvbak_core::entry_name::is_lower_uuid;
use lvbak_core::ndjson::ensure_line_fits;
use lvbak_core::registry::{is_secret_setting_key, TableSpec};
use lvbak_core::{classify_entry_name, table_entry_name, write_js_number, FileBucket, FormatError};

use crate::storage::backend::row_snapshot::RowValue;

/// A file a row names: its archive entry, and where it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub entry: String,
    pub bucket: FileBucket,
    pub inner: String,
    /// Missing required files are reported; optional ones (thumbnails) are not.
    pub required: bool,
}

/// How `JSON.stringify` escapes a byte: 0 for "as is", `u` for `\u00XX`, else the letter
/// after the backslash.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any of the eight bytes of `word` may need escaping (a control byte, `"` or
/// `\`). Exact for "none": clean runs are copied eight bytes at a time.
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(word ^ (ONES * u64::from(b'"'))) & HIGHS;
    let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(word ^ (ONES * u64::from(b'\\'))) & HIGHS;
    control | quote | backslash != 0
}

/// Writes a JSON string as `JSON.stringify` does.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Skip clean eight-byte words; stop at the first that may hold an escape.
        for chunk in bytes[at..].chunks_exact(8) {
            let word =
                u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
            if may_need_escape(word) {
                break;
            }
            at += 8;
        }
        let Some(&byte) = bytes.get(at) else { break };
        let escape = ESCAPES[byte as usize];
        if escape != 0 {
            out.extend_from_slice(&bytes[clean_from..at]);
            out.push(b'\\');
            out.push(escape);
            if escape == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'0', b'0', HEX[(byte >> 4) as usize], HEX[(byte & 0xf) as usize]]);
            }
            clean_from = at + 1;
        }
        at += 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// Encodes the rows of one table, with its columns fixed by the first row.
pub struct RowEncoder {
    entry: String,
    line_cap: u64,
    /// `"column":` for each column, encoded once.
    keys: Vec<Vec<u8>>,
    forced_zero: Vec<bool>,
    settings_key: Option<usize>,
    columns: Vec<String>,
    /// For each file column of the table, its index, and the `id` / `bundle_id` indexes.
    file_columns: Vec<(usize, FileBucket)>,
    id_column: Option<usize>,
    bundle_column: Option<usize>,
    rows: u64,
}

impl RowEncoder {
    pub fn new(spec: &'static TableSpec, columns: &[String], line_cap: u64) -> Self {
        let keys = columns
            .iter()
            .map(|column| {
                let mut key = Vec::with_capacity(column.len() + 3);
                write_json_string(&mut key, column);
                key.push(b':');
                key
            })
            .collect();
        let forced_zero = columns.iter().map(|column| spec.forced_zero.contains(&column.as_str())).collect();
        let settings_key = (spec.name == "settings").then(|| columns.iter().position(|c| c == "key")).flatten();
        let position = |name: &str| columns.iter().position(|column| column == name);
        let file_columns =
            spec.files.iter().filter_map(|file| position(file.column).map(|index| (index, file.bucket))).collect();
        Self {
            file_columns,
            id_column: position("id"),
            bundle_column: position("bundle_id"),
            entry: table_entry_name(spec.name),
            line_cap,
            keys,
            forced_zero,
            settings_key,
            columns: columns.to_vec(),
            rows: 0,
        }
    }

    /// Appends one row as one line to `out`; returns false for rows that never travel.
    pub fn encode<'v>(
        &mut self,
        value_of: impl Fn(usize) -> RowValue<'v>,
        out: &mut Vec<u8>,
    ) -> Result<bool, FormatError> {
        if let Some(index) = self.settings_key {
            if let RowValue::Text(key) = value_of(index) {
                if is_secret_setting_key(key) {
                    return Ok(false);
                }
            }
        }
        let start = out.len();
        out.push(b'{');
        for index in 0..self.columns.len() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.keys[index]);
            if self.forced_zero[index] {
                out.push(b'0');
                continue;
            }
            match value_of(index) {
                RowValue::Null => out.extend_from_slice(b"null"),
                RowValue::Integer(number) => {
                    let _ = write!(out, "{number}");
                }
                RowValue::Real(number) => write_js_number(out, number),
                RowValue::Text(text) => write_json_string(out, text),
                RowValue::Blob(bytes) => {
                    use base64::Engine as _;
                    write_json_string(out, &base64::engine::general_purpose::STANDARD.encode(bytes));
                }
            }
        }
        out.push(b'}');
        self.rows += 1;
        ensure_line_fits(&self.entry, self.rows, out.len() - start, self.line_cap)?;
        out.push(b'\n');
        Ok(true)
    }

    /// The files a row of this table names (FORMAT §2 layout).
    pub fn files_of<'v>(&self, value_of: impl Fn(usize) -> RowValue<'v>, found: &mut Vec<FileRef>) {
        let text = |index: Option<usize>| match index.map(&value_of) {
            Some(RowValue::Text(text)) if !text.is_empty() => Some(text.to_string()),
            _ => None,
        };
        for &(index, bucket) in &self.file_columns {
            let Some(value) = text(Some(index)) else { continue };
            match bucket {
                FileBucket::Images => {
                    push_ref(found, FileBucket::Images, &value, &value, true);
                    // Thumbnails are named after the original's UUID and live beside it.
                    let stem = value.split('.').next().unwrap_or_default();
                    if is_lower_uuid(stem) {
                        for size in ["sm", "lg"] {
                            let name = format!("{stem}_thumb_{size}_v2.webp");
                            let entry = FileBucket::Thumbnails.entry_name(&name);
                            found.push(FileRef { entry, bucket: FileBucket::Images, inner: name, required: false });
                        }
                    }
                }
                FileBucket::Avatars => {
                    let base = value.rsplit(['/', '\\']).next().unwrap_or_default().to_string();
                    push_ref(found, FileBucket::Avatars, &base, &base, true);
                }
                FileBucket::Databank => {
                    let Some(id) = text(self.id_column) else { continue };
                    let flattened = value.replace(['/', '\\'], "_");
                    push_ref(found, FileBucket::Databank, &format!("{id}__{flattened}"), &value, true);
                }
                FileBucket::ThemeAssets => {
                    let Some(bundle) = text(self.bundle_column) else { continue };
                    let name = format!("{bundle}/{value}");
                    push_ref(found, FileBucket::ThemeAssets, &name, &name, true);
                }
                FileBucket::Thumbnails | FileBucket::NotificationSounds => {}
            }
        }
    }
}

/// Adds a reference under `archive_name` (the name inside `files/<bucket>/`) to the file
/// stored as `stored_name`.
fn push_ref(found: &mut Vec<FileRef>, bucket: FileBucket, archive_name: &str, stored_name: &str, required: bool) {
    found.push(FileRef { entry: bucket.entry_name(archive_name), bucket, inner: stored_name.to_string(), required });
}

/// Whether an archive entry name is one the format accepts (so a strange stored name is
/// reported instead of producing an archive no reader would take).
pub fn is_valid_entry(entry: &str) -> bool {
    classify_entry_name(entry.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvbak_core::registry::table_spec;

    #[test]
    fn strings_escape_as_javascript_does() {
        for text in [
            "",
            "plain",
            "x".repeat(900).as_str(),
            "say \"hi\"\n",
            "tab\there\\and\u{1}\u{1f}\u{7f}",
            "ünï – 😀 \r\u{8}\u{c}",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, text);
            let expected = serde_json::to_string(text).unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&out), expected, "{text:?}");
            assert_eq!(serde_json::from_slice::<String>(&out).ok().as_deref(), Some(text));
        }
        let mut out = Vec::new();
        write_json_string(&mut out, "a\u{1}b");
        assert_eq!(out, b"\"a\\u0001b\"");
    }

    #[test]
    fn rows_are_scrubbed() {
        let spec = table_spec("connection_profiles").unwrap_or_else(|| unreachable!());
        let columns = vec!["id".to_string(), "has_api_key".to_string(), "name".to_string()];
        let mut encoder = RowEncoder::new(spec, &columns, 1024);
        let mut out = Vec::new();
        let values = [RowValue::Text("c1"), RowValue::Integer(1), RowValue::Text("say \"hi\"\n")];
        assert!(encoder.encode(|i| values[i], &mut out).unwrap_or(false));
        assert_eq!(String::from_utf8_lossy(&out), "{\"id\":\"c1\",\"has_api_key\":0,\"name\":\"say \\\"hi\\\"\\n\"}\n");

        let settings = table_spec("settings").unwrap_or_else(|| unreachable!());
        let columns = vec!["key".to_string(), "value".to_string()];
        let mut encoder = RowEncoder::new(settings, &columns, 1024);
        let mut out = Vec::new();
        let secret = [RowValue::Text("connection_x_api_key"), RowValue::Text("sk")];
        assert!(!encoder.encode(|i| secret[i], &mut out).unwrap_or(true));
        assert!(out.is_empty());
    }
}
