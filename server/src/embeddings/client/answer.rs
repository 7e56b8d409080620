//! A provider's answer: held to the bytes its vectors can take, read straight into floats,
//! checked for count and length, and its error message when it refuses.

use serde_json::Value;

use super::EmbedError;

/// Answers larger than this are refused, whatever the batch (200 texts of 4096 floats,
/// written out, are ~16 MB).
pub(super) const LARGEST_ANSWER: usize = 32 << 20;

/// What one vector's answer may take, written out: a float as JSON text is at most ~26
/// bytes, and its item has some keys around it.
pub(super) const FLOAT_TEXT_BYTES: usize = 26;

pub(super) const ITEM_BYTES: usize = 256;

/// Vector lengths an answer may have when the setting names none: a one-text request
/// (the connection test) may find any length Lumiverse accepts; a batch may not be larger
/// than this many floats per text until the first answer has fixed the dimension.
pub(super) const ANY_DIMENSION: usize = 65_536;

pub(super) const USUAL_DIMENSION: usize = 8_192;

/// The largest answer for `texts` vectors of `dimensions` (unknown: see [`ANY_DIMENSION`]).
pub(super) fn answer_limit(texts: usize, dimensions: Option<u32>) -> usize {
    let floats = match dimensions {
        Some(d) => d as usize,
        None if texts <= 1 => ANY_DIMENSION,
        None => USUAL_DIMENSION,
    };
    (4096 + texts.saturating_mul(floats * FLOAT_TEXT_BYTES + ITEM_BYTES)).min(LARGEST_ANSWER)
}

/// An embeddings answer, read straight into floats (a `serde_json::Value` of a large
/// answer takes many times its size): OpenAI's `{"data": [{"embedding", "index"}]}`,
/// Ollama's `{"embeddings": [...]}`, or an error envelope.
#[derive(serde::Deserialize)]
pub(super) struct Answer {
    #[serde(default)]
    data: Option<Vec<AnswerItem>>,
    #[serde(default)]
    embeddings: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(serde::Deserialize)]
pub(super) struct AnswerItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<u64>,
}

/// The provider's own error message (`{"error": {"message"}}`, `{"error": "…"}`), or the
/// HTTP status; at most 300 characters.
pub(super) fn provider_message(body: &[u8], status: reqwest::StatusCode) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        let error = v.get("error")?;
        error.as_str().map(str::to_string).or_else(|| error.get("message").and_then(Value::as_str).map(str::to_string))
    });
    let text = message.unwrap_or_else(|| format!("HTTP {status}"));
    text.chars().take(300).collect()
}

/// The vectors of an answer in input order, checked for count and length.
pub(super) fn vectors_of(
    answer: &Answer,
    expected: usize,
    dimensions: Option<u32>,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    if let Some(error) = &answer.error {
        let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("an error");
        return Err(EmbedError::Refused(message.chars().take(300).collect()));
    }
    let mut vectors: Vec<(u64, &Vec<f32>)> = match (&answer.data, &answer.embeddings) {
        (Some(data), _) => {
            let mut indexed: Vec<(u64, &Vec<f32>)> = data
                .iter()
                .enumerate()
                .map(|(position, item)| (item.index.unwrap_or(position as u64), &item.embedding))
                .collect();
            indexed.sort_by_key(|(index, _)| *index);
            indexed
        }
        (None, Some(list)) => list.iter().enumerate().map(|(index, vector)| (index as u64, vector)).collect(),
        (None, None) => return Err(EmbedError::Refused("the answer has neither `data` nor `embeddings`".into())),
    };
    if vectors.len() != expected {
        return Err(EmbedError::Refused(format!("{} vectors for {expected} texts", vectors.len())));
    }
    let first = vectors.first().map_or(0, |(_, v)| v.len());
    for (_, vector) in &vectors {
        let expected = dimensions.unwrap_or(first as u32);
        if vector.is_empty() || vector.len() != expected as usize {
            return Err(EmbedError::DimensionMismatch { expected, got: vector.len() });
        }
    }
    Ok(vectors.drain(..).map(|(_, v)| v.clone()).collect())
}
