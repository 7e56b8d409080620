//! `GET /api/v1/user-data/items?kind=KIND&start=N&count=N`: a page of the signed-in
//! account's own characters, chats, personas, world books or presets (id and name), read
//! from a snapshot of its rows — what the page lists to pick a selective export from. Only
//! the account's own rows are read (the registry's ownership rules, as an export reads
//! them); a page holds at most [`MAX_PAGE`] items.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use lvbak_core::protocol::{AccountItem, AccountItems, ItemKind};
use lvbak_core::registry::table_spec;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::backend::row_snapshot::RowValue;
use crate::storage::sqlite::DbError;

/// The most items one page answers.
pub const MAX_PAGE: u64 = 200;

/// The longest name a page hands out (a name is the user's own text, but may be long).
const NAME_CHARS: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/user-data/items", get(items))
}

#[derive(Deserialize)]
struct ItemsQuery {
    kind: ItemKind,
    #[serde(default)]
    start: u64,
    #[serde(default = "page")]
    count: u64,
}

fn page() -> u64 {
    50
}

/// `GET /api/v1/user-data/items`
async fn items(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<ItemsQuery>,
) -> AppResult<Json<AccountItems>> {
    let spec = table_spec(query.kind.table()).ok_or(AppError::Internal)?;
    let (start, count) = (query.start, query.count.min(MAX_PAGE));
    let store = state.store();
    let listed = tokio::task::spawn_blocking(move || {
        let mut items = Vec::new();
        let mut total = 0;
        store.row_snapshot()?.owned_rows(spec, &user.id, |columns, row| {
            if total >= start && total < start + count {
                let text = |name: &str| match columns.iter().position(|column| column == name).map(|at| row.value(at)) {
                    Some(RowValue::Text(text)) => text.chars().take(NAME_CHARS).collect(),
                    _ => String::new(),
                };
                items.push(AccountItem { id: text("id"), name: text("name") });
            }
            total += 1;
            Ok::<_, DbError>(())
        })?;
        Ok::<_, DbError>(AccountItems { kind: query.kind, total, start, items })
    })
    .await?;
    Ok(Json(listed.map_err(AppError::internal)?))
}
