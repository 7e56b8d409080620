//! `vector_b64` (FORMAT §5): standard base64 of a vector's little-endian float32 bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::error::{FormatError, Result};
use crate::ndjson::Row;

/// Why an archive's vectors are not restored when its rows carry none.
pub const NULL_VECTORS: &str = "the archive's vectors are empty (vector_b64 is null)";

/// A `lancedb/` row's vector as the archive carries it, `vector_b64`'s text; `None` when
/// it is null or missing. Unmodified Lumiverse 1.1 writes `"vector_b64": null` on every row
/// (FORMAT §5): such a row has no vector to restore, and an archive whose first row has
/// none has none at all.
pub fn row_vector(row: &Row) -> Option<&str> {
    row.get("vector_b64").and_then(serde_json::Value::as_str)
}

/// Encodes a vector for a `lancedb/` row.
pub fn encode_vector(vector: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for value in vector {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    BASE64.encode(bytes)
}

/// Decodes a `vector_b64` value; `what` names the row in errors.
pub fn decode_vector(encoded: &str, what: &str) -> Result<Vec<f32>> {
    let bad = |detail: &str| FormatError::BadVector { what: what.to_string(), detail: detail.to_string() };
    let bytes = BASE64.decode(encoded).map_err(|_| bad("not standard base64"))?;
    if bytes.len() % 4 != 0 {
        return Err(bad("its length is not a multiple of 4 bytes"));
    }
    Ok(bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_null_or_missing_vector_is_none() {
        let row = |text: &str| serde_json::from_str::<Row>(text).unwrap();
        assert_eq!(row_vector(&row(r#"{"id":"a","vector_b64":"AACAPw=="}"#)), Some("AACAPw=="));
        assert_eq!(row_vector(&row(r#"{"id":"a","vector_b64":null}"#)), None);
        assert_eq!(row_vector(&row(r#"{"id":"a"}"#)), None);
        assert_eq!(row_vector(&row(r#"{"id":"a","vector_b64":[1]}"#)), None);
    }

    #[test]
    fn known_encoding() {
        assert_eq!(encode_vector(&[1.0, -2.5]), "AACAPwAAIMA=");
        assert_eq!(decode_vector("AACAPwAAIMA=", "r").ok(), Some(vec![1.0, -2.5]));
        assert_eq!(decode_vector("AACA", "r").err().map(|e| e.code()), Some("bad_vector"));
        assert_eq!(decode_vector("!!", "r").err().map(|e| e.code()), Some("bad_vector"));
    }
}
