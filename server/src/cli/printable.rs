//! Text from an archive (or from the server's answers about one) made safe to print on a
//! terminal: every control character a terminal would act on is written as a visible
//! escape, so an archive cannot clear the screen, retitle the window or fake a line.
//! JSON output goes through [`print_json`], which writes those controls as `\uXXXX`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter, Serializer};

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

/// How [`print_json`] lays a value out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonLayout {
    /// One line (what a script reads line by line).
    Line,
    /// Indented, over several lines.
    Pretty,
}

/// Writes `value` as JSON and a line break to `out`, in one write. Strings are escaped as
/// serde_json escapes them, and also every DEL, C1 and bidi control they hold is written as
/// a `\uXXXX` escape, which serde_json would write raw: the JSON reads back the same value.
pub fn print_json(out: &mut impl io::Write, value: &impl Serialize, layout: JsonLayout) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    match layout {
        JsonLayout::Line => {
            value.serialize(&mut Serializer::with_formatter(&mut line, TerminalSafe(CompactFormatter)))?;
        }
        JsonLayout::Pretty => {
            value.serialize(&mut Serializer::with_formatter(&mut line, TerminalSafe(PrettyFormatter::new())))?;
        }
    }
    line.push(b'\n');
    out.write_all(&line)
}

/// A serde_json formatter that writes string contents terminal-safe, the rest as its inner
/// formatter does. Only [`CompactFormatter`] and [`PrettyFormatter`] are wrapped: the
/// methods those two define are the ones passed on.
struct TerminalSafe<F>(F);

impl<F: Formatter> Formatter for TerminalSafe<F> {
    /// `fragment` is a run serde_json writes unescaped: no C0 control, quote or backslash,
    /// but maybe DEL, C1 or bidi controls, all below U+10000, so one `\uXXXX` each.
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if is_acted_on(c, Breaks::Escape) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

/// Whether `c` is a bidi control (mark, embedding, override or isolate): it reorders what
/// follows it on the line.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether a terminal would act on `c` rather than show it.
fn is_acted_on(c: char, breaks: Breaks) -> bool {
    match c {
        '\n' | '\t' => breaks == Breaks::Escape,
        // C0, DEL, C1.
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        _ => is_bidi_control(c),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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

    fn json_of(value: &serde_json::Value, layout: JsonLayout) -> String {
        let mut out = Vec::new();
        print_json(&mut out, value, layout).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_writes_del_c1_and_bidi_controls_as_escapes_in_values_and_keys() {
        let hostile = "\u{1b}[2J\u{7f}\u{80}\u{9b}31m\u{9f}\u{61c}\u{200e}\u{200f}\u{202a}\u{202e}kcab\u{2066}\u{2069}";
        let value = serde_json::json!({hostile: [hostile, {"inner": hostile}], "plain": 1});
        for layout in [JsonLayout::Line, JsonLayout::Pretty] {
            let text = json_of(&value, layout);
            let escaped = r"\u001b[2J\u007f\u0080\u009b31m\u009f\u061c\u200e\u200f\u202a\u202ekcab\u2066\u2069";
            assert_eq!(text.matches(escaped).count(), 3, "{layout:?}: {text}");
            assert_eq!(text.chars().find(|&c| is_acted_on(c, Breaks::Keep)), None, "{layout:?}: {text:?}");
            assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value, "{layout:?}");
            assert!(text.ends_with('\n') && !text[..text.len() - 1].ends_with('\n'), "{layout:?}: {text:?}");
        }
    }

    #[test]
    fn json_without_those_controls_is_what_serde_json_writes() {
        let value = serde_json::json!({
            "name": "Grüße — 東京 🎉\u{a0}\u{2028}",
            "path": "C:\\backups\\\"dana\".lvbak",
            "lines": "a\nb\tc\u{1b}",
            "numbers": [0, -1, 2.5, 18446744073709551615u64],
            "empty": {}, "none": [], "null": null, "yes": true,
        });
        assert_eq!(json_of(&value, JsonLayout::Line), format!("{value}\n"));
        assert_eq!(json_of(&value, JsonLayout::Pretty), format!("{}\n", serde_json::to_string_pretty(&value).unwrap()));
    }

    #[test]
    fn json_escapes_controls_split_across_serde_fragments() {
        // serde_json hands the formatter the runs between its own escapes; a control right
        // beside one of those, or at a run's either end, is still caught.
        let value = serde_json::json!(["\u{202e}\"\u{9b}\\\u{7f}\n\u{2069}", "\u{9b}", "x\u{7f}"]);
        let text = json_of(&value, JsonLayout::Line);
        assert_eq!(text.trim_end(), r#"["\u202e\"\u009b\\\u007f\n\u2069","\u009b","x\u007f"]"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value);
    }
}

/// A refused command: its code and words (printed, or as one JSON object under `--json`).
#[derive(serde::Serialize)]
pub(crate) struct Refusal {
    pub(crate) ok: bool,
    pub(crate) code: String,
    pub(crate) message: String,
}
