//! What a row of the archive may be written as: [`RowRules`], worked out once per table
//! from its live columns and the registry (owner and forced columns, the row filter,
//! required columns, the parent, the references), and [`check_row`], which cleans a row
//! by them or refuses it, asking the backend whose the rows it names are
//! ([`RowLookups`]).

use lvbak_core::registry::{Ownership, ReferenceRule, TableSpec, OWNER_COLUMNS, TABLES};
use serde_json::Value;

use super::ownership::{decide_non_text_reference, decide_reference, Owner, Reference, ReferenceAction};

/// One row, its values aligned with the live columns of its table (`None`: absent).
pub type AlignedRow = Vec<Option<Value>>;

/// A column of a table as the backend has it.
#[derive(Clone, Debug)]
pub(crate) struct LiveColumn {
    pub(crate) name: String,
    /// Not null and without a default: a row must give it.
    pub(crate) required: bool,
    pub(crate) nullable: bool,
    pub(crate) primary_key: bool,
}

/// A reference column of a table, as its rows are checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlannedReference {
    /// The column's place among the live columns, and its name.
    pub(crate) index: usize,
    pub(crate) column: &'static str,
    /// The table it points into.
    pub(crate) target: &'static str,
    pub(crate) rule: ReferenceRule,
    /// Whether the target is applied later than this table (or is this table): such a
    /// reference is settled after every table is in.
    pub(crate) forward: bool,
    /// Whether the column may be empty (a reference to nothing is then cleared).
    pub(crate) nullable: bool,
}

/// What the checks of one table need, by column index.
#[derive(Clone, Debug)]
pub(crate) struct RowRules {
    pub(crate) table: &'static str,
    pub(crate) columns: Vec<LiveColumn>,
    pub(crate) names: Vec<String>,
    /// `user_id` / `installed_by_user_id`: forced to the importer.
    pub(crate) owner_columns: Vec<usize>,
    pub(crate) forced_zero: Vec<usize>,
    pub(crate) filter: Option<(usize, &'static str)>,
    pub(crate) parent: Option<(usize, &'static str)>,
    pub(crate) references: Vec<PlannedReference>,
    pub(crate) id: Option<usize>,
    /// The column numbering the user's rows (`TableSpec::numbered`).
    pub(crate) numbered: Option<usize>,
}

impl RowRules {
    /// The rules of `spec`'s rows, given its live columns in order.
    pub(crate) fn new(spec: &'static TableSpec, columns: Vec<LiveColumn>) -> Self {
        let position = |name: &str| columns.iter().position(|column| column.name == name);
        let order = |name: &str| TABLES.iter().position(|t| t.name == name);
        Self {
            table: spec.name,
            names: columns.iter().map(|column| column.name.clone()).collect(),
            owner_columns: OWNER_COLUMNS.iter().filter_map(|name| position(name)).collect(),
            forced_zero: spec.forced_zero.iter().filter_map(|name| position(name)).collect(),
            filter: spec.row_filter.and_then(|(column, value)| position(column).map(|index| (index, value))),
            parent: match spec.ownership {
                Ownership::Parent { parent_table, column } => position(column).map(|index| (index, parent_table)),
                Ownership::Direct { .. } => None,
            },
            references: spec
                .references
                .iter()
                .filter_map(|r| {
                    position(r.column).map(|index| PlannedReference {
                        index,
                        column: r.column,
                        target: r.table,
                        rule: r.rule,
                        forward: order(r.table) >= order(spec.name),
                        nullable: columns[index].nullable,
                    })
                })
                .collect(),
            id: position("id"),
            numbered: spec.numbered.and_then(position),
            columns,
        }
    }
}

/// What [`check_row`] asks of the backend.
pub(crate) trait RowLookups {
    type Error;
    /// The importer's id.
    fn importer(&self) -> &str;
    /// The id the importer's copy of `original` (a row of `table`) has, if an import gave
    /// it a new one.
    fn remapped(&mut self, table: &'static str, original: &str) -> Result<Option<String>, Self::Error>;
    /// Whether the importer has any copy under a new id (until then nothing is remapped).
    fn any_remapped(&self) -> bool;
    /// Whose row `id` of `table` is.
    fn owner_of(&mut self, table: &'static str, id: &str) -> Result<Owner, Self::Error>;
    /// A scrub-list column to which a row gave a value whose target was not yet the
    /// importer's: it is settled once every table is in.
    fn note_unsettled(&mut self, table: &'static str, column: &'static str);
}

/// Cleans a row for its table, or refuses it (`None`): the owner columns become the
/// importer, forced columns zero; a row outside the table's filter, or without its key or
/// a required column, is refused; parents and references the importer's copies stand in
/// for are brought to the copies; a row whose parent is not the importer's is refused;
/// every reference is kept, cleared, left to settle or refuses its row by its rule.
pub(crate) fn check_row<L: RowLookups>(
    rules: &RowRules,
    mut row: AlignedRow,
    lookups: &mut L,
) -> Result<Option<AlignedRow>, L::Error> {
    // Forced columns first, so later checks see what will be written.
    for &index in &rules.owner_columns {
        row[index] = Some(Value::String(lookups.importer().to_string()));
    }
    for &index in &rules.forced_zero {
        row[index] = Some(Value::from(0));
    }
    let text = |row: &AlignedRow, index: usize| row[index].as_ref().and_then(Value::as_str).map(str::to_string);
    if let Some((index, value)) = rules.filter {
        if text(&row, index).as_deref() != Some(value) {
            return Ok(None);
        }
    }
    for (index, (column, value)) in rules.columns.iter().zip(&row).enumerate() {
        // A missing number is given one (see `numbering`).
        if rules.numbered == Some(index) {
            continue;
        }
        if (column.primary_key || column.required) && value.as_ref().is_none_or(Value::is_null) {
            return Ok(None);
        }
    }
    if lookups.any_remapped() {
        let references = rules.references.iter().map(|r| (r.index, r.target));
        for (index, table) in rules.parent.iter().copied().chain(references) {
            if let Some(original) = text(&row, index) {
                if let Some(new_id) = lookups.remapped(table, &original)? {
                    row[index] = Some(Value::String(new_id));
                }
            }
        }
    }
    if let Some((index, parent_table)) = rules.parent {
        let Some(parent) = text(&row, index) else { return Ok(None) };
        if lookups.owner_of(parent_table, &parent)? != Owner::Importer {
            return Ok(None);
        }
    }
    for &PlannedReference { index, column, target, rule, forward, nullable } in &rules.references {
        let reference = Reference { rule, nullable, forward };
        let named = match &row[index] {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => match decide_non_text_reference(reference) {
                ReferenceAction::Clear => {
                    row[index] = Some(Value::Null);
                    continue;
                }
                _ => return Ok(None),
            },
        };
        if lvbak_core::registry::table_spec(target).is_none() {
            continue;
        }
        let owner = match &named {
            Some(id) => lookups.owner_of(target, id)?,
            None => Owner::Nobody,
        };
        match decide_reference(reference, owner, named.is_some()) {
            ReferenceAction::Keep => {}
            ReferenceAction::Clear => row[index] = Some(Value::Null),
            ReferenceAction::RefuseRow => return Ok(None),
            ReferenceAction::Unsettled => lookups.note_unsettled(rules.table, column),
        }
    }
    Ok(Some(row))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lvbak_core::registry::table_spec;
    use serde_json::json;
    use std::collections::HashMap;

    /// Lookups over a map of (table, id) → owner.
    #[derive(Default)]
    struct Known {
        owners: HashMap<(&'static str, String), Owner>,
        remapped: HashMap<String, String>,
        unsettled: Vec<(&'static str, &'static str)>,
    }

    impl RowLookups for Known {
        type Error = ();
        fn importer(&self) -> &str {
            "me"
        }
        fn remapped(&mut self, _: &'static str, original: &str) -> Result<Option<String>, ()> {
            Ok(self.remapped.get(original).cloned())
        }
        fn any_remapped(&self) -> bool {
            !self.remapped.is_empty()
        }
        fn owner_of(&mut self, table: &'static str, id: &str) -> Result<Owner, ()> {
            Ok(self.owners.get(&(table, id.to_string())).copied().unwrap_or(Owner::Nobody))
        }
        fn note_unsettled(&mut self, table: &'static str, column: &'static str) {
            self.unsettled.push((table, column));
        }
    }

    fn column(name: &str) -> LiveColumn {
        LiveColumn { name: name.into(), required: false, nullable: true, primary_key: name == "id" }
    }

    fn rules(table: &str, names: &[&str]) -> RowRules {
        RowRules::new(table_spec(table).unwrap(), names.iter().map(|name| column(name)).collect())
    }

    #[test]
    fn owner_columns_are_forced_and_parents_must_be_the_importers() {
        let messages = rules("messages", &["id", "chat_id", "content"]);
        let mut known = Known::default();
        let row = vec![Some(json!("m1")), Some(json!("c1")), Some(json!("hi"))];
        assert_eq!(check_row(&messages, row.clone(), &mut known).unwrap(), None);
        known.owners.insert(("chats", "c1".into()), Owner::Someone);
        assert_eq!(check_row(&messages, row.clone(), &mut known).unwrap(), None);
        known.owners.insert(("chats", "c1".into()), Owner::Importer);
        assert_eq!(check_row(&messages, row.clone(), &mut known).unwrap(), Some(row.clone()));
        // A copied parent: the row follows it.
        known.remapped.insert("c1".into(), "c1-copy".into());
        known.owners.insert(("chats", "c1-copy".into()), Owner::Importer);
        let checked = check_row(&messages, row, &mut known).unwrap().unwrap();
        assert_eq!(checked[1], Some(json!("c1-copy")));
        let characters = rules("characters", &["id", "name", "user_id"]);
        let row = vec![Some(json!("x")), Some(json!("A")), Some(json!("someone-else"))];
        assert_eq!(check_row(&characters, row, &mut known).unwrap().unwrap()[2], Some(json!("me")));
        let keyless = vec![None, Some(json!("A")), None];
        assert_eq!(check_row(&characters, keyless, &mut known).unwrap(), None);
    }

    #[test]
    fn references_to_other_accounts_are_cleared_refused_or_left_to_settle() {
        let characters = rules("characters", &["id", "image_id", "user_id"]);
        let mut known = Known::default();
        known.owners.insert(("images", "theirs".into()), Owner::Someone);
        let row = |image: Value| vec![Some(json!("c")), Some(image), None];
        // images come before characters: someone else's image is cleared at once.
        assert_eq!(check_row(&characters, row(json!("theirs")), &mut known).unwrap().unwrap()[1], Some(Value::Null));
        // A missing one waits to be settled.
        let kept = check_row(&characters, row(json!("missing")), &mut known).unwrap().unwrap();
        assert_eq!(kept[1], Some(json!("missing")));
        assert_eq!(known.unsettled, vec![("characters", "image_id")]);
        // A number where an id belongs is cleared.
        assert_eq!(check_row(&characters, row(json!(7)), &mut known).unwrap().unwrap()[1], Some(Value::Null));
        let gallery = rules("character_gallery", &["id", "character_id", "image_id", "user_id"]);
        known.owners.insert(("characters", "c".into()), Owner::Importer);
        let row = vec![Some(json!("g")), Some(json!("c")), Some(json!("theirs")), None];
        assert_eq!(check_row(&gallery, row, &mut known).unwrap(), None);
    }
}
