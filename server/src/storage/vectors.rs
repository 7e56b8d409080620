//! LanceDB, the only module that touches it: `<data>/lancedb` holds the archive tables
//! `embeddings` and `embeddings_world_books` in Lumiverse's column layout (FORMAT §5) with
//! the vector as a fixed-size list of float32. Each is stored as one LanceDB table per
//! vector dimension (`embeddings_d768`, ...), so users whose models differ coexist on one
//! instance: nobody's first import fixes the dimension for everyone. A directory of an
//! earlier layout (one table of whatever dimension came first) is renamed on first use.
//! The tables live in the data directory, or in the instance's object storage
//! (`s3://bucket/prefix/lancedb`, through `object_storage::lance`). Today's `VectorStorage`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use lancedb::arrow::arrow_array::{
    types::Float32Type, Array, FixedSizeListArray, Float32Array, Float64Array, RecordBatch, StringArray,
};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema, SchemaRef};
use lancedb::query::{ExecutableQuery, QueryBase};
use tokio::sync::Mutex;

use super::backend::vector_storage::{VectorError, VectorRow, VectorRowReader, VectorRows, VectorStorage};

impl From<lancedb::Error> for VectorError {
    fn from(error: lancedb::Error) -> Self {
        Self::Backend(format!("lancedb: {error}"))
    }
}

impl From<lancedb::arrow::arrow_schema::ArrowError> for VectorError {
    fn from(error: lancedb::arrow::arrow_schema::ArrowError) -> Self {
        Self::Backend(format!("arrow: {error}"))
    }
}

/// Rows being read from one or more tables, in turn.
struct LanceRows {
    streams: std::collections::VecDeque<lancedb::arrow::SendableRecordBatchStream>,
}

#[async_trait::async_trait]
impl VectorRowReader for LanceRows {
    async fn next_batch(&mut self) -> Result<Option<Vec<VectorRow>>, VectorError> {
        while let Some(stream) = self.streams.front_mut() {
            match stream.try_next().await? {
                Some(batch) => return Ok(Some(rows_of_batch(&batch)?)),
                None => {
                    self.streams.pop_front();
                }
            }
        }
        Ok(None)
    }
}

/// Where the tables are.
enum Place {
    /// A folder of the data directory.
    Folder(std::path::PathBuf),
    /// The instance's object storage: LanceDB's URI and the registry that answers it.
    Bucket { uri: String, registry: Arc<lance_io::object_store::ObjectStoreRegistry> },
}

pub struct VectorStore {
    place: Place,
    /// Opened on first use: an instance whose users have no vectors never loads LanceDB.
    connection: tokio::sync::OnceCell<lancedb::Connection>,
    /// Creating a table and adding to it must not race between two imports.
    writes: Mutex<()>,
}

/// Bytes LanceDB may keep cached: metadata of table versions (every write makes one) and
/// vector indexes. Its defaults (1 GiB and 6 GiB) would let one busy account's writes fill
/// a shared server's memory.
const METADATA_CACHE: usize = 16 << 20;
const INDEX_CACHE: usize = 64 << 20;

fn bounded_session(registry: Arc<lance_io::object_store::ObjectStoreRegistry>) -> Arc<lance::session::Session> {
    Arc::new(lance::session::Session::new(INDEX_CACHE, METADATA_CACHE, registry))
}

/// The LanceDB table holding `name`'s vectors of `dimension`.
fn physical(name: &str, dimension: i32) -> String {
    format!("{name}_d{dimension}")
}

fn schema(dimension: i32) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("source_type", DataType::Utf8, true),
        Field::new("source_id", DataType::Utf8, true),
        Field::new("owner_id", DataType::Utf8, true),
        Field::new("chunk_index", DataType::Float64, true),
        Field::new("content", DataType::Utf8, true),
        Field::new(
            "vector",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dimension),
            true,
        ),
        Field::new("metadata_json", DataType::Utf8, true),
        Field::new("updated_at", DataType::Float64, true),
    ]))
}

/// A string literal for a LanceDB filter.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, VectorError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| VectorError::Invalid(format!("column {name} is not text")))
}

fn floats<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Float64Array, VectorError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<Float64Array>())
        .ok_or_else(|| VectorError::Invalid(format!("column {name} is not float64")))
}

fn rows_of_batch(batch: &RecordBatch) -> Result<Vec<VectorRow>, VectorError> {
    let text = |array: &StringArray, row: usize| {
        if array.is_null(row) {
            String::new()
        } else {
            array.value(row).to_string()
        }
    };
    let (id, user_id, source_type, source_id, owner_id, content, metadata) = (
        strings(batch, "id")?,
        strings(batch, "user_id")?,
        strings(batch, "source_type")?,
        strings(batch, "source_id")?,
        strings(batch, "owner_id")?,
        strings(batch, "content")?,
        strings(batch, "metadata_json")?,
    );
    let (chunk_index, updated_at) = (floats(batch, "chunk_index")?, floats(batch, "updated_at")?);
    let vectors = batch
        .column_by_name("vector")
        .and_then(|column| column.as_any().downcast_ref::<FixedSizeListArray>())
        .ok_or_else(|| VectorError::Invalid("column vector is not a fixed-size list".into()))?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let vector = if vectors.is_null(row) {
            Vec::new()
        } else {
            let values = vectors.value(row);
            let values = values
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| VectorError::Invalid("vector items are not float32".into()))?;
            values.values().to_vec()
        };
        rows.push(VectorRow {
            id: text(id, row),
            user_id: text(user_id, row),
            source_type: text(source_type, row),
            source_id: text(source_id, row),
            owner_id: text(owner_id, row),
            chunk_index: if chunk_index.is_null(row) { 0.0 } else { chunk_index.value(row) },
            content: text(content, row),
            vector,
            metadata_json: text(metadata, row),
            updated_at: if updated_at.is_null(row) { 0.0 } else { updated_at.value(row) },
        });
    }
    Ok(rows)
}

fn batch_of_rows(rows: &[VectorRow], dimension: i32) -> Result<RecordBatch, VectorError> {
    let column = |pick: fn(&VectorRow) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(pick)));
    let vectors = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
        rows.iter().map(|row| Some(row.vector.iter().copied().map(Some).collect::<Vec<_>>())),
        dimension,
    );
    Ok(RecordBatch::try_new(
        schema(dimension),
        vec![
            column(|r| &r.id),
            column(|r| &r.user_id),
            column(|r| &r.source_type),
            column(|r| &r.source_id),
            column(|r| &r.owner_id),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.chunk_index))),
            column(|r| &r.content),
            Arc::new(vectors),
            column(|r| &r.metadata_json),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.updated_at))),
        ],
    )?)
}

impl VectorStore {
    pub async fn open(directory: &Path) -> Result<Self, VectorError> {
        std::fs::create_dir_all(directory).map_err(|error| VectorError::Invalid(error.to_string()))?;
        directory.to_str().ok_or_else(|| VectorError::Invalid("the data directory is not UTF-8".into()))?;
        Ok(Self::at(Place::Folder(directory.to_path_buf())))
    }

    /// The tables in the instance's object storage.
    pub fn open_in(storage: &super::object_storage::ObjectStorage) -> Self {
        use super::object_storage::lance;
        Self::at(Place::Bucket { uri: lance::tables_uri(storage), registry: lance::registry(storage) })
    }

    fn at(place: Place) -> Self {
        Self { place, connection: tokio::sync::OnceCell::new(), writes: Mutex::new(()) }
    }

    async fn connection(&self) -> Result<&lancedb::Connection, VectorError> {
        self.connection
            .get_or_try_init(|| async {
                let connection = match &self.place {
                    Place::Folder(directory) => {
                        let uri = directory.to_str().unwrap_or_default();
                        let registry = Arc::new(lance_io::object_store::ObjectStoreRegistry::default());
                        let connection = lancedb::connect(uri).session(bounded_session(registry)).execute().await?;
                        Self::rename_legacy_tables(directory, &connection).await?;
                        connection
                    }
                    Place::Bucket { uri, registry } => {
                        lancedb::connect(uri).session(bounded_session(registry.clone())).execute().await?
                    }
                };
                Ok::<_, VectorError>(connection)
            })
            .await
    }

    /// Gives a table of the earlier layout (`embeddings.lance`, any dimension) its
    /// per-dimension name.
    async fn rename_legacy_tables(directory: &Path, connection: &lancedb::Connection) -> Result<(), VectorError> {
        for name in lvbak_core::registry::VECTOR_TABLES {
            let legacy = directory.join(format!("{name}.lance"));
            if !legacy.exists() {
                continue;
            }
            let table = connection.open_table(*name).execute().await?;
            let schema = table.schema().await?;
            let Ok(DataType::FixedSizeList(_, dimension)) =
                schema.field_with_name("vector").map(|f| f.data_type().clone())
            else {
                return Err(VectorError::Invalid(format!("{name} has no vector column")));
            };
            drop(table);
            let renamed = directory.join(format!("{}.lance", physical(name, dimension)));
            std::fs::rename(&legacy, &renamed).map_err(|error| VectorError::Invalid(error.to_string()))?;
            tracing::info!("vector table {name} (dimension {dimension}) is now {}", physical(name, dimension));
        }
        Ok(())
    }

    /// The names of the tables there are.
    async fn table_names(&self) -> Result<Vec<String>, VectorError> {
        match &self.place {
            Place::Folder(directory) => {
                let Ok(entries) = std::fs::read_dir(directory) else { return Ok(Vec::new()) };
                Ok(entries
                    .flatten()
                    .filter_map(|entry| Some(entry.file_name().to_str()?.strip_suffix(".lance")?.to_string()))
                    .collect())
            }
            Place::Bucket { .. } => Ok(self.connection().await?.table_names().execute().await?),
        }
    }

    /// The dimensions `name` has tables for.
    async fn dimensions(&self, name: &str) -> Result<Vec<i32>, VectorError> {
        let prefix = format!("{name}_d");
        let mut found: Vec<i32> =
            self.table_names().await?.iter().filter_map(|table| table.strip_prefix(&prefix)?.parse().ok()).collect();
        found.sort_unstable();
        Ok(found)
    }

    async fn table(&self, name: &str) -> Result<Option<lancedb::Table>, VectorError> {
        // No table directory yet means no table, without loading LanceDB to say so (a
        // directory of the earlier layout is renamed when LanceDB first loads).
        if let Place::Folder(directory) = &self.place {
            let legacy =
                lvbak_core::registry::VECTOR_TABLES.iter().any(|t| directory.join(format!("{t}.lance")).exists());
            if !legacy && !directory.join(format!("{name}.lance")).exists() {
                return Ok(None);
            }
        }
        match self.connection().await?.open_table(name).execute().await {
            Ok(table) => Ok(Some(table)),
            Err(lancedb::Error::TableNotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Loads LanceDB if the directory holds any table (which renames legacy ones); tables in
    /// object storage are listed through LanceDB anyway.
    async fn connection_if_any(&self) -> Result<(), VectorError> {
        if let Place::Folder(directory) = &self.place {
            let any = std::fs::read_dir(directory).map(|mut d| d.next().is_some()).unwrap_or(false);
            if any {
                self.connection().await?;
            }
        }
        Ok(())
    }

    async fn stream_of(
        &self,
        table: &str,
        user_id: &str,
    ) -> Result<Option<lancedb::arrow::SendableRecordBatchStream>, VectorError> {
        let Some(table) = self.table(table).await? else { return Ok(None) };
        Ok(Some(table.query().only_if(format!("user_id = {}", literal(user_id))).execute().await?))
    }
}

#[async_trait::async_trait]
impl VectorStorage for VectorStore {
    /// The rows of `user_id` in `name`, of every dimension, to be pulled a batch at a time.
    async fn rows_of(&self, name: &str, user_id: &str) -> Result<VectorRows, VectorError> {
        let mut streams = std::collections::VecDeque::new();
        self.connection_if_any().await?;
        for dimension in self.dimensions(name).await? {
            streams.extend(self.stream_of(&physical(name, dimension), user_id).await?);
        }
        Ok(Box::new(LanceRows { streams }))
    }

    /// The rows of `user_id` in `name` of one dimension (what an export carries).
    async fn rows_of_dimension(&self, name: &str, dimension: i32, user_id: &str) -> Result<VectorRows, VectorError> {
        self.connection_if_any().await?;
        let streams = self.stream_of(&physical(name, dimension), user_id).await?.into_iter().collect();
        Ok(Box::new(LanceRows { streams }))
    }

    /// Which of `ids` exist in `name`'s table of `dimension`.
    async fn existing_ids(&self, name: &str, dimension: i32, ids: &[String]) -> Result<HashSet<String>, VectorError> {
        let Some(table) = self.table(&physical(name, dimension)).await? else {
            return Ok(HashSet::new());
        };
        let mut found = HashSet::new();
        for group in ids.chunks(500) {
            let list = group.iter().map(|id| literal(id)).collect::<Vec<_>>().join(", ");
            let mut stream = table
                .query()
                .only_if(format!("id IN ({list})"))
                .select(lancedb::query::Select::Columns(vec!["id".into()]))
                .execute()
                .await?;
            while let Some(batch) = stream.try_next().await? {
                let ids = strings(&batch, "id")?;
                found.extend((0..ids.len()).map(|row| ids.value(row).to_string()));
            }
        }
        Ok(found)
    }

    /// Adds rows to `name`'s table of `dimension`, creating it if it does not exist. Rows
    /// whose vector is not of that dimension are refused as a whole.
    async fn add(&self, name: &str, rows: &[VectorRow], dimension: i32) -> Result<(), VectorError> {
        if rows.is_empty() {
            return Ok(());
        }
        if dimension <= 0 || rows.iter().any(|row| row.vector.len() != dimension as usize) {
            return Err(VectorError::Invalid(format!("a vector is not of dimension {dimension}")));
        }
        let _guard = self.writes.lock().await;
        let batch = batch_of_rows(rows, dimension)?;
        let table_name = physical(name, dimension);
        match self.table(&table_name).await? {
            Some(table) => {
                table.add(batch).execute().await?;
            }
            None => {
                self.connection().await?.create_table(&table_name, batch).execute().await?;
            }
        }
        Ok(())
    }

    /// Removes `user_id`'s rows of `ids` from `name`'s table of `dimension` (an import
    /// taken back); how many were there.
    async fn delete_ids(&self, name: &str, dimension: i32, user_id: &str, ids: &[String]) -> Result<u64, VectorError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let _guard = self.writes.lock().await;
        let Some(table) = self.table(&physical(name, dimension)).await? else { return Ok(0) };
        let list = ids.iter().map(|id| literal(id)).collect::<Vec<_>>().join(", ");
        let filter = format!("user_id = {} AND id IN ({list})", literal(user_id));
        let count = table.count_rows(Some(filter.clone())).await? as u64;
        if count > 0 {
            table.delete(&filter).await?;
        }
        Ok(count)
    }

    /// Writes rows into `name`'s table of `dimension`, replacing any row with the same id
    /// (a re-run after a crash writes each vector once).
    async fn replace(&self, name: &str, rows: &[VectorRow], dimension: i32) -> Result<(), VectorError> {
        if rows.is_empty() {
            return Ok(());
        }
        {
            let _guard = self.writes.lock().await;
            if let Some(table) = self.table(&physical(name, dimension)).await? {
                let list = rows.iter().map(|row| literal(&row.id)).collect::<Vec<_>>().join(", ");
                table.delete(&format!("id IN ({list})")).await?;
            }
        }
        self.add(name, rows, dimension).await
    }

    /// Removes every vector of `user_id`, every table and dimension; how many.
    async fn delete_user(&self, user_id: &str) -> Result<u64, VectorError> {
        self.connection_if_any().await?;
        let _guard = self.writes.lock().await;
        let mut deleted = 0;
        for name in lvbak_core::registry::VECTOR_TABLES {
            for dimension in self.dimensions(name).await? {
                if let Some(table) = self.table(&physical(name, dimension)).await? {
                    let filter = format!("user_id = {}", literal(user_id));
                    let count = table.count_rows(Some(filter.clone())).await? as u64;
                    if count > 0 {
                        table.delete(&filter).await?;
                        deleted += count;
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// What `user_id`'s vectors count for against the quota (`VectorRow::stored_bytes`),
    /// every table and dimension, read a batch at a time.
    async fn usage_of(&self, user_id: &str) -> Result<u64, VectorError> {
        let mut bytes = 0;
        for name in lvbak_core::registry::VECTOR_TABLES {
            let mut rows = self.rows_of(name, user_id).await?;
            while let Some(batch) = rows.next_batch().await? {
                bytes += batch.iter().map(VectorRow::stored_bytes).sum::<u64>();
            }
        }
        Ok(bytes)
    }

    /// Number of rows of `user_id` in `name`, every dimension.
    async fn count_of(&self, name: &str, user_id: &str) -> Result<u64, VectorError> {
        self.connection_if_any().await?;
        let mut count = 0;
        for dimension in self.dimensions(name).await? {
            if let Some(table) = self.table(&physical(name, dimension)).await? {
                count += table.count_rows(Some(format!("user_id = {}", literal(user_id)))).await? as u64;
            }
        }
        Ok(count)
    }
}
