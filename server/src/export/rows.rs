//! Encoding a table's rows as NDJSON the way Lumiverse's `JSON.stringify` of a SQLite row
//! does (columns in table order; integral reals as integers), with the export scrubs of the
//! registry (secret settings dropped, `has_api_key` written as 0), and collecting the files
//! each row names.

use std::io::Write as _;

use lvbak_core::entry_name::is_lower_uuid;
use lvbak_core::ndjson::ensure_line_fits;
use lvbak_core::registry::{is_secret_setting_key, TableSpec};
use lvbak_core::{classify_entry_name, FileBucket, FormatError};

use crate::storage::sqlite::RowValue;

/// A file a row names: its archive entry, and where it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub entry: String,
    pub bucket: FileBucket,
    pub inner: String,
    /// Missing required files are reported; optional ones (thumbnails) are not.
    pub required: bool,
}

/// Writes a number as JavaScript does: integral values without a fraction.
pub fn write_js_number(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
    } else if value.fract() == 0.0 && value.abs() < 1e21 {
        let _ = write!(out, "{}", value as i128);
    } else {
        let _ = serde_json::to_writer(&mut *out, &value);
    }
}

pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Encodes the rows of one table, with its columns fixed by the first row.
pub struct RowEncoder {
    spec: &'static TableSpec,
    entry: String,
    line_cap: u64,
    /// `"column":` for each column, encoded once.
    keys: Vec<Vec<u8>>,
    forced_zero: Vec<bool>,
    settings_key: Option<usize>,
    columns: Vec<String>,
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
        Self {
            spec,
            entry: format!("database/{}.ndjson", spec.name),
            line_cap,
            keys,
            forced_zero,
            settings_key,
            columns: columns.to_vec(),
            rows: 0,
        }
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column == name)
    }

    /// Appends one row as one line to `out`; returns false for rows that never travel.
    pub fn encode(&mut self, values: &[RowValue<'_>], out: &mut Vec<u8>) -> Result<bool, FormatError> {
        if let Some(index) = self.settings_key {
            if let Some(RowValue::Text(key)) = values.get(index) {
                if is_secret_setting_key(key) {
                    return Ok(false);
                }
            }
        }
        let start = out.len();
        out.push(b'{');
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.keys[index]);
            if self.forced_zero[index] {
                out.push(b'0');
                continue;
            }
            match *value {
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
    pub fn files_of(&self, values: &[RowValue<'_>], found: &mut Vec<FileRef>) {
        let text = |name: &str| match self.column(name).and_then(|index| values.get(index)) {
            Some(RowValue::Text(text)) if !text.is_empty() => Some(text.to_string()),
            _ => None,
        };
        for file in self.spec.files {
            let Some(value) = text(file.column) else { continue };
            match file.bucket {
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
                    let Some(id) = text("id") else { continue };
                    let flattened = value.replace(['/', '\\'], "_");
                    push_ref(found, FileBucket::Databank, &format!("{id}__{flattened}"), &value, true);
                }
                FileBucket::ThemeAssets => {
                    let Some(bundle) = text("bundle_id") else { continue };
                    let name = format!("{bundle}/{value}");
                    push_ref(found, FileBucket::ThemeAssets, &name, &name, true);
                }
                FileBucket::Thumbnails | FileBucket::NotificationSounds => {}
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
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
    fn numbers_as_javascript_writes_them() {
        let cases = [(0.0, "0"), (1.0, "1"), (-3.0, "-3"), (0.5, "0.5"), (1e21, "1e21"), (f64::NAN, "null")];
        for (value, expected) in cases {
            let mut out = Vec::new();
            write_js_number(&mut out, value);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{value}");
        }
    }

    #[test]
    fn rows_are_scrubbed() {
        let spec = table_spec("connection_profiles").unwrap_or_else(|| unreachable!());
        let columns = vec!["id".to_string(), "has_api_key".to_string(), "name".to_string()];
        let mut encoder = RowEncoder::new(spec, &columns, 1024);
        let mut out = Vec::new();
        let values = [RowValue::Text("c1"), RowValue::Integer(1), RowValue::Text("say \"hi\"\n")];
        assert!(encoder.encode(&values, &mut out).unwrap_or(false));
        assert_eq!(String::from_utf8_lossy(&out), "{\"id\":\"c1\",\"has_api_key\":0,\"name\":\"say \\\"hi\\\"\\n\"}\n");

        let settings = table_spec("settings").unwrap_or_else(|| unreachable!());
        let columns = vec!["key".to_string(), "value".to_string()];
        let mut encoder = RowEncoder::new(settings, &columns, 1024);
        let mut out = Vec::new();
        let secret = [RowValue::Text("connection_x_api_key"), RowValue::Text("sk")];
        assert!(!encoder.encode(&secret, &mut out).unwrap_or(true));
        assert!(out.is_empty());
    }
}
