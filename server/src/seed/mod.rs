//! Demo data: fills an account with realistic rows across the registry tables, the files
//! those rows name (real PNGs, WebP thumbnails, a databank document, a theme stylesheet, a
//! WAV completion sound), vectors for chunks and world-book entries, and stored secrets.

mod chats;
mod library;
pub(crate) mod media;
mod other_tables;
mod row;
mod settings;
mod text;

use lvbak_core::FileBucket;

use crate::storage::identity::random_bytes;
use crate::storage::{Store, VectorRow};
use crate::storage::{StoredSecret, UserRecord};
use row::{Rows, SeedRow};

/// How much to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedOptions {
    pub characters: usize,
    pub chats: usize,
    pub messages_per_chat: usize,
    pub images: usize,
    pub vectors: usize,
    pub secrets: usize,
    /// Secrets sealed under a key this instance does not have (as after identity-key drift).
    pub unreadable_secrets: usize,
    /// The embedding dimension put in the `embeddingConfig` setting.
    pub dimension: u32,
    /// Extra characters shaped like Lumiverse's export benchmark: `description` is 900 × "x"
    /// and " #i", every other text column empty.
    pub bulk_characters: usize,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            characters: 4,
            chats: 3,
            messages_per_chat: 40,
            images: 3,
            vectors: 60,
            secrets: 2,
            unreadable_secrets: 0,
            dimension: 64,
            bulk_characters: 0,
        }
    }
}

/// What was made, for messages and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub rows: u64,
    pub files: u64,
    pub vectors: u64,
    pub secrets: Vec<(String, String)>,
}

/// What every part of the demo account is made with: whose account it is, the moment its
/// rows are stamped with, the rows so far and how many files were written.
struct Demo<'a> {
    store: &'a Store,
    uid: &'a str,
    now: i64,
    rows: Rows,
    files: u64,
}

impl Demo<'_> {
    fn add(&mut self, table: &'static str, row: SeedRow) {
        self.rows.add(table, row);
    }

    fn write_file(&mut self, bucket: FileBucket, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.store.files.write_new(bucket, self.uid, name, &mut &bytes[..])?;
        self.files += 1;
        Ok(())
    }
}

/// Fills `user`'s account.
pub async fn seed(store: &Store, user: &UserRecord, options: SeedOptions, now: i64) -> anyhow::Result<SeedReport> {
    let uid = user.id.as_str();
    let mut demo = Demo { store, uid, now, rows: Rows::default(), files: 0 };
    let connection_ids = settings::add(&mut demo, &options);
    let book = library::world_book(&mut demo);
    let cast = library::cast(&mut demo, &options, &book.id)?;
    let chunks = chats::add(&mut demo, &options, &cast.character_ids);
    let session = other_tables::SessionRefs {
        persona_id: &cast.persona_id,
        connection_id: &connection_ids[0],
        character_id: cast.character_ids.first().map(String::as_str),
    };
    other_tables::add(&mut demo, &session)?;
    let mut report = SeedReport { rows: demo.rows.insert(store).await?, files: demo.files, ..SeedReport::default() };

    let filler = "x".repeat(900);
    for start in (0..options.bulk_characters).step_by(10_000) {
        let batch: Vec<_> = (start..(start + 10_000).min(options.bulk_characters))
            .map(|index| library::bulk_character(index, &filler, uid, now).into_columns())
            .collect();
        report.rows += store.insert_rows("characters", &batch).await?;
    }

    // Vectors for chunks and world-book entries.
    let dimension = options.dimension as usize;
    let vector_of =
        |seed: usize| -> Vec<f32> { (0..dimension).map(|i| ((seed * 31 + i * 7) % 97) as f32 / 97.0 - 0.5).collect() };
    let chunk_rows: Vec<VectorRow> = chunks
        .iter()
        .take(options.vectors)
        .enumerate()
        .map(|(index, chunk)| VectorRow {
            id: format!("{uid}:chat_chunk:{}:0", chunk.id),
            user_id: uid.to_string(),
            source_type: "chat_chunk".into(),
            source_id: chunk.id.clone(),
            owner_id: chunk.chat_id.clone(),
            chunk_index: 0.0,
            content: chunk.content.clone(),
            vector: vector_of(index),
            metadata_json: "{}".into(),
            updated_at: now as f64,
        })
        .collect();
    let entry_rows: Vec<VectorRow> = book
        .entries
        .iter()
        .enumerate()
        .map(|(index, (entry_id, content))| VectorRow {
            id: format!("{uid}:world_book_entry:{entry_id}:0"),
            user_id: uid.to_string(),
            source_type: "world_book_entry".into(),
            source_id: entry_id.clone(),
            owner_id: book.id.clone(),
            chunk_index: 0.0,
            content: content.clone(),
            vector: vector_of(1000 + index),
            metadata_json: "{}".into(),
            updated_at: now as f64,
        })
        .collect();
    if options.vectors > 0 {
        store.vectors.add("embeddings", &chunk_rows, options.dimension as i32).await?;
        store.vectors.add("embeddings_world_books", &entry_rows, options.dimension as i32).await?;
        report.vectors = (chunk_rows.len() + entry_rows.len()) as u64;
    }

    // Secrets: connection API keys and a web-search key, sealed under the identity key.
    let mut names: Vec<String> = connection_ids.iter().map(|id| format!("connection_{id}_api_key")).collect();
    names.insert(1.min(names.len()), "web_search_api_key".to_string());
    for name in names.into_iter().take(options.secrets) {
        let value = format!("sk-demo-{}", hex::encode(random_bytes::<12>()));
        store.secrets().put_secret(uid, &store.identity.seal(uid, &name, &value), now, None).await?;
        report.secrets.push((name, value));
    }
    for index in 0..options.unreadable_secrets {
        let foreign = random_bytes::<32>();
        let sealed = lvbak_core::EncryptedSecret::seal(&foreign, random_bytes::<12>(), "legacy", "lost");
        let stored = StoredSecret {
            key: format!("legacy_api_key_{index}"),
            encrypted_value: sealed.ciphertext,
            iv: sealed.iv,
            tag: sealed.tag,
        };
        store.secrets().put_secret(uid, &stored, now, None).await?;
    }
    Ok(report)
}
