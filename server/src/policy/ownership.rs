//! Whose a row is, as the importer sees it, and what a reference becomes when the row it
//! names is missing or another account's (FORMAT §4, the registry's `ReferenceRule`s).

use lvbak_core::registry::ReferenceRule;

/// Who a row belongs to, as seen by the importer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Importer,
    Someone,
    Nobody,
}

/// What merge by id does with an archive row, by whose its id is here (`None`: nobody's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Merge {
    /// The id is free: the row is inserted as it is.
    Insert,
    /// The importer has that row: it is kept as it is (the archive's is skipped).
    Skip,
    /// Another account has that id: the row is imported as a copy under an id of the
    /// importer's own, and the import's references to it follow (see `policy::ids`).
    Copy,
}

/// Merge by id (FORMAT §4): never overwrite, never touch another account's row.
pub(crate) fn merge(existing: Option<Owner>) -> Merge {
    match existing {
        None | Some(Owner::Nobody) => Merge::Insert,
        Some(Owner::Importer) => Merge::Skip,
        Some(Owner::Someone) => Merge::Copy,
    }
}

/// What becomes of a reference column of a row being imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReferenceAction {
    /// Written as it is.
    Keep,
    /// Written empty.
    Clear,
    /// The row is refused.
    RefuseRow,
    /// Written as it is for now; once every table is in it is settled (brought to the
    /// importer's copy) or cleared if it still names someone else's row or none.
    Unsettled,
}

/// A reference column, as the rule needs to know it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reference {
    pub rule: ReferenceRule,
    /// Whether the column may be empty.
    pub nullable: bool,
    /// Whether the target table is applied later than this one (or is this one).
    pub forward: bool,
}

/// What a reference that names `owner`'s row becomes; `named` is whether it names a row at
/// all (a non-empty id).
pub(crate) fn decide_reference(reference: Reference, owner: Owner, named: bool) -> ReferenceAction {
    let Reference { rule, nullable, forward } = reference;
    match (rule, owner) {
        (ReferenceRule::RequireOwn, Owner::Importer) => ReferenceAction::Keep,
        (ReferenceRule::RequireOwn, _) => ReferenceAction::RefuseRow,
        (ReferenceRule::RejectWhenForeign, Owner::Someone) => ReferenceAction::RefuseRow,
        // A reference to a row that is not there is cleared, or its row refused where it
        // may not be empty: left dangling, it would point at whichever account imports
        // that id next (and be deleted with that account's row).
        (ReferenceRule::RejectWhenForeign, Owner::Nobody) if named => {
            if nullable {
                ReferenceAction::Clear
            } else {
                ReferenceAction::RefuseRow
            }
        }
        // A target applied later may yet become the importer's copy: settled (and
        // scrubbed if still someone else's) once every table is in.
        (ReferenceRule::ScrubWhenMissing, Owner::Someone) if !forward => ReferenceAction::Clear,
        (ReferenceRule::ScrubWhenMissing, Owner::Someone | Owner::Nobody) if named => ReferenceAction::Unsettled,
        _ => ReferenceAction::Keep,
    }
}

/// What a reference whose value is not text (nor empty) becomes: ids are text, so it names
/// none of the importer's rows, and a backend could store it as text a row imported later
/// matches. Cleared where it may be, else its row is refused.
pub(crate) fn decide_non_text_reference(reference: Reference) -> ReferenceAction {
    if reference.nullable && reference.rule != ReferenceRule::RequireOwn {
        ReferenceAction::Clear
    } else {
        ReferenceAction::RefuseRow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReferenceAction::*;
    use ReferenceRule::*;

    fn reference(rule: ReferenceRule, nullable: bool, forward: bool) -> Reference {
        Reference { rule, nullable, forward }
    }

    #[test]
    fn rows_are_inserted_skipped_or_copied_by_whose_id_it_is() {
        assert_eq!(merge(None), Merge::Insert);
        assert_eq!(merge(Some(Owner::Importer)), Merge::Skip);
        assert_eq!(merge(Some(Owner::Someone)), Merge::Copy);
    }

    #[test]
    fn references_follow_their_rule_and_owner() {
        let own = reference(RequireOwn, true, false);
        assert_eq!(decide_reference(own, Owner::Importer, true), Keep);
        assert_eq!(decide_reference(own, Owner::Someone, true), RefuseRow);
        assert_eq!(decide_reference(own, Owner::Nobody, false), RefuseRow);
        let checked = reference(RejectWhenForeign, true, false);
        assert_eq!(decide_reference(checked, Owner::Someone, true), RefuseRow);
        assert_eq!(decide_reference(checked, Owner::Nobody, true), Clear);
        assert_eq!(decide_reference(reference(RejectWhenForeign, false, false), Owner::Nobody, true), RefuseRow);
        assert_eq!(decide_reference(checked, Owner::Nobody, false), Keep);
        assert_eq!(decide_reference(checked, Owner::Importer, true), Keep);
        let scrub = reference(ScrubWhenMissing, true, false);
        assert_eq!(decide_reference(scrub, Owner::Someone, true), Clear);
        assert_eq!(decide_reference(scrub, Owner::Nobody, true), Unsettled);
        assert_eq!(decide_reference(reference(ScrubWhenMissing, true, true), Owner::Someone, true), Unsettled);
        assert_eq!(decide_reference(scrub, Owner::Importer, true), Keep);
        assert_eq!(decide_non_text_reference(scrub), Clear);
        assert_eq!(decide_non_text_reference(own), RefuseRow);
        assert_eq!(decide_non_text_reference(reference(ScrubWhenMissing, false, false)), RefuseRow);
    }
}
