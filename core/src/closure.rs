//! The closure of a selection: given picked items (`character:ID`, `chat:ID`, `persona:ID`,
//! `world_book:ID`, `preset:ID`), every row they need and every row that belongs to them,
//! to a fixed point — the rows a selective export writes and a selective restore sends.
//!
//! What a pick brings: its own row; a character its chats (unless without chats); a picked
//! chat the chats branched from it, and theirs; then, for every row in the set, the rows
//! that belong to it (the registry's ownership columns and the references listed as parts
//! in [`relations`]: messages, breakdowns, memory, chunks, cortex links, gallery rows, regex
//! scripts, images made for a character, world-book entries, a vault's contents…) and the
//! rows it needs (every reference an import would refuse or clear without its target, the
//! references listed as needed, and the ids of [`relations::JSON_REFERENCES`]: a character's
//! attached world books and expression images). References an import may clear are left
//! out when nothing else brings their target.
//!
//! Rows come from a [`RowSource`] the caller implements (the server's store for a selective
//! export; an archive, [`ArchiveRows`], for a selective restore), asked one table and a batch of ids at a time; it answers only the
//! account's own rows, so the closure never leaves the account.

mod archive_rows;
mod copy;
pub(crate) mod relations;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::registry::TableSpec;
use relations::{json_ids, key_column, links, Edge, Link, BRANCHED_FROM, JSON_REFERENCES};

pub use crate::protocol::ItemKind;
pub use archive_rows::ArchiveRows;
pub use copy::{copy_id, CopyPlan};

/// One picked item, written `KIND:ID`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pick {
    pub kind: ItemKind,
    pub id: String,
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.word(), self.id)
    }
}

impl FromStr for Pick {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let words = || ItemKind::ALL.map(ItemKind::word).join(", ");
        let (word, id) = text.split_once(':').ok_or_else(|| format!("{text:?} is not KIND:ID (kinds: {})", words()))?;
        let kind = ItemKind::ALL
            .into_iter()
            .find(|kind| kind.word() == word)
            .ok_or_else(|| format!("{word:?} is not a kind of item (kinds: {})", words()))?;
        if id.is_empty() {
            return Err(format!("{text:?} names no id"));
        }
        Ok(Self { kind, id: id.to_string() })
    }
}

impl Pick {
    /// Picks as the user writes them: `KIND:ID, KIND:ID`.
    pub fn named(picks: &[Pick]) -> String {
        picks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// The most items one selection may pick (a selective restore's or export's).
pub const MAX_PICKS: usize = 1000;

/// What a user picked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub picks: Vec<Pick>,
    /// Picked characters come without their chats.
    pub without_chats: bool,
}

impl Selection {
    /// The picks written `KIND:ID`, between 1 and [`MAX_PICKS`] of them; the first that is
    /// not a pick, or the wrong number, in words.
    pub fn from_words(picks: &[String], without_chats: bool) -> Result<Self, String> {
        if picks.is_empty() || picks.len() > MAX_PICKS {
            return Err(format!("pick between 1 and {MAX_PICKS} items"));
        }
        let picks = picks.iter().map(|pick| pick.parse()).collect::<Result<_, _>>()?;
        Ok(Self { picks, without_chats })
    }
}

/// Which rows a [`RowSource`] is asked for: those whose column, or a key of the JSON object
/// held in a column, is one of the given values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKey {
    Column(&'static str),
    JsonKey { column: &'static str, key: &'static str },
}

/// Where the closure's rows come from.
pub trait RowSource {
    type Error;

    /// Calls `each` once per row of `table` that belongs to the account and whose `key` is
    /// one of `values`, with the row's values of `columns` in that order: text as it is,
    /// an integer as its decimal text, anything else `None`.
    fn rows_where(
        &mut self,
        table: &'static TableSpec,
        key: RowKey,
        values: &[String],
        columns: &[&'static str],
        each: &mut dyn FnMut(&[Option<String>]),
    ) -> Result<(), Self::Error>;
}

/// Why no closure was computed.
#[derive(Debug, PartialEq, Eq)]
pub enum ClosureError<E> {
    /// Picks that name no row of the account.
    NotFound(Vec<Pick>),
    /// The source failed.
    Source(E),
}

impl<E: fmt::Display> fmt::Display for ClosureError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(picks) => write!(f, "nothing of {} is there", Pick::named(picks)),
            Self::Source(error) => error.fmt(f),
        }
    }
}

/// The rows of a selection's closure: ids (the one primary-key column) per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    rows: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Closure {
    pub fn contains(&self, table: &str, id: &str) -> bool {
        self.rows.get(table).is_some_and(|ids| ids.contains(id))
    }

    /// Whether a row of any table has this id (a file or a vector names its row so).
    pub fn contains_anywhere(&self, id: &str) -> bool {
        self.rows.values().any(|ids| ids.contains(id))
    }

    /// Whether a file of the archive goes with the closure: its name holds the id of one of
    /// its rows (an avatar, an image and its thumbnails, a databank document). Files no
    /// row's id names (theme assets, sounds) do not.
    pub fn names_file(&self, name: &str) -> bool {
        let mut at = 0;
        while let Some(start) = crate::ids::next_uuid(name.as_bytes(), at, false) {
            if self.contains_anywhere(&name[start..start + 36]) {
                return true;
            }
            at = start + 36;
        }
        false
    }

    /// The ids of `table`'s rows in the closure, in order.
    pub fn ids(&self, table: &str) -> impl Iterator<Item = &str> {
        self.rows.get(table).into_iter().flatten().map(String::as_str)
    }

    pub fn count(&self, table: &str) -> usize {
        self.rows.get(table).map_or(0, BTreeSet::len)
    }

    /// Tables with rows in the closure, and how many.
    pub fn tables(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        self.rows.iter().map(|(table, ids)| (*table, ids.len()))
    }

    /// The column that names a row of `table` in [`Closure::ids`].
    pub fn key_column(table: &str) -> Option<&'static str> {
        key_column(table)
    }
}

/// A row read for the closure: the values of its table's read columns, the key first.
type Values = Vec<Option<String>>;

/// What the closure reads of one table, and how it follows that table's links.
struct TablePlan {
    spec: &'static TableSpec,
    columns: Vec<&'static str>,
    /// Links from this table that bring their target: (index of the column, target table).
    brings: Vec<(usize, &'static str)>,
    /// JSON references of this table: (index of the column, reference).
    json: Vec<(usize, &'static relations::JsonReference)>,
    /// Links into this table whose rows come with it.
    members: Vec<Link>,
}

impl TablePlan {
    fn of(spec: &'static TableSpec, links: &[Link]) -> Option<Self> {
        let mut columns = vec![key_column(spec.name)?];
        let mut position = |column: &'static str| match columns.iter().position(|c| *c == column) {
            Some(index) => index,
            None => {
                columns.push(column);
                columns.len() - 1
            }
        };
        let brings = links
            .iter()
            .filter(|link| link.table == spec.name && matches!(link.edge, Edge::Part | Edge::Needs))
            .map(|link| (position(link.column), link.target))
            .collect();
        let json = JSON_REFERENCES.iter().filter(|r| r.table == spec.name).map(|r| (position(r.column), r)).collect();
        let members =
            links.iter().filter(|link| link.target == spec.name && matches!(link.edge, Edge::Part | Edge::Owned));
        Some(Self { spec, columns, brings, json, members: members.copied().collect() })
    }
}

/// The closure being computed.
struct Walk<'s, S: RowSource> {
    source: &'s mut S,
    plans: BTreeMap<&'static str, TablePlan>,
    closure: Closure,
    /// Rows added and not yet followed, per table.
    pending: BTreeMap<&'static str, Vec<Values>>,
    /// Whether rows bring what they need, or only what belongs to them ([`belongings`]).
    follow_needs: bool,
}

impl<S: RowSource> Walk<'_, S> {
    /// Reads the rows of `table` whose `key` is one of `values` and adds them; the ids of
    /// every row found, added now or before.
    fn fetch(&mut self, table: &str, key: RowKey, values: &[String]) -> Result<Vec<String>, S::Error> {
        let Some(plan) = self.plans.get(table) else { return Ok(Vec::new()) };
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let (spec, columns) = (plan.spec, plan.columns.clone());
        let mut found = Vec::new();
        self.source.rows_where(spec, key, values, &columns, &mut |row| found.push(row.to_vec()))?;
        let mut ids = Vec::with_capacity(found.len());
        for row in found {
            let Some(id) = row.first().cloned().flatten() else { continue };
            if self.closure.rows.entry(spec.name).or_default().insert(id.clone()) {
                self.pending.entry(spec.name).or_default().push(row);
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Follows every pending row until none is left.
    fn run(&mut self) -> Result<(), S::Error> {
        while let Some((table, rows)) = self.pending.pop_first() {
            let Some(plan) = self.plans.get(table) else { continue };
            let mut wanted: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
            for row in rows.iter().filter(|_| self.follow_needs) {
                let mut want = |target: &'static str, id: &str| {
                    if !id.is_empty() && !self.closure.contains(target, id) {
                        wanted.entry(target).or_default().insert(id.to_string());
                    }
                };
                for &(index, target) in &plan.brings {
                    if let Some(Some(id)) = row.get(index) {
                        want(target, id);
                    }
                }
                for &(index, reference) in &plan.json {
                    if let Some(Some(text)) = row.get(index) {
                        json_ids(text, reference.path, &mut |id| want(reference.target, id));
                    }
                }
            }
            let ids: Vec<String> = rows.into_iter().filter_map(|row| row.into_iter().next().flatten()).collect();
            for member in plan.members.clone() {
                self.fetch(member.table, RowKey::Column(member.column), &ids)?;
            }
            for (target, ids) in wanted {
                let Some(key) = key_column(target) else { continue };
                self.fetch(target, RowKey::Column(key), &ids.into_iter().collect::<Vec<_>>())?;
            }
        }
        Ok(())
    }
}

/// The closure of `selection` over the rows `source` holds (see the module documentation).
pub fn closure<S: RowSource>(source: &mut S, selection: &Selection) -> Result<Closure, ClosureError<S::Error>> {
    walk(source, selection, true)
}

/// What belongs to the picked items, without what they only need: the picks, a character's
/// chats (unless without chats), a chat's branches, and every row that is a part of one of
/// those or owned by it, to a fixed point — a chat's messages, a character's gallery — but
/// not a chat's character or a character's world books. What a restore as a copy copies.
pub fn belongings<S: RowSource>(source: &mut S, selection: &Selection) -> Result<Closure, ClosureError<S::Error>> {
    walk(source, selection, false)
}

fn walk<S: RowSource>(
    source: &mut S,
    selection: &Selection,
    follow_needs: bool,
) -> Result<Closure, ClosureError<S::Error>> {
    let links = links();
    let plans = crate::registry::TABLES
        .iter()
        .filter_map(|spec| TablePlan::of(spec, &links).map(|plan| (spec.name, plan)))
        .collect();
    let mut walk = Walk { source, plans, closure: Closure::default(), pending: BTreeMap::new(), follow_needs };
    let mut missing = Vec::new();
    let mut characters = Vec::new();
    let mut chats = Vec::new();
    for pick in &selection.picks {
        let table = pick.kind.table();
        let key = key_column(table).map_or(RowKey::Column("id"), RowKey::Column);
        let found = walk.fetch(table, key, std::slice::from_ref(&pick.id)).map_err(ClosureError::Source)?;
        match (found.is_empty(), pick.kind) {
            (true, _) => missing.push(pick.clone()),
            (false, ItemKind::Character) => characters.push(pick.id.clone()),
            (false, ItemKind::Chat) => chats.push(pick.id.clone()),
            (false, _) => {}
        }
    }
    if !missing.is_empty() {
        return Err(ClosureError::NotFound(missing));
    }
    if !selection.without_chats {
        let character_chats = links
            .iter()
            .find(|link| link.table == "chats" && link.target == "characters")
            .map_or("character_id", |link| link.column);
        chats.extend(walk.fetch("chats", RowKey::Column(character_chats), &characters).map_err(ClosureError::Source)?);
    }
    // Branches of the picked chats, and theirs, until no new one turns up.
    let (table, column, key) = BRANCHED_FROM;
    let mut seen: BTreeSet<String> = chats.iter().cloned().collect();
    let mut frontier = chats;
    while !frontier.is_empty() {
        let branches = walk.fetch(table, RowKey::JsonKey { column, key }, &frontier).map_err(ClosureError::Source)?;
        frontier = branches.into_iter().filter(|id| seen.insert(id.clone())).collect();
    }
    walk.run().map_err(ClosureError::Source)?;
    Ok(walk.closure)
}
