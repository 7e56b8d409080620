//! The demo account's words: character names and lines of prose.

pub(super) const NAMES: [&str; 8] =
    ["Mira Vale", "Rowan Ash", "Captain Ilse", "Tobin Reed", "Seraphine", "Old Gregor", "Nyx", "Wren"];
pub(super) const LINES: [&str; 10] = [
    "The lantern light trembled across the map as she traced the smugglers' route.",
    "\"If the tide holds, we reach the cove before the watch changes,\" he murmured.",
    "Rain drummed on the canvas while the gulls circled the harbour.",
    "Somewhere below, the bells rang twice — a signal, or a warning.",
    "She laughed, quietly, and slid the brass key across the table.",
    "\"You kept it all these years?\" The question hung in the salt air.",
    "The ledger listed three ships that never reached port.",
    "Footsteps on the stairs. Too heavy for the innkeeper.",
    "He pocketed the letter without reading it — he already knew the hand.",
    "By dawn the fog had swallowed the lighthouse whole.",
];

pub(super) fn prose(seed: usize, sentences: usize) -> String {
    (0..sentences).map(|i| LINES[(seed * 7 + i * 3) % LINES.len()]).collect::<Vec<_>>().join(" ")
}
