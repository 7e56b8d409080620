//! Text from an archive (or from the server's answers about one) made safe to print on a
//! terminal: every control character a terminal would act on is written as a visible
//! escape, so an archive cannot clear the screen, retitle the window or fake a line.

use std::borrow::Cow;
use std::fmt::Write as _;

/// What becomes of line breaks and tabs in a text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Breaks {
    /// One field of a line: `\n` and `\t` are escaped like every other control.
    #[default]
    Escape,
    /// Prose of several lines: `\n` and `\t` pass (a `\r`, which could overwrite what the
    /// line said, is still escaped).
    Keep,
}

/// `text` with every C0 control, DEL, C1 control (U+0080–U+009F) and Unicode bidi control
/// written as an escape (`\x1b`, `\n`, `\u{9b}`, `\u{202e}`, as Rust's `{:?}` writes them);
/// everything else, backslashes included, unchanged.
pub fn printable(text: &str, breaks: Breaks) -> Cow<'_, str> {
    if !text.chars().any(|c| is_acted_on(c, breaks)) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            _ if !is_acted_on(c, breaks) => shown.push(c),
            '\n' => shown.push_str("\\n"),
            '\t' => shown.push_str("\\t"),
            '\r' => shown.push_str("\\r"),
            '\0'..='\x7f' => {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            }
            _ => {
                let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(shown)
}

/// One field of a line (a name, a message): [`printable`] with every break escaped.
pub fn field(text: &str) -> Cow<'_, str> {
    printable(text, Breaks::Escape)
}

/// Whether a terminal would act on `c` rather than show it.
fn is_acted_on(c: char, breaks: Breaks) -> bool {
    match c {
        '\n' | '\t' => breaks == Breaks::Escape,
        // C0, DEL, C1.
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        // Bidi marks, embeddings, overrides and isolates: they reorder what follows.
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in ["", "characters", r"C:\backups\dana.lvbak", "Grüße — 東京 🎉", "non\u{a0}breaking", "a\\x1b"]
        {
            assert!(matches!(field(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
    }

    #[test]
    fn terminal_controls_become_visible_escapes() {
        let cases = [
            ("\u{1b}[2J", r"\x1b[2J"),
            ("\u{1b}]0;title\u{7}", r"\x1b]0;title\x07"),
            ("\0 \u{8} \u{7f}", r"\x00 \x08 \x7f"),
            ("a\nb\tc\rd", r"a\nb\tc\rd"),
            ("\u{80} \u{9b}31m \u{9f} \u{a0}", "\\u{80} \\u{9b}31m \\u{9f} \u{a0}"),
            ("\u{202e}kcab", r"\u{202e}kcab"),
            ("\u{202a}\u{202b}\u{202c}\u{202d}", r"\u{202a}\u{202b}\u{202c}\u{202d}"),
            ("\u{2066}\u{2067}\u{2068}\u{2069}", r"\u{2066}\u{2067}\u{2068}\u{2069}"),
            ("\u{200e}\u{200f}\u{61c}", r"\u{200e}\u{200f}\u{61c}"),
            ("é\u{1b}é", r"é\x1bé"),
        ];
        for (text, shown) in cases {
            assert_eq!(field(text), shown, "{text:?}");
        }
    }

    #[test]
    fn prose_keeps_its_lines_and_tabs_but_not_carriage_returns() {
        assert_eq!(printable("one\n\ttwo", Breaks::Keep), "one\n\ttwo");
        assert_eq!(printable("done\rfailed\u{1b}[0m", Breaks::Keep), r"done\rfailed\x1b[0m");
        assert_eq!(printable("one\n\ttwo", Breaks::default()), r"one\n\ttwo");
    }
}
