//! The archive explorer: a read-only view of a backup's characters, personas, world books,
//! presets, images and chats, built from the archive alone (the browser's Worker runs it on
//! the user's local file; nothing is uploaded).
//!
//! Random access without loading the archive: [`ExploreIndex::build`] streams each table it
//! shows once and keeps compact cards (names, clipped descriptions) plus, for child rows,
//! only their line numbers grouped by parent (a chat's messages, a world book's entries).
//! Opening a chat reads the messages entry up to that chat's last line and parses only its
//! lines ([`ExploreIndex::chat_messages`]); search streams the messages entry and hands
//! hits over as they are found ([`ExploreIndex::search`]). Memory is the cards (bounded per
//! row by [`CARD_TEXT`]; the gallery by [`IMAGE_CARDS`], however many images there are)
//! plus 4 bytes per message and entry; file bytes are read one file at a time, under a cap
//! ([`ExploreIndex::file`]).

use std::collections::HashMap;
use std::io::{Read, Seek};

use memchr::memmem;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::archive::Archive;
use crate::error::{FormatError, Result};
use crate::ndjson::{bad_json, parse_row, NdjsonLines};

/// Characters of free text kept per card (descriptions, previews); the rest is read again
/// from the archive when asked for.
pub const CARD_TEXT: usize = 280;

/// Characters of a message's text around a search hit.
const SNIPPET: usize = 120;

/// Images of the gallery kept at most (the page shows fewer); the rest are counted.
pub const IMAGE_CARDS: usize = 1000;

/// The largest file the explorer hands to the page (an avatar, an image).
pub const MAX_FILE_BYTES: u64 = 32 << 20;

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

/// A world book; its entries are read when it is opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorldBookCard {
    pub id: String,
    pub name: String,
    pub description: String,
    pub entries: u32,
}

/// One world-book entry, when its book is opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorldBookEntryView {
    pub id: String,
    pub keys: Vec<String>,
    pub comment: String,
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

/// A chat; its messages are read when it is opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatCard {
    pub id: String,
    pub name: String,
    pub character_id: Option<String>,
    pub character_name: Option<String>,
    pub messages: u32,
    pub updated_at: Option<i64>,
    /// A branch: the chat it was forked from and the message it forked at (Lumiverse keeps
    /// both in the chat's metadata as `branched_from` / `branch_at_message`).
    pub branched_from: Option<String>,
    pub branch_at_message: Option<String>,
    /// The forked-at message's place in the parent chat, when it is in the archive.
    pub branch_at_index: Option<i64>,
    /// A group chat's members (Lumiverse keeps `group: true` and `character_ids` in the
    /// chat's metadata), by name where the archive has the character; empty otherwise.
    pub members: Vec<String>,
}

/// One message of an opened chat.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub index: i64,
    pub is_user: bool,
    pub name: String,
    /// Every swipe (one, the content, when the message has none recorded).
    pub swipes: Vec<String>,
    /// The swipe shown, within `swipes`.
    pub swipe_id: usize,
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

/// The explorer's index of one archive (see the module documentation).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// Line numbers (1-based) of each chat's messages in `database/messages.ndjson`.
    #[serde(skip)]
    chat_lines: HashMap<String, Vec<u32>>,
    /// Line numbers of each world book's entries in `database/world_book_entries.ndjson`.
    #[serde(skip)]
    book_lines: HashMap<String, Vec<u32>>,
}

/// The first `limit` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
        None => text.to_string(),
    }
}

fn text(row: &serde_json::Map<String, Value>, column: &str) -> String {
    row.get(column).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn optional_text(row: &serde_json::Map<String, Value>, column: &str) -> Option<String> {
    row.get(column).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn integer(row: &serde_json::Map<String, Value>, column: &str) -> Option<i64> {
    row.get(column).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// The JSON object a text column holds, or an empty one.
fn json_object(row: &serde_json::Map<String, Value>, column: &str) -> serde_json::Map<String, Value> {
    match row.get(column) {
        Some(Value::String(text)) => serde_json::from_str(text).ok(),
        Some(Value::Object(object)) => Some(object.clone()),
        _ => None,
    }
    .unwrap_or_default()
}

/// The strings of a JSON array held in a text column (or given as an array).
fn json_strings(row: &serde_json::Map<String, Value>, column: &str) -> Vec<String> {
    let array = match row.get(column) {
        Some(Value::String(text)) => serde_json::from_str::<Vec<Value>>(text).unwrap_or_default(),
        Some(Value::Array(array)) => array.clone(),
        _ => Vec::new(),
    };
    array.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
}

/// The members of a group chat, from its metadata: names where known, else ids.
fn group_members(metadata: &serde_json::Map<String, Value>, names: &HashMap<String, String>) -> Vec<String> {
    let group = matches!(metadata.get("group"), Some(Value::Bool(true)))
        || metadata.get("group").and_then(Value::as_i64) == Some(1);
    if !group {
        return Vec::new();
    }
    let ids = metadata.get("character_ids").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    ids.map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string())).collect()
}

/// The last path segment of a stored file path (`avatars/x.png` → `x.png`).
fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Only the column a child row is grouped by.
#[derive(Deserialize)]
struct ParentKey<'a> {
    #[serde(borrow, default)]
    chat_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    world_book_id: Option<std::borrow::Cow<'a, str>>,
}

impl ExploreIndex {
    /// Streams the tables the explorer shows, once each, and builds the index. `progress`
    /// hears each table's name as it starts.
    pub fn build<R: Read + Seek>(archive: &mut Archive<R>, mut progress: impl FnMut(&str)) -> Result<Self> {
        let mut index = Self::default();
        // An avatar file named by the row; whether the archive has it is settled below.
        let avatar = |row: &serde_json::Map<String, Value>| {
            optional_text(row, "avatar_path").map(|path| format!("files/avatars/{}", base_name(&path)))
        };
        progress("characters");
        index.characters = index.each_row(archive, "characters", |row| CharacterCard {
            id: text(&row, "id"),
            name: text(&row, "name"),
            description: clip(&text(&row, "description"), CARD_TEXT),
            avatar: avatar(&row),
            chats: 0,
            image_id: optional_text(&row, "image_id"),
        })?;
        progress("personas");
        index.personas = index.each_row(archive, "personas", |row| PersonaCard {
            id: text(&row, "id"),
            name: text(&row, "name"),
            description: clip(&text(&row, "description"), CARD_TEXT),
            avatar: avatar(&row),
            image_id: optional_text(&row, "image_id"),
        })?;
        // Images: the gallery keeps the first [`IMAGE_CARDS`]; a picture of a character or
        // persona is found by its image id whatever its place.
        progress("images");
        let wanted: std::collections::HashSet<String> = index
            .characters
            .iter()
            .filter_map(|c| c.image_id.clone())
            .chain(index.personas.iter().filter_map(|p| p.image_id.clone()))
            .collect();
        let mut pictures: HashMap<String, String> = HashMap::new();
        let mut images = Vec::new();
        let mut total = 0u64;
        index.each_object(archive, "images", |row| {
            total += 1;
            let file = base_name(&text(&row, "filename")).to_string();
            let id = text(&row, "id");
            if !file.is_empty() && wanted.contains(&id) {
                pictures.insert(id.clone(), format!("files/images/{file}"));
            }
            if images.len() < IMAGE_CARDS {
                images.push(ImageCard {
                    id,
                    original: (!file.is_empty()).then(|| format!("files/images/{file}")),
                    name: optional_text(&row, "original_filename").unwrap_or(file),
                    width: integer(&row, "width"),
                    height: integer(&row, "height"),
                    thumbnail: None,
                });
            }
        })?;
        index.images = images;
        index.images_total = total;
        index.settle_files(archive, pictures);
        progress("presets");
        index.presets = index.each_row(archive, "presets", |row| PresetCard {
            id: text(&row, "id"),
            name: text(&row, "name"),
            provider: text(&row, "provider"),
        })?;
        progress("world_books");
        index.world_books = index.each_row(archive, "world_books", |row| WorldBookCard {
            id: text(&row, "id"),
            name: text(&row, "name"),
            description: clip(&text(&row, "description"), CARD_TEXT),
            entries: 0,
        })?;
        progress("world_book_entries");
        index.book_lines = index.group_lines(archive, "world_book_entries", |key| key.world_book_id)?;
        for book in &mut index.world_books {
            book.entries = index.book_lines.get(&book.id).map_or(0, |lines| lines.len() as u32);
        }
        progress("chats");
        let names: HashMap<String, String> = index.characters.iter().map(|c| (c.id.clone(), c.name.clone())).collect();
        index.chats = index.each_row(archive, "chats", |row| {
            let metadata = json_object(&row, "metadata");
            let character_id = optional_text(&row, "character_id");
            ChatCard {
                id: text(&row, "id"),
                name: text(&row, "name"),
                character_name: character_id.as_ref().and_then(|id| names.get(id).cloned()),
                character_id,
                messages: 0,
                updated_at: integer(&row, "updated_at"),
                branched_from: metadata.get("branched_from").and_then(Value::as_str).map(str::to_string),
                branch_at_message: metadata.get("branch_at_message").and_then(Value::as_str).map(str::to_string),
                branch_at_index: None,
                members: group_members(&metadata, &names),
            }
        })?;
        progress("messages");
        index.chat_lines = index.group_lines(archive, "messages", |key| key.chat_id)?;
        let mut chats_of: HashMap<String, u32> = HashMap::new();
        for chat in &mut index.chats {
            chat.messages = index.chat_lines.get(&chat.id).map_or(0, |lines| lines.len() as u32);
            if let Some(character) = &chat.character_id {
                *chats_of.entry(character.clone()).or_default() += 1;
            }
        }
        for character in &mut index.characters {
            character.chats = chats_of.get(&character.id).copied().unwrap_or(0);
        }
        index.place_branch_points(archive)?;
        index.stats.index_bytes = index.estimate_bytes();
        Ok(index)
    }

    /// Calls `each` with every row of `table` (if the archive has it), one at a time.
    fn each_object<R: Read + Seek>(
        &mut self,
        archive: &mut Archive<R>,
        table: &str,
        mut each: impl FnMut(serde_json::Map<String, Value>),
    ) -> Result<()> {
        let Some(entry) = archive.table_entry(table) else { return Ok(()) };
        let mut lines = archive.ndjson_lines(entry)?;
        let name = lines.entry().to_string();
        while let Some((number, line)) = lines.next_line()? {
            each(parse_row(&name, number, line)?);
            self.stats.rows += 1;
        }
        Ok(())
    }

    /// Maps every row of `table` (if the archive has it) to a card.
    fn each_row<R: Read + Seek, T>(
        &mut self,
        archive: &mut Archive<R>,
        table: &str,
        mut card: impl FnMut(serde_json::Map<String, Value>) -> T,
    ) -> Result<Vec<T>> {
        let mut cards = Vec::new();
        self.each_object(archive, table, |row| cards.push(card(row)))?;
        Ok(cards)
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

    /// The line numbers of `table`'s rows, grouped by the parent id `parent` picks.
    fn group_lines<R: Read + Seek>(
        &mut self,
        archive: &mut Archive<R>,
        table: &str,
        parent: impl for<'a> Fn(ParentKey<'a>) -> Option<std::borrow::Cow<'a, str>>,
    ) -> Result<HashMap<String, Vec<u32>>> {
        let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
        let Some(entry) = archive.table_entry(table) else { return Ok(groups) };
        let mut lines = archive.ndjson_lines(entry)?;
        let name = lines.entry().to_string();
        while let Some((number, line)) = lines.next_line()? {
            let key: ParentKey = serde_json::from_slice(line).map_err(|e| bad_json(&name, number, e.to_string()))?;
            self.stats.rows += 1;
            if let Some(id) = parent(key) {
                match groups.get_mut(id.as_ref()) {
                    Some(list) => list.push(number as u32),
                    None => {
                        groups.insert(id.into_owned(), vec![number as u32]);
                    }
                }
            }
        }
        Ok(groups)
    }

    /// Fills in where each branch forked: the fork message's place in its parent chat.
    fn place_branch_points<R: Read + Seek>(&mut self, archive: &mut Archive<R>) -> Result<()> {
        // Several branches may fork at one message.
        let mut wanted: HashMap<String, Vec<usize>> = HashMap::new();
        for (at, chat) in self.chats.iter().enumerate() {
            if let Some(message) = &chat.branch_at_message {
                wanted.entry(message.clone()).or_default().push(at);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut lines: Vec<u32> = self
            .chats
            .iter()
            .filter(|chat| chat.branch_at_message.is_some())
            .filter_map(|chat| self.chat_lines.get(chat.branched_from.as_ref()?))
            .flatten()
            .copied()
            .collect();
        lines.sort_unstable();
        lines.dedup();
        let mut found = Vec::new();
        read_lines(archive, "messages", &lines, |entry, number, line| {
            let row = parse_row(entry, number, line)?;
            for &at in wanted.get(&text(&row, "id")).into_iter().flatten() {
                found.push((at, integer(&row, "index_in_chat")));
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
            bytes += 80 + strings(&[&b.id, &b.name, &b.description]);
        }
        for p in &self.presets {
            bytes += 72 + strings(&[&p.id, &p.name, &p.provider]);
        }
        for i in &self.images {
            bytes += 112 + strings(&[&i.id, &i.name]) + option(&i.thumbnail) + option(&i.original);
        }
        for c in &self.chats {
            bytes += 160 + strings(&[&c.id, &c.name]);
            bytes += [&c.character_id, &c.character_name, &c.branched_from, &c.branch_at_message]
                .iter()
                .map(|o| option(o))
                .sum::<u64>();
        }
        for (id, lines) in self.chat_lines.iter().chain(&self.book_lines) {
            bytes += 48 + id.capacity() as u64 + 4 * lines.capacity() as u64;
        }
        bytes
    }

    /// The messages of one chat, in chat order (by `index_in_chat`); empty for a chat the
    /// archive does not have.
    pub fn chat_messages<R: Read + Seek>(&self, archive: &mut Archive<R>, chat_id: &str) -> Result<Vec<MessageView>> {
        let Some(lines) = self.chat_lines.get(chat_id) else { return Ok(Vec::new()) };
        let mut messages = Vec::with_capacity(lines.len());
        read_lines(archive, "messages", lines, |entry, number, line| {
            let row = parse_row(entry, number, line)?;
            let content = text(&row, "content");
            let mut swipes = json_strings(&row, "swipes");
            if swipes.is_empty() {
                swipes.push(content);
            }
            let swipe_id = integer(&row, "swipe_id").unwrap_or(0).clamp(0, swipes.len() as i64 - 1) as usize;
            messages.push(MessageView {
                id: text(&row, "id"),
                index: integer(&row, "index_in_chat").unwrap_or(0),
                is_user: row.get("is_user").is_some_and(|v| v.as_i64() == Some(1) || v.as_bool() == Some(true)),
                name: text(&row, "name"),
                swipes,
                swipe_id,
                send_date: integer(&row, "send_date"),
            });
            Ok(true)
        })?;
        messages.sort_by_key(|m| m.index);
        Ok(messages)
    }

    /// The entries of one world book, in the archive's order.
    pub fn world_book_entries<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        book_id: &str,
    ) -> Result<Vec<WorldBookEntryView>> {
        let Some(lines) = self.book_lines.get(book_id) else { return Ok(Vec::new()) };
        let mut entries = Vec::with_capacity(lines.len());
        read_lines(archive, "world_book_entries", lines, |entry, number, line| {
            let row = parse_row(entry, number, line)?;
            entries.push(WorldBookEntryView {
                id: text(&row, "id"),
                keys: json_strings(&row, "key"),
                comment: text(&row, "comment"),
                content: text(&row, "content"),
                disabled: integer(&row, "disabled").unwrap_or(0) != 0,
            });
            Ok(true)
        })?;
        Ok(entries)
    }

    /// Searches character names, chat names and message text for `query` (ignoring case),
    /// handing each hit to `hit` as it is found; stops after `limit`
    /// hits or when `hit` answers false. Answers how many hits were handed over.
    pub fn search<R: Read + Seek>(
        &self,
        archive: &mut Archive<R>,
        query: &str,
        limit: usize,
        mut hit: impl FnMut(SearchHit) -> bool,
    ) -> Result<usize> {
        let needle = query.trim().to_lowercase();
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
        let chat_names: HashMap<&str, &str> = self.chats.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
        // A plain ASCII needle is looked for in the raw line first (ASCII letters folded),
        // so only lines that may match are parsed; any other needle parses every line.
        let prefilter =
            (needle.is_ascii() && !needle.contains(['"', '\\'])).then(|| memmem::Finder::new(needle.as_bytes()));
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
            let row = parse_row(&name, number, line)?;
            let content = text(&row, "content");
            let Some((start, end)) = find_folded(&content, &needle) else { continue };
            let chat_id = text(&row, "chat_id");
            let found = SearchHit::Message {
                chat_name: chat_names.get(chat_id.as_str()).copied().unwrap_or_default().to_string(),
                chat_id,
                message_id: text(&row, "id"),
                index: integer(&row, "index_in_chat").unwrap_or(0),
                snippet: snippet(&content, start, end),
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::find_folded;

    #[test]
    fn a_folded_match_maps_back_to_the_original_bytes() {
        assert_eq!(find_folded("Harbour CAFÉ", "café"), Some((8, 13)));
        // 'İ' lower-cases to two characters (3 bytes for 2): the range is the original's.
        let text = "xİy";
        let (start, end) = find_folded(text, &"İY".to_lowercase()).unwrap();
        assert_eq!(&text[start..end], "İy");
        assert_eq!(find_folded("harbour", "fog"), None);
    }
}
