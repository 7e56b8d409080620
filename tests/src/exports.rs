//! Two archives' entries compared, as the tests that hold one storage's export against
//! another's do: the same entry names, and each entry the same, the first difference named.
#![allow(clippy::panic)]

use std::collections::BTreeMap;

/// Asserts `ours` and `theirs` (entries by name; each side called by its `names`) hold the
/// same entries with the same contents, naming the first entry that differs and its first
/// differing line.
pub fn assert_same_entries(
    label: &str,
    names: (&str, &str),
    ours: &BTreeMap<String, Vec<u8>>,
    theirs: &BTreeMap<String, Vec<u8>>,
) {
    let listed = |entries: &BTreeMap<String, Vec<u8>>| entries.keys().cloned().collect::<Vec<_>>();
    assert_eq!(listed(ours), listed(theirs), "{label}: the entries differ");
    for (name, content) in ours {
        if content != &theirs[name] {
            let (a, b) = (String::from_utf8_lossy(content), String::from_utf8_lossy(&theirs[name]));
            let first = a.lines().zip(b.lines()).find(|(x, y)| x != y);
            panic!(
                "{label}: {name} differs ({} and {} lines); first difference:\n--- {}\n{:?}\n--- {}\n{:?}",
                a.lines().count(),
                b.lines().count(),
                names.0,
                first.map(|(x, _)| x),
                names.1,
                first.map(|(_, y)| y),
            );
        }
    }
}
