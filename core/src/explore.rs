//! The archive explorer: a read-only view of a backup's characters, personas, world books,
//! presets, images and chats, built from the archive alone (the browser's Worker runs it on
//! the user's local file; nothing is uploaded).
//!
//! Random access without loading the archive: [`ExploreIndex::build`] streams each table it
//! shows once and keeps compact cards plus, for child rows, only their line numbers grouped
//! by parent (a chat's messages in chat order, a world book's entries). A chat's transcript
//! and a book's entries are read a page at a time ([`ExploreIndex::chat_page`],
//! [`ExploreIndex::world_book_page`]), reading the entry only up to the page's last line;
//! the lists are handed out a page at a time too ([`ExploreIndex::list_page`]); search
//! streams the messages entry and hands hits over as they are found
//! ([`ExploreIndex::search`]).
//!
//! Everything kept or handed out is bounded by design, whatever the archive holds: every
//! text a card keeps is clipped ([`ID_TEXT`], [`NAME_TEXT`], [`CARD_TEXT`]); a group chat
//! shows at most [`MEMBERS_SHOWN`] distinct members and counts the rest, member names are
//! held once however many chats name them ([`SharedText`]), and the whole index shows at
//! most [`MEMBER_SLOTS`] members; the gallery keeps [`IMAGE_CARDS`] images; rows are read
//! through [`parse_row_aligned`] (only the columns shown, scalars only), so no row grows in
//! memory past a few times its line. So memory is one bounded card per row plus 4 bytes per
//! message and entry, and every answer is a bounded page: [`LIST_PAGE`] cards,
//! [`MESSAGE_PAGE`] messages of at most [`MESSAGE_TEXT`] characters each, [`ENTRY_PAGE`]
//! entries, [`SEARCH_HITS`] hits; file bytes are read one file at a time, under a cap
//! ([`ExploreIndex::file`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{Read, Seek};
use std::sync::Arc;

use memchr::memmem;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::archive::Archive;
use crate::error::{FormatError, Result};
use crate::line_index::{LineIndex, SPAN};
use crate::ndjson::{bad_json, parse_row_aligned, NdjsonLines, UnknownColumns};

/// Characters of an id kept (Lumiverse's ids are 36-character UUIDs); a longer one is
/// clipped, the same way wherever it is read, so references still meet.
pub const ID_TEXT: usize = 64;

/// Characters of a name kept (characters, chats, personas, world books, presets, images,
/// group members, message authors, world-book keys).
pub const NAME_TEXT: usize = 100;

/// Characters of free text kept per card (descriptions, entry comments).
pub const CARD_TEXT: usize = 280;

/// A group chat's members shown at most (distinct); the rest are counted.
pub const MEMBERS_SHOWN: usize = 64;

/// Members shown across the whole index: past this, group chats only count theirs.
pub const MEMBER_SLOTS: usize = 1 << 20;

/// Distinct member ids that are not characters of the archive, kept as labels at most.
const UNKNOWN_MEMBERS: usize = 4096;

/// Distinct ids remembered while counting a group's further members (past this, ids are
/// counted as they come).
const MEMBER_IDS_COUNTED: usize = 1 << 20;

/// Images of the gallery kept at most; the rest are counted.
pub const IMAGE_CARDS: usize = 1000;

/// Cards in one page of a list.
pub const LIST_PAGE: usize = 100;

/// Messages in one page of a transcript.
pub const MESSAGE_PAGE: usize = 200;

/// Characters of one message handed out, across its swipes (the shown swipe first).
pub const MESSAGE_TEXT: usize = 40_000;

/// Swipes of one message handed out at most (around the shown one); the rest are counted.
pub const SWIPES_KEPT: usize = 64;

/// Entries in one page of a world book.
pub const ENTRY_PAGE: usize = 100;

/// Characters of one world-book entry's content handed out.
pub const ENTRY_TEXT: usize = 40_000;

/// Keys of one world-book entry handed out; the rest are counted.
pub const ENTRY_KEYS: usize = 32;

/// Hits one search hands out at most.
pub const SEARCH_HITS: usize = 1000;

/// Characters of a message's text around a search hit.
const SNIPPET: usize = 120;

/// The longest file name a picture can have (file systems allow 255 bytes).
const FILE_NAME_BYTES: usize = 255;

/// The largest file the explorer hands to the page (an avatar, an image).
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Text that many cards show (a character's name on each of its chats, a group's
/// members): held once, however many cards name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedText(Arc<str>);

impl SharedText {
    fn new(text: &str) -> Self {
        Self(Arc::from(text))
    }
}

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl Serialize for SharedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A character, as the explorer lists it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CharacterCard {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The archive entry of its picture (`files/avatars/…` or the gallery image), if any.
    pub avatar: Option<String>,
    pub chats: u32,
    #[serde(skip)]
    image_id: Option<String>,
    /// Its line in `database/characters.ndjson` (0 past `u32::MAX`), for cards.
    #[serde(skip)]
    pub(crate) line: u32,
}

/// A persona.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersonaCard {
    pub id: String,
    pub name: String,
    pub description: String,
    pub avatar: Option<String>,
    #[serde(skip)]
    image_id: Option<String>,
}

/// A world book; its entries are read a page at a time when it is opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorldBookCard {
    pub id: String,
    pub name: String,
    pub description: String,
    pub entries: u32,
    /// Line numbers (1-based) of its entries in `database/world_book_entries.ndjson`.
    #[serde(skip)]
    pub(crate) lines: Vec<u32>,
}

/// One world-book entry, when its book is opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorldBookEntryView {
    pub id: String,
    /// The first [`ENTRY_KEYS`] keys, each clipped to [`NAME_TEXT`].
    pub keys: Vec<String>,
    /// Keys past those.
    pub keys_more: usize,
    pub comment: String,
    /// Clipped to [`ENTRY_TEXT`].
    pub content: String,
    pub disabled: bool,
}

/// A preset.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PresetCard {
    pub id: String,
    pub name: String,
    pub provider: String,
}

/// An image of the gallery.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageCard {
    pub id: String,
    pub name: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// The archive entry to show in a gallery: the small thumbnail when there is one.
    pub thumbnail: Option<String>,
    /// The archive entry of the original.
    pub original: Option<String>,
}

/// A chat; its messages are read a page at a time when it is opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatCard {
    pub id: String,
    pub name: String,
    pub character_id: Option<String>,
    pub character_name: Option<SharedText>,
    pub messages: u32,
    pub updated_at: Option<i64>,
    /// A branch: the chat it was forked from and the message it forked at (Lumiverse keeps
    /// both in the chat's metadata as `branched_from` / `branch_at_message`).
    pub branched_from: Option<String>,
    pub branch_at_message: Option<String>,
    /// The forked-at message's place in the parent chat, when it is in the archive.
    pub branch_at_index: Option<i64>,
    /// A group chat's members (Lumiverse keeps `group: true` and `character_ids` in the
    /// chat's metadata), distinct, by name where the archive has the character, at most
    /// [`MEMBERS_SHOWN`]; empty otherwise.
    pub members: Vec<SharedText>,
    /// Distinct members the metadata names past those shown.
    pub members_more: u32,
    /// Line numbers (1-based) of its messages in `database/messages.ndjson`, in chat order
    /// (by `index_in_chat`, then line).
    #[serde(skip)]
    lines: Vec<u32>,
}

/// One message of an opened chat.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub index: i64,
    pub is_user: bool,
    pub name: String,
    /// Swipes around the shown one (one, the content, when the message has none recorded),
    /// at most [`SWIPES_KEPT`], together at most [`MESSAGE_TEXT`] characters (the shown one
    /// first; a swipe cut short ends with "…").
    pub swipes: Vec<String>,
    /// The swipe shown, within `swipes`.
    pub swipe_id: usize,
    /// The place of `swipes[0]` among all the message's swipes.
    pub swipes_from: usize,
    /// How many swipes the message has.
    pub swipes_total: usize,
    pub send_date: Option<i64>,
}

/// What a search found.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SearchHit {
    Character {
        id: String,
        name: String,
    },
    Chat {
        id: String,
        name: String,
    },
    #[serde(rename_all = "camelCase")]
    Message {
        chat_id: String,
        chat_name: String,
        message_id: String,
        index: i64,
        /// Its place in the chat's transcript (0-based), for opening the page it is on;
        /// `None` for a message of a chat the archive does not list.
        position: Option<u32>,
        snippet: String,
    },
}

/// How big the index is and what building it read.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexStats {
    /// Rows read while building.
    pub rows: u64,
    /// Bytes of the index held in memory (an estimate: strings and lists, not allocator slack).
    pub index_bytes: u64,
}

/// The lists the explorer pages through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum List {
    Characters,
    Personas,
    WorldBooks,
    Presets,
    Images,
    Chats,
}

impl List {
    /// The list a page names (`characters`, `personas`, `worldBooks`, `presets`, `images`,
    /// `chats`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "characters" => Self::Characters,
            "personas" => Self::Personas,
            "worldBooks" => Self::WorldBooks,
            "presets" => Self::Presets,
            "images" => Self::Images,
            "chats" => Self::Chats,
            _ => return None,
        })
    }
}

/// A chat as a list or transcript hands it out: its card and its parent's name.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatItem<'a> {
    #[serde(flatten)]
    pub card: &'a ChatCard,
    /// The name of the chat it was branched from, when the archive has that chat.
    pub branched_from_name: Option<&'a str>,
}

/// The cards of one page of a list.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum ListItems<'a> {
    Characters(Vec<&'a CharacterCard>),
    Personas(Vec<&'a PersonaCard>),
    WorldBooks(Vec<&'a WorldBookCard>),
    Presets(Vec<&'a PresetCard>),
    Images(Vec<&'a ImageCard>),
    Chats(Vec<ChatItem<'a>>),
}

impl ListItems<'_> {
    pub fn len(&self) -> usize {
        match self {
            Self::Characters(items) => items.len(),
            Self::Personas(items) => items.len(),
            Self::WorldBooks(items) => items.len(),
            Self::Presets(items) => items.len(),
            Self::Images(items) => items.len(),
            Self::Chats(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One page of a list: at most [`LIST_PAGE`] cards from `start`, of `total`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<'a> {
    pub list: List,
    /// The character whose chats these are, when the chats were asked for by character.
    pub character_id: Option<&'a str>,
    pub start: usize,
    pub total: usize,
    pub items: ListItems<'a>,
}

/// What the explorer shows first: the first page of every list, and the index's size.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    pub characters: ListPage<'a>,
    pub personas: ListPage<'a>,
    pub world_books: ListPage<'a>,
    pub presets: ListPage<'a>,
    pub images: ListPage<'a>,
    pub chats: ListPage<'a>,
    /// Images in the archive (the gallery keeps [`IMAGE_CARDS`]).
    pub images_total: u64,
    pub stats: IndexStats,
}

/// One page of a chat's transcript: at most [`MESSAGE_PAGE`] messages from `start` (a place
/// in chat order), of `total`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatPage<'a> {
    /// The chat, or `None` when the archive lists no such chat.
    pub chat: Option<ChatItem<'a>>,
    pub start: usize,
    pub total: usize,
    pub messages: Vec<MessageView>,
}

/// One page of a world book's entries: at most [`ENTRY_PAGE`] from `start`, of `total`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookPage<'a> {
    pub book: Option<&'a WorldBookCard>,
    pub start: usize,
    pub total: usize,
    pub entries: Vec<WorldBookEntryView>,
}

/// The explorer's index of one archive (see the module documentation).
#[derive(Debug, Default)]
pub struct ExploreIndex {
    pub characters: Vec<CharacterCard>,
    pub personas: Vec<PersonaCard>,
    pub world_books: Vec<WorldBookCard>,
    pub presets: Vec<PresetCard>,
    /// The first [`IMAGE_CARDS`] images of the gallery, of `images_total`.
    pub images: Vec<ImageCard>,
    pub images_total: u64,
    pub chats: Vec<ChatCard>,
    pub stats: IndexStats,
    /// Each chat's place in `chats`, by id (the first chat of an id).
    chat_at: HashMap<String, u32>,
    /// Each world book's place in `world_books`, by id.
    book_at: HashMap<String, u32>,
    /// Points into the characters and world-book entries tables (when deflated), so a
    /// card reads its rows without inflating everything before them.
    pub(crate) character_lines: Option<LineIndex>,
    pub(crate) entry_lines: Option<LineIndex>,
}

/// The first `limit` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, limit: usize) -> String {
    clipped(text, limit).into_owned()
}

/// [`clip`], borrowing `text` when it is short enough.
fn clipped(text: &str, limit: usize) -> Cow<'_, str> {
    match text.char_indices().nth(limit) {
        Some((at, _)) => Cow::Owned(format!("{}…", text[..at].trim_end())),
        None => Cow::Borrowed(text),
    }
}

/// [`clip`], keeping `text` as it is when it is short enough.
fn clip_cow(text: Cow<'_, str>, limit: usize) -> Cow<'_, str> {
    if text.char_indices().nth(limit).is_some() {
        Cow::Owned(clip(&text, limit))
    } else {
        text
    }
}

/// A column's text, clipped to `limit` characters; empty when it is not text.
fn text(value: &Option<Value>, limit: usize) -> String {
    value.as_ref().and_then(Value::as_str).map(|s| clip(s, limit)).unwrap_or_default()
}

/// A column's text, clipped, or `None` when it is empty or not text.
fn optional_text(value: &Option<Value>, limit: usize) -> Option<String> {
    value.as_ref().and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| clip(s, limit))
}

fn integer(value: &Option<Value>) -> Option<i64> {
    value.as_ref().and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// A SQLite boolean: 1 (or `true`).
fn flag(value: &Option<Value>) -> bool {
    value.as_ref().is_some_and(|v| v.as_i64() == Some(1) || v.as_bool() == Some(true))
}

/// The archive entry of a picture a row names by its stored path (`avatars/x.png` →
/// `files/avatars/x.png`); `None` for a name no file could have.
fn picture_entry(value: &Option<Value>, bucket: &str) -> Option<String> {
    let path = value.as_ref().and_then(Value::as_str)?;
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    (!name.is_empty() && name.len() <= FILE_NAME_BYTES).then(|| format!("files/{bucket}/{name}"))
}

/// Streams the rows of `table` (if the archive has it), handing `each` the values of
/// `columns` in that order (scalars only: anything else is `bad_json`, as when importing).
/// Answers how many rows there were.
fn each_row<R: Read + Seek, const N: usize>(
    archive: &mut Archive<R>,
    table: &str,
    columns: [&str; N],
    mut each: impl FnMut([Option<Value>; N]),
) -> Result<u64> {
    Ok(stream_rows(archive, table, columns, false, |_, values| each(values))?.0)
}

/// Hands `row` every line of `entry` (its name, line number and bytes): with `indexed`,
/// through a [`LineIndex`] built on the way and answered (when the entry can have one),
/// otherwise by a plain reading.
fn each_line<R: Read + Seek>(
    archive: &mut Archive<R>,
    entry: usize,
    indexed: bool,
    mut row: impl FnMut(&str, u64, &[u8]) -> Result<()>,
) -> Result<Option<LineIndex>> {
    let index = if indexed { LineIndex::build(archive, entry, SPAN, &mut row)? } else { None };
    if index.is_none() {
        let mut lines = archive.ndjson_lines(entry)?;
        let name = lines.entry().to_string();
        while let Some((number, line)) = lines.next_line()? {
            row(&name, number, line)?;
        }
    }
    Ok(index)
}

/// [`each_row`], with each row's line number; with `indexed`, a deflated table is read
/// through a [`LineIndex`] that is kept.
fn stream_rows<R: Read + Seek, const N: usize>(
    archive: &mut Archive<R>,
    table: &str,
    columns: [&str; N],
    indexed: bool,
    mut each: impl FnMut(u64, [Option<Value>; N]),
) -> Result<(u64, Option<LineIndex>)> {
    let Some(entry) = archive.table_entry(table) else { return Ok((0, None)) };
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let unknown = UnknownColumns::default();
    let mut rows = 0;
    let mut row = |name: &str, number: u64, line: &[u8]| -> Result<()> {
        let values = parse_row_aligned(name, number, line, &columns, &unknown)?;
        if let Ok(values) = <[Option<Value>; N]>::try_from(values) {
            each(number, values);
        }
        rows += 1;
        Ok(())
    };
    let index = each_line(archive, entry, indexed, &mut row)?;
    Ok((rows, index))
}

/// Any JSON value, keeping only what the explorer reads of a loosely typed field: text
/// (borrowed from the line when it has no escapes), an integer, a boolean. Arrays and
/// objects are skipped without being built.
#[derive(Debug, Default)]
enum Loose<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Bool(bool),
    #[default]
    Other,
}

impl<'a> Loose<'a> {
    fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The text clipped to an id, or `None` when empty or not text.
    fn id(&self) -> Option<Cow<'_, str>> {
        self.text().filter(|t| !t.is_empty()).map(|t| clipped(t, ID_TEXT))
    }

    fn integer(&self) -> Option<i64> {
        match self {
            Self::Integer(n) => Some(*n),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct LooseVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Integer(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Integer(v as i64))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Loose<'a>, E> {
                Ok(Loose::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Loose<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Loose<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        deserializer.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

/// The strings of a JSON array at places `from..to`, and how many elements it has;
/// elements that are not text are kept as empty text, the others are skipped unbuilt.
/// Anything but an array is an error (which [`array_window`] takes as no list).
struct Window {
    from: usize,
    to: usize,
}

impl<'de> DeserializeSeed<'de> for Window {
    type Value = (Vec<Cow<'de, str>>, usize);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Window {
    type Value = (Vec<Cow<'de, str>>, usize);

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let (mut kept, mut total) = (Vec::new(), 0);
        loop {
            if (self.from..self.to).contains(&total) {
                let Some(element) = seq.next_element::<Loose<'de>>()? else { break };
                kept.push(match element {
                    Loose::Text(text) => text,
                    _ => Cow::Borrowed(""),
                });
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            total += 1;
        }
        Ok((kept, total))
    }
}

/// The strings at places `from..to` of the JSON array a text column holds, and how many
/// elements it has (none when the column holds no array).
fn array_window<'v>(value: &'v Option<Value>, from: usize, to: usize) -> (Vec<Cow<'v, str>>, usize) {
    let Some(json) = value.as_ref().and_then(Value::as_str) else { return (Vec::new(), 0) };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    Window { from, to }.deserialize(&mut deserializer).unwrap_or_default()
}

/// What a chat's metadata says that the explorer shows.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ChatMetadata<'a> {
    #[serde(borrow)]
    group: Loose<'a>,
    #[serde(borrow)]
    character_ids: MemberIds<'a>,
    #[serde(borrow)]
    branched_from: Loose<'a>,
    #[serde(borrow)]
    branch_at_message: Loose<'a>,
}

/// A group's member ids: the first [`MEMBERS_SHOWN`] distinct ones (clipped to
/// [`ID_TEXT`]) and how many other distinct ones there are.
#[derive(Debug, Default)]
struct MemberIds<'a> {
    shown: Vec<Cow<'a, str>>,
    more: u64,
}

impl<'de: 'a, 'a> Deserialize<'de> for MemberIds<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct IdsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for IdsVisitor<'a> {
            type Value = MemberIds<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a list of ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<MemberIds<'a>, A::Error> {
                let mut ids = MemberIds::default();
                // Past the shown ones, ids are remembered by hash only (a collision undercounts
                // by one), and only so many.
                let hasher = std::collections::hash_map::RandomState::new();
                let mut seen: HashSet<u64> = HashSet::new();
                while let Some(element) = seq.next_element::<Loose<'a>>()? {
                    let Loose::Text(id) = element else { continue };
                    if id.is_empty() {
                        continue;
                    }
                    let id = clip_cow(id, ID_TEXT);
                    if ids.shown.contains(&id) {
                        continue;
                    }
                    if ids.shown.len() < MEMBERS_SHOWN {
                        ids.shown.push(id);
                        continue;
                    }
                    let hash = hasher.hash_one(&id);
                    if seen.len() < MEMBER_IDS_COUNTED {
                        if seen.insert(hash) {
                            ids.more += 1;
                        }
                    } else if !seen.contains(&hash) {
                        ids.more += 1;
                    }
                }
                Ok(ids)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<MemberIds<'a>, E> {
                Ok(MemberIds::default())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<MemberIds<'a>, E> {
                Ok(MemberIds::default())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<MemberIds<'a>, E> {
                Ok(MemberIds::default())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<MemberIds<'a>, E> {
                Ok(MemberIds::default())
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<MemberIds<'a>, E> {
                Ok(MemberIds::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<MemberIds<'a>, E> {
                Ok(MemberIds::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<MemberIds<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MemberIds::default())
            }
        }
        deserializer.deserialize_any(IdsVisitor(std::marker::PhantomData))
    }
}

/// Labels of group members: a character's name (shared with every group naming it), or
/// the id of one the archive does not have (at most [`UNKNOWN_MEMBERS`] of those), within
/// the index's [`MEMBER_SLOTS`].
struct MemberLabels<'n> {
    names: &'n HashMap<&'n str, SharedText>,
    unknown: HashMap<String, SharedText>,
    slots: usize,
}

impl MemberLabels<'_> {
    /// The members a chat shows and how many more it has.
    fn label(&mut self, ids: MemberIds) -> (Vec<SharedText>, u32) {
        let mut shown = Vec::new();
        let mut more = ids.more;
        for id in ids.shown {
            let label = match (self.names.get(id.as_ref()), self.unknown.get(id.as_ref())) {
                (Some(name), _) | (None, Some(name)) => Some(name.clone()),
                (None, None) if self.unknown.len() < UNKNOWN_MEMBERS => {
                    let label = SharedText::new(&id);
                    self.unknown.insert(id.into_owned(), label.clone());
                    Some(label)
                }
                (None, None) => None,
            };
            match label {
                Some(label) if self.slots > 0 => {
                    self.slots -= 1;
                    shown.push(label);
                }
                _ => more += 1,
            }
        }
        (shown, u32::try_from(more).unwrap_or(u32::MAX))
    }
}

/// The columns of a child row the index groups by, parsed without building the row.
#[derive(Deserialize)]
struct ChildKey<'a> {
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(borrow, default)]
    chat_id: Loose<'a>,
    #[serde(borrow, default)]
    world_book_id: Loose<'a>,
    #[serde(borrow, default)]
    index_in_chat: Loose<'a>,
}

fn child_key<'l>(entry: &str, number: u64, line: &'l [u8]) -> Result<ChildKey<'l>> {
    serde_json::from_slice(line).map_err(|e| bad_json(entry, number, e.to_string()))
}

/// Streams the rows of `table`, handing `each` every row's line number and grouping key.
/// Answers how many rows there were. Rows past line `u32::MAX` cannot be addressed and are
/// left out. With `indexed`, a deflated table is read through a [`LineIndex`] that is kept.
fn each_child<R: Read + Seek>(
    archive: &mut Archive<R>,
    table: &str,
    indexed: bool,
    mut each: impl FnMut(u32, ChildKey<'_>),
) -> Result<(u64, Option<LineIndex>)> {
    let Some(entry) = archive.table_entry(table) else { return Ok((0, None)) };
    let mut rows = 0;
    let mut row = |name: &str, number: u64, line: &[u8]| -> Result<()> {
        let key = child_key(name, number, line)?;
        rows += 1;
        if let Ok(number) = u32::try_from(number) {
            each(number, key);
        }
        Ok(())
    };
    let index = each_line(archive, entry, indexed, &mut row)?;
    Ok((rows, index))
}

/// `items[start..start + count]`, as far as there are items.
fn page_of<T>(items: &[T], start: usize, count: usize) -> Vec<&T> {
    items.iter().skip(start).take(count).collect()
}

impl ExploreIndex {
    /// Streams the tables the explorer shows, once each (the messages of chats whose rows
    /// are not in chat order twice), and builds the index. `progress` hears each table's
    /// name as it starts.
    pub fn build<R: Read + Seek>(archive: &mut Archive<R>, mut progress: impl FnMut(&str)) -> Result<Self> {
        let mut index = Self::default();
        let mut rows = 0;
        progress("characters");
        let columns = ["id", "name", "description", "avatar_path", "image_id"];
        let characters = &mut index.characters;
        let (read, lines) =
            stream_rows(archive, "characters", columns, true, |line, [id, name, description, avatar, image]| {
                characters.push(CharacterCard {
                    id: text(&id, ID_TEXT),
                    name: text(&name, NAME_TEXT),
                    description: text(&description, CARD_TEXT),
                    avatar: picture_entry(&avatar, "avatars"),
                    chats: 0,
                    image_id: optional_text(&image, ID_TEXT),
                    line: u32::try_from(line).unwrap_or(0),
                })
            })?;
        rows += read;
        // Cards find a character by the ids listed here: only when every row's is text.
        index.character_lines = lines.filter(|_| index.characters.iter().all(|c| !c.id.is_empty()));
        progress("personas");
        rows += each_row(archive, "personas", columns, |[id, name, description, avatar, image]| {
            index.personas.push(PersonaCard {
                id: text(&id, ID_TEXT),
                name: text(&name, NAME_TEXT),
                description: text(&description, CARD_TEXT),
                avatar: picture_entry(&avatar, "avatars"),
                image_id: optional_text(&image, ID_TEXT),
            })
        })?;
        // Images: the gallery keeps the first [`IMAGE_CARDS`]; a picture of a character or
        // persona is found by its image id whatever its place.
        progress("images");
        let wanted: HashSet<&str> = index
            .characters
            .iter()
            .filter_map(|c| c.image_id.as_deref())
            .chain(index.personas.iter().filter_map(|p| p.image_id.as_deref()))
            .collect();
        let mut pictures: HashMap<String, String> = HashMap::new();
        let (mut images, mut total) = (Vec::new(), 0u64);
        let columns = ["id", "filename", "original_filename", "width", "height"];
        rows += each_row(archive, "images", columns, |[id, filename, original_name, width, height]| {
            total += 1;
            let id = text(&id, ID_TEXT);
            let original = picture_entry(&filename, "images");
            if let Some(original) = original.as_ref().filter(|_| wanted.contains(id.as_str())) {
                pictures.insert(id.clone(), original.clone());
            }
            if images.len() < IMAGE_CARDS {
                let name = optional_text(&original_name, NAME_TEXT).unwrap_or_else(|| {
                    original.as_deref().map_or_else(String::new, |o| clip(&o["files/images/".len()..], NAME_TEXT))
                });
                images.push(ImageCard {
                    id,
                    original,
                    name,
                    width: integer(&width),
                    height: integer(&height),
                    thumbnail: None,
                });
            }
        })?;
        index.images = images;
        index.images_total = total;
        index.settle_files(archive, pictures);
        progress("presets");
        rows += each_row(archive, "presets", ["id", "name", "provider"], |[id, name, provider]| {
            index.presets.push(PresetCard {
                id: text(&id, ID_TEXT),
                name: text(&name, NAME_TEXT),
                provider: text(&provider, NAME_TEXT),
            })
        })?;
        progress("world_books");
        rows += each_row(archive, "world_books", ["id", "name", "description"], |[id, name, description]| {
            index.world_books.push(WorldBookCard {
                id: text(&id, ID_TEXT),
                name: text(&name, NAME_TEXT),
                description: text(&description, CARD_TEXT),
                entries: 0,
                lines: Vec::new(),
            })
        })?;
        index.book_at = places(index.world_books.iter().map(|b| b.id.as_str()));
        progress("world_book_entries");
        let (books, book_at) = (&mut index.world_books, &index.book_at);
        let mut untyped = false;
        let (read, lines) = each_child(archive, "world_book_entries", true, |line, key| {
            let book = key.world_book_id.id();
            untyped |= book.is_none();
            if let Some(&at) = book.and_then(|id| book_at.get(id.as_ref())) {
                books[at as usize].lines.push(line);
            }
        })?;
        rows += read;
        // Cards take a book's entries from these lines: only when every row names its book
        // in text.
        index.entry_lines = lines.filter(|_| !untyped);
        for book in &mut index.world_books {
            book.entries = u32::try_from(book.lines.len()).unwrap_or(u32::MAX);
        }
        progress("chats");
        let names: HashMap<&str, SharedText> =
            index.characters.iter().map(|c| (c.id.as_str(), SharedText::new(&c.name))).collect();
        let mut labels = MemberLabels { names: &names, unknown: HashMap::new(), slots: MEMBER_SLOTS };
        let mut chats = Vec::new();
        let columns = ["id", "name", "character_id", "updated_at", "metadata"];
        rows += each_row(archive, "chats", columns, |[id, name, character_id, updated_at, metadata]| {
            let metadata = metadata.as_ref().and_then(Value::as_str).unwrap_or_default();
            let metadata: ChatMetadata = serde_json::from_str(metadata).unwrap_or_default();
            let group = matches!(metadata.group, Loose::Bool(true) | Loose::Integer(1));
            let (members, members_more) = if group { labels.label(metadata.character_ids) } else { (Vec::new(), 0) };
            let character_id = optional_text(&character_id, ID_TEXT);
            chats.push(ChatCard {
                id: text(&id, ID_TEXT),
                name: text(&name, NAME_TEXT),
                character_name: character_id.as_deref().and_then(|id| names.get(id).cloned()),
                character_id,
                messages: 0,
                updated_at: integer(&updated_at),
                branched_from: metadata.branched_from.id().map(Cow::into_owned),
                branch_at_message: metadata.branch_at_message.id().map(Cow::into_owned),
                branch_at_index: None,
                members,
                members_more,
                lines: Vec::new(),
            });
        })?;
        drop(labels);
        drop(names);
        index.chats = chats;
        index.chat_at = places(index.chats.iter().map(|c| c.id.as_str()));
        progress("messages");
        // Lines come in file order; a chat whose `index_in_chat` goes down somewhere is put
        // in chat order afterwards.
        let mut last_index: Vec<Option<i64>> = vec![None; index.chats.len()];
        let mut unsorted = vec![false; index.chats.len()];
        let (chats, chat_at) = (&mut index.chats, &index.chat_at);
        rows += each_child(archive, "messages", false, |line, key| {
            let Some(&at) = key.chat_id.id().and_then(|id| chat_at.get(id.as_ref())) else { return };
            let at = at as usize;
            let place = key.index_in_chat.integer().unwrap_or(0);
            if last_index[at].is_some_and(|last| place < last) {
                unsorted[at] = true;
            }
            last_index[at] = Some(place);
            chats[at].lines.push(line);
        })?
        .0;
        let unsorted: Vec<usize> = (0..unsorted.len()).filter(|&at| unsorted[at]).collect();
        put_in_chat_order(archive, &mut index.chats, &unsorted)?;
        let mut chats_of: HashMap<&str, u32> = HashMap::new();
        for chat in &mut index.chats {
            chat.messages = u32::try_from(chat.lines.len()).unwrap_or(u32::MAX);
            if let Some(character) = &chat.character_id {
                *chats_of.entry(character.as_str()).or_default() += 1;
            }
        }
        for character in &mut index.characters {
            character.chats = chats_of.get(character.id.as_str()).copied().unwrap_or(0);
        }
        index.place_branch_points(archive)?;
        index.stats.rows = rows;
        index.stats.index_bytes = index.estimate_bytes();
        Ok(index)
    }

    /// Keeps only the file names the archive has: an image's small thumbnail (else its
    /// large one, else the original); a character's or persona's avatar file, else its
    /// gallery image (`pictures`: image id → original).
    fn settle_files<R: Read + Seek>(&mut self, archive: &Archive<R>, pictures: HashMap<String, String>) {
        let present = |name: Option<String>| name.filter(|name| archive.index_of(name).is_some());
        for image in &mut self.images {
            image.original = present(image.original.take());
            image.thumbnail = present(Some(format!("files/thumbnails/{}_thumb_sm_v2.webp", image.id)))
                .or_else(|| present(Some(format!("files/thumbnails/{}_thumb_lg_v2.webp", image.id))))
                .or_else(|| image.original.clone());
        }
        let picture = |avatar: &mut Option<String>, image_id: &mut Option<String>| {
            *avatar = present(avatar.take()).or_else(|| present(pictures.get(image_id.take()?.as_str()).cloned()));
        };
        for character in &mut self.characters {
            picture(&mut character.avatar, &mut character.image_id);
        }
        for persona in &mut self.personas {
            picture(&mut persona.avatar, &mut persona.image_id);
        }
    }

    /// Fills in where each branch forked: the fork message's place in its parent chat.
    fn place_branch_points<R: Read + Seek>(&mut self, archive: &mut Archive<R>) -> Result<()> {
        // Several branches may fork at one message.
        let mut wanted: HashMap<&str, Vec<usize>> = HashMap::new();
        for (at, chat) in self.chats.iter().enumerate() {
            if let Some(message) = &chat.branch_at_message {
                wanted.entry(message.as_str()).or_default().push(at);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut lines: Vec<u32> = self
            .chats
            .iter()
            .filter(|chat| chat.branch_at_message.is_some())
            .filter_map(|chat| self.chat(chat.branched_from.as_deref()?))
            .flat_map(|parent| parent.lines.iter().copied())
            .collect();
        lines.sort_unstable();
        lines.dedup();
        let mut found = Vec::new();
        read_lines(archive, "messages", &lines, |entry, number, line| {
            let key = child_key(entry, number, line)?;
            let Some(id) = key.id.id() else { return Ok(true) };
            for &at in wanted.get(id.as_ref()).into_iter().flatten() {
                found.push((at, key.index_in_chat.integer()));
            }
            Ok(true)
        })?;
        for (at, index) in found {
            self.chats[at].branch_at_index = index;
        }
        Ok(())
    }

    fn estimate_bytes(&self) -> u64 {
        let strings = |list: &[&String]| list.iter().map(|s| s.capacity() as u64).sum::<u64>();
        let option = |o: &Option<String>| o.as_ref().map_or(0, |s| s.capacity() as u64);
        let mut bytes = 0u64;
        for c in &self.characters {
            bytes += 96 + strings(&[&c.id, &c.name, &c.description]) + option(&c.avatar);
        }
        for p in &self.personas {
            bytes += 96 + strings(&[&p.id, &p.name, &p.description]) + option(&p.avatar);
        }
        for b in &self.world_books {
            bytes += 104 + strings(&[&b.id, &b.name, &b.description]) + 4 * b.lines.capacity() as u64;
        }
        for p in &self.presets {
            bytes += 72 + strings(&[&p.id, &p.name, &p.provider]);
        }
        for i in &self.images {
            bytes += 112 + strings(&[&i.id, &i.name]) + option(&i.thumbnail) + option(&i.original);
        }
        // Shared names are counted once per holder: an upper bound.
        let shared = |s: &SharedText| 16 + s.len() as u64;
        for c in &self.chats {
            bytes += 200 + strings(&[&c.id, &c.name]) + 4 * c.lines.capacity() as u64;
            bytes += [&c.character_id, &c.branched_from, &c.branch_at_message].iter().map(|o| option(o)).sum::<u64>();
            bytes += c.character_name.as_ref().map_or(0, shared) + c.members.iter().map(shared).sum::<u64>();
        }
        for id in self.chat_at.keys().chain(self.book_at.keys()) {
            bytes += 32 + id.capacity() as u64;
        }
        bytes
            + [&self.character_lines, &self.entry_lines]
                .iter()
                .filter_map(|i| i.as_ref())
                .map(LineIndex::held_bytes)
                .sum::<u64>()
    }

    /// The world book with this id, if the archive lists it.
    pub(crate) fn world_book(&self, id: &str) -> Option<&WorldBookCard> {
        let &at = self.book_at.get(clipped(id, ID_TEXT).as_ref())?;
        self.world_books.get(at as usize)
    }

    /// The lines of `table` whose `column` may be one of `values` (ascending), with the
    /// line index to read them through, when this index can tell for every value: the
    /// characters by id, the world-book entries by book (what a selective restore's closure
    /// asks, [`crate::closure::ArchiveRows::indexed`]). Ids are listed clipped, so a line
    /// may hold another id of the same clipped text; none that holds one of `values` is
    /// missing. `None` when it cannot tell (another question, a table without a line index,
    /// a book it does not list, a line it could not number).
    pub(crate) fn lines_holding(&self, table: &str, column: &str, values: &[String]) -> Option<(&LineIndex, Vec<u64>)> {
        let (index, mut lines): (_, Vec<u32>) = match (table, column) {
            ("characters", "id") => {
                let wanted: HashSet<Cow<'_, str>> = values.iter().map(|id| clipped(id, ID_TEXT)).collect();
                let listed = self.characters.iter().filter(|c| wanted.contains(c.id.as_str()));
                (self.character_lines.as_ref()?, listed.map(|c| c.line).collect())
            }
            ("world_book_entries", "world_book_id") => {
                let mut lines = Vec::new();
                for id in values {
                    lines.extend(&self.world_book(id)?.lines);
                }
                (self.entry_lines.as_ref()?, lines)
            }
            _ => return None,
        };
        if lines.contains(&0) {
            return None;
        }
        lines.sort_unstable();
        lines.dedup();
        Some((index, lines.into_iter().map(u64::from).collect()))
    }

    /// The chat with this id, if the archive lists it.
    fn chat(&self, id: &str) -> Option<&ChatCard> {
        let &at = self.chat_at.get(clipped(id, ID_TEXT).as_ref())?;
        self.chats.get(at as usize)
    }

    fn chat_item<'a>(&'a self, card: &'a ChatCard) -> ChatItem<'a> {
        let parent = card.branched_from.as_deref().and_then(|id| self.chat(id));
        ChatItem { card, branched_from_name: parent.map(|p| p.name.as_str()) }
    }

    /// One page of a list: at most `count` (and at most [`LIST_PAGE`]) cards from place
    /// `start` on; for chats, only those of `character_id` when it is given. A page past the
    /// end is empty.
    pub fn list_page<'a>(
        &'a self,
        list: List,
        character_id: Option<&'a str>,
        start: usize,
        count: usize,
    ) -> ListPage<'a> {
        let count = count.min(LIST_PAGE);
        let (total, items) = match list {
            List::Characters => (self.characters.len(), ListItems::Characters(page_of(&self.characters, start, count))),
            List::Personas => (self.personas.len(), ListItems::Personas(page_of(&self.personas, start, count))),
            List::WorldBooks => {
                (self.world_books.len(), ListItems::WorldBooks(page_of(&self.world_books, start, count)))
            }
            List::Presets => (self.presets.len(), ListItems::Presets(page_of(&self.presets, start, count))),
            List::Images => (self.images.len(), ListItems::Images(page_of(&self.images, start, count))),
            List::Chats => match character_id {
                None => {
                    let items = page_of(&self.chats, start, count).into_iter().map(|c| self.chat_item(c)).collect();
                    (self.chats.len(), ListItems::Chats(items))
                }
                Some(character) => {
                    let character = clipped(character, ID_TEXT);
                    let (mut total, mut items) = (0, Vec::new());
                    for chat in self.chats.iter().filter(|c| c.character_id.as_deref() == Some(character.as_ref())) {
                        if total >= start && items.len() < count {
                            items.push(self.chat_item(chat));
                        }
                        total += 1;
                    }
                    (total, ListItems::Chats(items))
                }
            },
        };
        let character_id = if list == List::Chats { character_id } else { None };
        ListPage { list, character_id, start, total, items }
    }

    /// The first page of every list, and the index's size.
    pub fn summary(&self) -> Summary<'_> {
        let first = |list| self.list_page(list, None, 0, LIST_PAGE);
        Summary {
            characters: first(List::Characters),
            personas: first(List::Personas),
            world_books: first(List::WorldBooks),
            presets: first(List::Presets),
            images: first(List::Images),
            chats: first(List::Chats),
            images_total: self.images_total,
            stats: self.stats,
        }
    }

    /// One page of a chat's transcript, in chat order (by `index_in_chat`): at most `count`
    /// (and at most [`MESSAGE_PAGE`]) messages from place `start` on. The messages entry is
    /// read only as far as the page's last line. A page past the end is empty; a chat the
    /// archive does not list has none.
    pub fn chat_page<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        chat_id: &str,
        start: usize,
        count: usize,
    ) -> Result<ChatPage<'_>> {
        let Some(chat) = self.chat(chat_id) else {
            return Ok(ChatPage { chat: None, start, total: 0, messages: Vec::new() });
        };
        let lines = chat.lines.get(start..).unwrap_or_default();
        let lines = &lines[..lines.len().min(count.min(MESSAGE_PAGE))];
        let messages = read_in_order(archive, "messages", lines, MESSAGE_COLUMNS, message_view)?;
        Ok(ChatPage { chat: Some(self.chat_item(chat)), start, total: chat.lines.len(), messages })
    }

    /// Every message of one chat, in chat order; empty for a chat the archive does not
    /// list. Each message is bounded as in a page, the list is not: the Worker hands out
    /// pages ([`Self::chat_page`]).
    pub fn chat_messages<R: Read + Seek>(&self, archive: &mut Archive<R>, chat_id: &str) -> Result<Vec<MessageView>> {
        let Some(chat) = self.chat(chat_id) else { return Ok(Vec::new()) };
        read_in_order(archive, "messages", &chat.lines, MESSAGE_COLUMNS, message_view)
    }

    /// One page of a world book's entries, in the archive's order: at most `count` (and at
    /// most [`ENTRY_PAGE`]) from place `start` on.
    pub fn world_book_page<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        book_id: &str,
        start: usize,
        count: usize,
    ) -> Result<BookPage<'_>> {
        let book =
            self.book_at.get(clipped(book_id, ID_TEXT).as_ref()).and_then(|&at| self.world_books.get(at as usize));
        let Some(book) = book else { return Ok(BookPage { book: None, start, total: 0, entries: Vec::new() }) };
        let lines = book.lines.get(start..).unwrap_or_default();
        let lines = &lines[..lines.len().min(count.min(ENTRY_PAGE))];
        let entries = read_in_order(archive, "world_book_entries", lines, ENTRY_COLUMNS, entry_view)?;
        Ok(BookPage { book: Some(book), start, total: book.lines.len(), entries })
    }

    /// Every entry of one world book, in the archive's order (the Worker hands out pages:
    /// [`Self::world_book_page`]).
    pub fn world_book_entries<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        book_id: &str,
    ) -> Result<Vec<WorldBookEntryView>> {
        let book =
            self.book_at.get(clipped(book_id, ID_TEXT).as_ref()).and_then(|&at| self.world_books.get(at as usize));
        let Some(book) = book else { return Ok(Vec::new()) };
        read_in_order(archive, "world_book_entries", &book.lines, ENTRY_COLUMNS, entry_view)
    }

    /// Searches character names, chat names and message text for `query` (ignoring case),
    /// handing each hit to `hit` as it is found; stops after `limit` (at most
    /// [`SEARCH_HITS`]) hits or when `hit` answers false. Answers how many hits were handed
    /// over.
    pub fn search<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        query: &str,
        limit: usize,
        mut hit: impl FnMut(SearchHit) -> bool,
    ) -> Result<usize> {
        let needle = query.trim().to_lowercase();
        let limit = limit.min(SEARCH_HITS);
        if needle.is_empty() || limit == 0 {
            return Ok(0);
        }
        let matches = |text: &str| text.to_lowercase().contains(&needle);
        let mut handed = 0;
        let mut give = |found: SearchHit| {
            handed += 1;
            hit(found) && handed < limit
        };
        for character in self.characters.iter().filter(|c| matches(&c.name)) {
            if !give(SearchHit::Character { id: character.id.clone(), name: character.name.clone() }) {
                return Ok(handed);
            }
        }
        for chat in self.chats.iter().filter(|c| matches(&c.name)) {
            if !give(SearchHit::Chat { id: chat.id.clone(), name: chat.name.clone() }) {
                return Ok(handed);
            }
        }
        let Some(entry) = archive.table_entry("messages") else { return Ok(handed) };
        // A plain ASCII needle is looked for in the raw line first (ASCII letters folded),
        // so only lines that may match are parsed; any other needle parses every line.
        let prefilter =
            (needle.is_ascii() && !needle.contains(['"', '\\'])).then(|| memmem::Finder::new(needle.as_bytes()));
        let columns: Vec<String> = ["id", "chat_id", "index_in_chat", "content"].map(String::from).to_vec();
        let unknown = UnknownColumns::default();
        let mut lowered = Vec::new();
        let mut lines = archive.ndjson_lines(entry)?;
        let name = lines.entry().to_string();
        while let Some((number, line)) = lines.next_line()? {
            if let Some(finder) = &prefilter {
                lowered.clear();
                lowered.extend(line.iter().map(u8::to_ascii_lowercase));
                if finder.find(&lowered).is_none() {
                    continue;
                }
            }
            let row = parse_row_aligned(&name, number, line, &columns, &unknown)?;
            let content = row[3].as_ref().and_then(Value::as_str).unwrap_or_default();
            let Some((start, end)) = find_folded(content, &needle) else { continue };
            let chat_id = text(&row[1], ID_TEXT);
            let chat = self.chat(&chat_id);
            let line_number = u32::try_from(number).ok();
            let found = SearchHit::Message {
                chat_name: chat.map(|c| c.name.clone()).unwrap_or_default(),
                position: chat
                    .zip(line_number)
                    .and_then(|(c, n)| c.lines.iter().position(|&l| l == n))
                    .map(|p| p as u32),
                chat_id,
                message_id: text(&row[0], ID_TEXT),
                index: integer(&row[2]).unwrap_or(0),
                snippet: snippet(content, start, end),
            };
            if !give(found) {
                break;
            }
        }
        Ok(handed)
    }

    /// The bytes of a picture the index names (`files/avatars/…`, `files/images/…`,
    /// `files/thumbnails/…`), at most [`MAX_FILE_BYTES`]; `None` for any other name or a
    /// file the archive does not have.
    pub fn file<R: Read + Seek>(&self, archive: &mut Archive<R>, name: &str) -> Result<Option<Vec<u8>>> {
        let shown = ["files/avatars/", "files/images/", "files/thumbnails/"];
        if !shown.iter().any(|prefix| name.starts_with(prefix)) {
            return Ok(None);
        }
        let Some(index) = archive.index_of(name) else { return Ok(None) };
        let size = archive.entries()[index].uncompressed_size;
        if size > MAX_FILE_BYTES {
            return Err(FormatError::TooLarge { what: name.to_string(), limit: MAX_FILE_BYTES, actual: size });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        archive.open_entry(index)?.read_to_end(&mut bytes).map_err(FormatError::Io)?;
        Ok(Some(bytes))
    }
}

/// Each id's place in a list (the first of an id).
fn places<'a>(ids: impl Iterator<Item = &'a str>) -> HashMap<String, u32> {
    let mut at = HashMap::new();
    for (place, id) in ids.enumerate() {
        if let Ok(place) = u32::try_from(place) {
            at.entry(id.to_string()).or_insert(place);
        }
    }
    at
}

/// Puts the lines of the chats at `unsorted` in chat order (by `index_in_chat`, then line),
/// reading those chats' messages once more.
fn put_in_chat_order<R: Read + Seek>(
    archive: &mut Archive<R>,
    chats: &mut [ChatCard],
    unsorted: &[usize],
) -> Result<()> {
    if unsorted.is_empty() {
        return Ok(());
    }
    // (line, chat) of each message of those chats, in line order.
    let mut owners: Vec<(u32, u32)> =
        unsorted.iter().flat_map(|&at| chats[at].lines.iter().map(move |&line| (line, at as u32))).collect();
    owners.sort_unstable();
    let lines: Vec<u32> = owners.iter().map(|&(line, _)| line).collect();
    let mut keyed: Vec<(u32, i64, u32)> = Vec::with_capacity(lines.len());
    read_lines(archive, "messages", &lines, |entry, number, line| {
        let place = child_key(entry, number, line)?.index_in_chat.integer().unwrap_or(0);
        let number = number as u32;
        if let Ok(found) = owners.binary_search_by_key(&number, |&(line, _)| line) {
            keyed.push((owners[found].1, place, number));
        }
        Ok(true)
    })?;
    keyed.sort_unstable();
    for &at in unsorted {
        chats[at].lines.clear();
    }
    for (at, _, line) in keyed {
        chats[at as usize].lines.push(line);
    }
    Ok(())
}

/// Reads the rows at `lines` (in the order given) of `table`, the values of `columns` of
/// each through `view`, reading the entry once, only as far as the last of them.
fn read_in_order<R: Read + Seek, T, const N: usize>(
    archive: &mut Archive<R>,
    table: &str,
    lines: &[u32],
    columns: [&str; N],
    view: fn(&[Option<Value>; N]) -> T,
) -> Result<Vec<T>> {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let mut by_line: Vec<(u32, usize)> = lines.iter().enumerate().map(|(place, &line)| (line, place)).collect();
    by_line.sort_unstable();
    let sorted: Vec<u32> = by_line.iter().map(|&(line, _)| line).collect();
    let unknown = UnknownColumns::default();
    let mut views: Vec<Option<T>> = (0..lines.len()).map(|_| None).collect();
    let mut next = 0;
    read_lines(archive, table, &sorted, |entry, number, line| {
        let row = parse_row_aligned(entry, number, line, &columns, &unknown)?;
        let Ok(row) = <[Option<Value>; N]>::try_from(row) else { return Ok(true) };
        // A line asked for twice is read once and shown twice.
        while next < by_line.len() && u64::from(by_line[next].0) == number {
            views[by_line[next].1] = Some(view(&row));
            next += 1;
        }
        Ok(true)
    })?;
    Ok(views.into_iter().flatten().collect())
}

/// The columns of a message the transcript shows.
const MESSAGE_COLUMNS: [&str; 8] =
    ["id", "index_in_chat", "is_user", "name", "content", "swipes", "swipe_id", "send_date"];

/// The columns of a world-book entry the explorer shows.
const ENTRY_COLUMNS: [&str; 5] = ["id", "key", "comment", "content", "disabled"];

/// A message row ([`MESSAGE_COLUMNS`]), bounded.
fn message_view(row: &[Option<Value>; 8]) -> MessageView {
    let [id, index, is_user, name, content, swipes, swipe_id, send_date] = row;
    let asked = usize::try_from(integer(swipe_id).unwrap_or(0).max(0)).unwrap_or(usize::MAX);
    let (_, total) = array_window(swipes, 0, 0);
    let (mut kept, from, shown, total) = if total == 0 {
        let content = content.as_ref().and_then(Value::as_str).unwrap_or_default();
        (vec![Cow::Borrowed(content)], 0, 0, 1)
    } else {
        let shown = asked.min(total - 1);
        let from = shown.saturating_sub(SWIPES_KEPT / 2).min(total.saturating_sub(SWIPES_KEPT));
        let (kept, _) = array_window(swipes, from, from + SWIPES_KEPT);
        (kept, from, shown - from, total)
    };
    // The shown swipe has the text budget first, the others what it leaves, in order.
    let mut left = MESSAGE_TEXT;
    let mut texts = vec![String::new(); kept.len()];
    for at in std::iter::once(shown).chain((0..kept.len()).filter(|&at| at != shown)) {
        let Some(swipe) = kept.get_mut(at) else { continue };
        let swipe = std::mem::take(swipe);
        texts[at] = clip(&swipe, left);
        left -= swipe.chars().take(left).count();
    }
    MessageView {
        id: text(id, ID_TEXT),
        index: integer(index).unwrap_or(0),
        is_user: flag(is_user),
        name: text(name, NAME_TEXT),
        swipe_id: shown.min(texts.len().saturating_sub(1)),
        swipes: texts,
        swipes_from: from,
        swipes_total: total,
        send_date: integer(send_date),
    }
}

/// A world-book entry row ([`ENTRY_COLUMNS`]), bounded.
fn entry_view(row: &[Option<Value>; 5]) -> WorldBookEntryView {
    let [id, key, comment, content, disabled] = row;
    let (keys, total) = array_window(key, 0, ENTRY_KEYS);
    WorldBookEntryView {
        id: text(id, ID_TEXT),
        keys_more: total - keys.len(),
        keys: keys.iter().map(|k| clip(k, NAME_TEXT)).collect(),
        comment: text(comment, CARD_TEXT),
        content: text(content, ENTRY_TEXT),
        disabled: integer(disabled).unwrap_or(0) != 0,
    }
}
/// Where `needle` (already lower-cased) is in `text`, ignoring case (Unicode's lower
/// case): the byte range in `text` itself, whose lower case may be longer or shorter.
fn find_folded(text: &str, needle: &str) -> Option<(usize, usize)> {
    let lowered = text.to_lowercase();
    let found = lowered.find(needle)?;
    // Walk the original and its lower case together to map the match back.
    let (mut start, mut end, mut lowered_at) = (None, text.len(), 0);
    for (at, character) in text.char_indices() {
        if start.is_none() && lowered_at >= found {
            start = Some(at);
        }
        if lowered_at >= found + needle.len() {
            end = at;
            break;
        }
        lowered_at += character.to_lowercase().map(char::len_utf8).sum::<usize>();
    }
    Some((start.unwrap_or(text.len()), end))
}

/// The text around a hit at bytes `at..end` of `content`, on character boundaries.
fn snippet(content: &str, at: usize, end: usize) -> String {
    let before = content[..at].char_indices().rev().nth(SNIPPET / 2).map_or(0, |(i, _)| i);
    let after = content[end..].char_indices().nth(SNIPPET / 2).map_or(content.len(), |(i, _)| end + i);
    let mut text = content[before..after].replace('\n', " ");
    if before > 0 {
        text.insert(0, '…');
    }
    if after < content.len() {
        text.push('…');
    }
    text
}

/// Calls `each` with the lines of `table` whose numbers are in `wanted` (sorted), reading
/// the entry only as far as the last of them. `each` answers whether to go on.
fn read_lines<R: Read + Seek>(
    archive: &mut Archive<R>,
    table: &str,
    wanted: &[u32],
    mut each: impl FnMut(&str, u64, &[u8]) -> Result<bool>,
) -> Result<()> {
    let (Some(&last), Some(entry)) = (wanted.last(), archive.table_entry(table)) else { return Ok(()) };
    let mut lines: NdjsonLines<_> = archive.ndjson_lines(entry)?;
    let name = lines.entry().to_string();
    let mut next = 0;
    while let Some((number, line)) = lines.next_line()? {
        if next < wanted.len() && number == u64::from(wanted[next]) {
            next += 1;
            if !each(&name, number, line)? {
                break;
            }
        }
        if number >= u64::from(last) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::io::Cursor;

    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    use serde_json::{json, Value};

    use super::*;
    use crate::{table_entry_name, Limits};

    fn archive(tables: &[(&str, Vec<Value>)]) -> Archive<Cursor<Vec<u8>>> {
        let mut entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[]))];
        for (table, rows) in tables {
            let ndjson: String = rows.iter().map(|row| format!("{row}\n")).collect();
            entries.push(RawEntry::deflated(&table_entry_name(table), ndjson.as_bytes()));
        }
        Archive::open(Cursor::new(RawZip::new(entries).build()), Limits::STANDARD).unwrap()
    }

    fn chars(text: &str) -> usize {
        text.chars().count()
    }

    #[test]
    fn a_folded_match_maps_back_to_the_original_bytes() {
        assert_eq!(find_folded("Harbour CAFÉ", "café"), Some((8, 13)));
        // 'İ' lower-cases to two characters (3 bytes for 2): the range is the original's.
        let text = "xİy";
        let (start, end) = find_folded(text, &"İY".to_lowercase()).unwrap();
        assert_eq!(&text[start..end], "İy");
        assert_eq!(find_folded("harbour", "fog"), None);
    }

    #[test]
    fn every_name_and_id_a_card_keeps_is_clipped() {
        let huge = "N".repeat(1 << 20);
        let long_id = format!("c-{}", "9".repeat(500));
        let mut archive = archive(&[
            ("characters", vec![json!({"id": long_id, "name": huge, "description": huge, "avatar_path": huge})]),
            ("personas", vec![json!({"id": "p", "name": huge, "description": huge})]),
            ("world_books", vec![json!({"id": "wb", "name": huge, "description": huge})]),
            (
                "world_book_entries",
                vec![
                    json!({"id": "e", "world_book_id": "wb", "key": json!([huge, "b"]).to_string(), "comment": huge, "content": huge}),
                ],
            ),
            ("presets", vec![json!({"id": "pr", "name": huge, "provider": huge})]),
            ("images", vec![json!({"id": "i", "filename": "i.png", "original_filename": huge})]),
            ("chats", vec![json!({"id": "chat", "name": huge, "character_id": long_id})]),
            ("messages", vec![json!({"id": "m", "chat_id": "chat", "name": huge, "content": huge, "swipes": "[]"})]),
        ]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let character = &index.characters[0];
        assert_eq!(chars(&character.id), ID_TEXT + 1, "clipped, with an ellipsis");
        assert_eq!(chars(&character.name), NAME_TEXT + 1);
        assert_eq!(chars(&character.description), CARD_TEXT + 1);
        assert_eq!(character.avatar, None, "no file has a megabyte-long name");
        assert_eq!(character.chats, 1, "a clipped id still meets its chats");
        assert_eq!(chars(&index.personas[0].name), NAME_TEXT + 1);
        assert_eq!(chars(&index.world_books[0].name), NAME_TEXT + 1);
        assert_eq!(chars(&index.presets[0].name), NAME_TEXT + 1);
        assert_eq!(chars(&index.presets[0].provider), NAME_TEXT + 1);
        assert_eq!(chars(&index.images[0].name), NAME_TEXT + 1);
        let chat = &index.chats[0];
        assert_eq!(chars(&chat.name), NAME_TEXT + 1);
        assert_eq!(chat.character_name.as_deref(), Some(character.name.as_str()));
        assert!(index.stats.index_bytes < 8 * 1024, "{:?}", index.stats);

        let page = index.chat_page(&mut archive, "chat", 0, MESSAGE_PAGE).unwrap();
        let message = &page.messages[0];
        assert_eq!(chars(&message.name), NAME_TEXT + 1);
        assert_eq!(chars(&message.swipes[0]), MESSAGE_TEXT + 1, "no swipes recorded: the content, clipped");
        let entries = index.world_book_page(&mut archive, "wb", 0, ENTRY_PAGE).unwrap().entries;
        assert_eq!(chars(&entries[0].keys[0]), NAME_TEXT + 1);
        assert_eq!(entries[0].keys[1], "b");
        assert_eq!(chars(&entries[0].comment), CARD_TEXT + 1);
        assert_eq!(chars(&entries[0].content), ENTRY_TEXT + 1);
    }

    #[test]
    fn a_group_shows_each_member_once_and_counts_the_rest() {
        // The explorer members bomb: one character with a megabyte-long name, named 100,000
        // times by one group chat.
        let huge = "M".repeat(1 << 20);
        let bomb = json!({"group": true, "character_ids": vec!["c"; 100_000]}).to_string();
        let many: Vec<String> = (0..200).chain(0..200).map(|n| format!("gone-{n}")).collect();
        let crowd = json!({"group": true, "character_ids": many}).to_string();
        let mut archive = archive(&[
            ("characters", vec![json!({"id": "c", "name": huge}), json!({"id": "d", "name": "Dana"})]),
            (
                "chats",
                vec![
                    json!({"id": "bomb", "name": "Bomb", "metadata": bomb}),
                    json!({"id": "crowd", "name": "Crowd", "metadata": crowd}),
                    json!({"id": "pair", "name": "Pair", "metadata": json!({"group": 1, "character_ids": ["d", "c", "d", 7, null, ""]}).to_string()}),
                    json!({"id": "solo", "name": "Solo", "metadata": json!({"character_ids": ["c"]}).to_string()}),
                    json!({"id": "odd", "name": "Odd", "metadata": "not json"}),
                ],
            ),
        ]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let chat = |id: &str| index.chats.iter().find(|c| c.id == id).unwrap();
        let bomb = chat("bomb");
        assert_eq!(bomb.members.len(), 1);
        assert_eq!(chars(&bomb.members[0]), NAME_TEXT + 1, "the name, clipped");
        assert_eq!(bomb.members_more, 0);
        let crowd = chat("crowd");
        assert_eq!(crowd.members.len(), MEMBERS_SHOWN);
        assert_eq!(crowd.members[0], "gone-0", "an id the archive has no character for is shown as the id");
        assert_eq!(crowd.members_more, 200 - MEMBERS_SHOWN as u32, "the rest, each counted once");
        let pair = chat("pair");
        assert_eq!(pair.members, ["Dana", &*bomb.members[0]]);
        assert!(Arc::ptr_eq(&pair.members[1].0, &bomb.members[0].0), "a name is held once, whatever names it");
        assert!(chat("solo").members.is_empty(), "not a group");
        assert!(chat("odd").members.is_empty());
        assert!(index.stats.index_bytes < 64 * 1024, "{:?}", index.stats);
        let json = serde_json::to_string(&index.summary()).unwrap();
        assert!(json.len() < 64 * 1024, "the summary is {} bytes", json.len());
    }

    #[test]
    fn a_transcript_is_handed_out_a_page_at_a_time_in_chat_order() {
        // Written newest first and interleaved with another chat: pages are in chat order.
        let messages: Vec<Value> = (0..450)
            .rev()
            .flat_map(|n| {
                [
                    json!({"id": format!("m{n}"), "chat_id": "long", "index_in_chat": n, "content": format!("message {n}"), "swipes": "[]"}),
                    json!({"id": format!("o{n}"), "chat_id": "other", "index_in_chat": n, "content": "elsewhere"}),
                ]
            })
            .collect();
        let mut archive = archive(&[
            ("chats", vec![json!({"id": "long", "name": "Long"}), json!({"id": "other", "name": "Other"})]),
            ("messages", messages),
        ]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let mut page = |start, count| index.chat_page(&mut archive, "long", start, count).unwrap();
        let first = page(0, MESSAGE_PAGE);
        assert_eq!((first.start, first.total, first.messages.len()), (0, 450, MESSAGE_PAGE));
        assert_eq!(first.chat.as_ref().map(|c| c.card.name.as_str()), Some("Long"));
        assert_eq!(first.messages.iter().map(|m| m.index).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
        assert_eq!(first.messages[0].swipes, ["message 0"]);
        let second = page(200, MESSAGE_PAGE);
        assert_eq!(second.messages.first().map(|m| m.index), Some(200), "the next page starts where the first ended");
        assert_eq!(second.messages.last().map(|m| m.index), Some(399));
        let last = page(400, MESSAGE_PAGE);
        assert_eq!(
            last.messages.iter().map(|m| m.index).collect::<Vec<_>>(),
            (400..450).collect::<Vec<_>>(),
            "the last page holds the rest"
        );
        assert_eq!(last.total, 450);
        let past = page(450, MESSAGE_PAGE);
        assert!(past.messages.is_empty() && past.total == 450, "a page past the end is empty");
        assert!(page(usize::MAX, MESSAGE_PAGE).messages.is_empty());
        assert_eq!(page(0, 10_000).messages.len(), MESSAGE_PAGE, "never more than a page");
        assert_eq!(page(445, 3).messages.iter().map(|m| m.index).collect::<Vec<_>>(), [445, 446, 447]);
        let nowhere = index.chat_page(&mut archive, "nowhere", 0, MESSAGE_PAGE).unwrap();
        assert!(nowhere.chat.is_none() && nowhere.total == 0 && nowhere.messages.is_empty());
        assert_eq!(index.chat_messages(&mut archive, "long").unwrap().len(), 450);

        let mut hits = Vec::new();
        index
            .search(&mut archive, "message 321", 10, |hit| {
                hits.push(hit);
                true
            })
            .unwrap();
        let [SearchHit::Message { position, index, .. }] = hits.as_slice() else { panic!("{hits:?}") };
        assert_eq!((*position, *index), (Some(321), 321), "a hit says where in the transcript it is");
    }

    #[test]
    fn a_message_hands_out_a_bounded_window_of_its_swipes() {
        let swipes: Vec<String> = (0..100).map(|n| format!("{n:03} {}", "s".repeat(10_000))).collect();
        let mut archive = archive(&[
            ("chats", vec![json!({"id": "c", "name": "C"})]),
            (
                "messages",
                vec![
                    json!({"id": "m0", "chat_id": "c", "index_in_chat": 0, "content": "x", "swipes": json!(swipes).to_string(), "swipe_id": 80}),
                    json!({"id": "m1", "chat_id": "c", "index_in_chat": 1, "content": "y", "swipes": json!(["a", "b", "c"]).to_string(), "swipe_id": 9}),
                ],
            ),
        ]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let page = index.chat_page(&mut archive, "c", 0, MESSAGE_PAGE).unwrap();
        let many = &page.messages[0];
        assert_eq!((many.swipes.len(), many.swipes_total), (SWIPES_KEPT, 100));
        assert_eq!(many.swipes_from + many.swipe_id, 80, "the shown swipe is the one recorded");
        assert_eq!(many.swipes[many.swipe_id], swipes[80], "the shown swipe has the text budget first");
        let kept: usize = many.swipes.iter().map(|s| chars(s)).sum();
        assert!(kept <= MESSAGE_TEXT + SWIPES_KEPT, "{kept} characters");
        let few = &page.messages[1];
        assert_eq!(
            (few.swipes.len(), few.swipe_id, few.swipes_from, few.swipes_total),
            (3, 2, 0, 3),
            "a swipe id past the end shows the last"
        );
    }

    #[test]
    fn lists_and_world_books_are_handed_out_a_page_at_a_time() {
        let chats: Vec<Value> = (0..250)
            .map(|n| json!({"id": format!("chat-{n}"), "name": format!("Chat {n}"), "character_id": if n % 2 == 0 { "even" } else { "odd" }}))
            .collect();
        let entries: Vec<Value> = (0..150)
            .map(|n| json!({"id": format!("e{n}"), "world_book_id": "wb", "content": format!("entry {n}"), "key": json!(vec!["k"; 40]).to_string()}))
            .collect();
        let mut archive = archive(&[
            ("characters", vec![json!({"id": "even", "name": "Even"}), json!({"id": "odd", "name": "Odd"})]),
            ("chats", chats),
            ("world_books", vec![json!({"id": "wb", "name": "Book"})]),
            ("world_book_entries", entries),
        ]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        let page = index.list_page(List::Chats, None, 0, 10_000);
        assert_eq!((page.total, page.items.len()), (250, LIST_PAGE), "never more than a page");
        let ListItems::Chats(items) = index.list_page(List::Chats, None, 200, LIST_PAGE).items else { panic!() };
        assert_eq!(items.iter().map(|c| c.card.name.as_str()).collect::<Vec<_>>().first(), Some(&"Chat 200"));
        assert_eq!(items.len(), 50, "the last page holds the rest");
        assert!(index.list_page(List::Chats, None, 250, LIST_PAGE).items.is_empty());
        let odd = index.list_page(List::Chats, Some("odd"), 100, LIST_PAGE);
        assert_eq!((odd.total, odd.items.len(), odd.character_id), (125, 25, Some("odd")));
        let ListItems::Chats(odd) = odd.items else { panic!() };
        assert_eq!(odd[0].card.name, "Chat 201");
        assert_eq!(index.characters.iter().map(|c| c.chats).collect::<Vec<_>>(), [125, 125]);
        let summary = index.summary();
        assert_eq!(
            (summary.chats.total, summary.chats.items.len(), summary.characters.items.len()),
            (250, LIST_PAGE, 2)
        );

        let first = index.world_book_page(&mut archive, "wb", 0, ENTRY_PAGE).unwrap();
        assert_eq!((first.total, first.entries.len()), (150, ENTRY_PAGE));
        assert_eq!((first.entries[0].keys.len(), first.entries[0].keys_more), (ENTRY_KEYS, 40 - ENTRY_KEYS));
        let rest = index.world_book_page(&mut archive, "wb", 100, ENTRY_PAGE).unwrap();
        assert_eq!(rest.entries.iter().map(|e| e.content.as_str()).next(), Some("entry 100"));
        assert_eq!(rest.entries.len(), 50);
        assert!(index.world_book_page(&mut archive, "wb", 150, ENTRY_PAGE).unwrap().entries.is_empty());
    }

    #[test]
    fn messages_of_chats_the_archive_does_not_list_are_not_kept() {
        // Distinct long chat ids compress well and would each be a key of the index.
        let messages: Vec<Value> = (0..2000)
            .map(|n| json!({"id": format!("m{n}"), "chat_id": format!("{n}{}", "x".repeat(10_000))}))
            .collect();
        let mut archive = archive(&[("chats", vec![json!({"id": "c", "name": "C"})]), ("messages", messages)]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        assert_eq!(index.chats[0].messages, 0);
        assert_eq!(index.stats.rows, 2001);
        assert!(index.stats.index_bytes < 4096, "{:?}", index.stats);
    }

    #[test]
    fn a_row_with_a_list_for_a_column_is_refused_as_when_importing() {
        let mut archive = archive(&[("characters", vec![json!({"id": "c", "name": vec!["x"; 1000]})])]);
        let refused = ExploreIndex::build(&mut archive, |_| {}).unwrap_err();
        assert_eq!(refused.code(), "bad_json");
    }

    #[test]
    fn a_search_hands_out_at_most_its_cap() {
        let characters: Vec<Value> =
            (0..SEARCH_HITS + 10).map(|n| json!({"id": format!("c{n}"), "name": "Same"})).collect();
        let mut archive = archive(&[("characters", characters)]);
        let index = ExploreIndex::build(&mut archive, |_| {}).unwrap();
        assert_eq!(index.search(&mut archive, "same", usize::MAX, |_| true).unwrap(), SEARCH_HITS);
    }
}
