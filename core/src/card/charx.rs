//! The CHARX card: the ZIP Lumiverse 1.1's `exportAsCharx` writes — `card.json` (the card,
//! indented), the avatar as `assets/icon/image/main<ext>` (its own bytes, stale card chunks
//! removed), expression, expression-group, gallery, alternate-avatar and landing-layer
//! pictures under the names it gives them, and `lumiverse_modules.json` when there is
//! anything for it (those names, the alternate fields, the world books in Lumiverse's own
//! format, the bound regex scripts).
//!
//! Where Lumiverse's order depends on which picture its reads finish first (the entries, the
//! alternate avatars, the landing layers, the keys of the name maps), this writes the
//! stored order. Ids go into names as they are, except ids that could leave their folder
//! (a `/` or `\`), which are written as names are; a landing layer without an id is
//! `layer-<n>`, where Lumiverse draws a random one. The entries' time is `exported_at`,
//! which also stamps the world books (core keeps no clock).

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek, Write};

use indexmap::IndexMap;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::book::sqlite_order;
use super::ccv3::character_extensions;
use super::js::{JsObject, JsValue};
use super::modules::{
    alternate_avatars, alternate_fields, archive_name, bundled_script, expression_config, expression_groups, extension,
    id_in_name, is_nsfw_label, js_string, landing_layers, lumiverse_world_book, object_entries,
};
use super::picture::{read_image_rows, read_picture};
use super::png::strip_card_chunks;
use super::source::{scan_table, CharacterRows};
use super::stored::{StoredRow, CHARACTER_GALLERY, REGEX_SCRIPTS};
use crate::archive::Archive;
use crate::card::ccv3::attached_book_ids;
use crate::error::{FormatError, Result};
use crate::writer::zip_datetime;

/// Deflate level of `fflate`'s `zipSync`, which Lumiverse uses.
const DEFLATE_LEVEL: i64 = 6;

/// A picture of the archive, by image id: its bytes and its name's extension.
type Pictures = HashMap<String, Option<(Vec<u8>, String)>>;

/// The gallery rows of the character whose images row an import keeps, by `sort_order`.
fn read_gallery<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str) -> Result<Vec<StoredRow>> {
    let mut rows: Vec<StoredRow> = Vec::new();
    scan_table(archive, &CHARACTER_GALLERY, &[character_id], |id, row| {
        if let (Some(id), Ok(row)) = (id, row) {
            if row.text("character_id") == Some(character_id) && !rows.iter().any(|r| r.text("id") == Some(id)) {
                rows.push(row);
            }
        }
        Ok(true)
    })?;
    rows.sort_by(|a, b| sqlite_order(a.get("sort_order"), b.get("sort_order")));
    Ok(rows)
}

/// The regex scripts bound to the character, by `sort_order`, then `created_at`.
fn read_scripts<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str) -> Result<Vec<StoredRow>> {
    let mut rows: Vec<StoredRow> = Vec::new();
    scan_table(archive, &REGEX_SCRIPTS, &[character_id], |id, row| {
        if let (Some(id), Ok(row)) = (id, row) {
            let bound = row.text("scope") == Some("character") && row.text("scope_id") == Some(character_id);
            if bound && !rows.iter().any(|r| r.text("id") == Some(id)) {
                rows.push(row);
            }
        }
        Ok(true)
    })?;
    rows.sort_by(|a, b| {
        sqlite_order(a.get("sort_order"), b.get("sort_order"))
            .then_with(|| sqlite_order(a.get("created_at"), b.get("created_at")))
    });
    Ok(rows)
}

/// Reads every picture these ids name (`readImageBytes`): the images row an import keeps
/// and its file, with `path.extname` of its name (`.png` without one).
fn read_pictures<R: Read + Seek>(archive: &mut Archive<R>, ids: &[String]) -> Result<Pictures> {
    let rows = read_image_rows(archive, &ids.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut pictures = Pictures::new();
    for id in ids {
        if pictures.contains_key(id) {
            continue;
        }
        let picture = match rows.get(id) {
            Some(row) => {
                read_picture(archive, row)?.map(|bytes| (bytes, extension(row.text("filename").unwrap_or_default())))
            }
            None => None,
        };
        pictures.insert(id.clone(), picture);
    }
    Ok(pictures)
}

/// The picture an image id names, if the archive has it (ids that are not text name none).
fn picture<'p>(pictures: &'p Pictures, id: &JsValue) -> Option<&'p (Vec<u8>, String)> {
    id.as_str().and_then(|id| pictures.get(id)).and_then(Option::as_ref)
}

/// The bytes of a PNG without stale card chunks (anything else as it is).
fn without_card_chunks(bytes: &[u8]) -> Vec<u8> {
    strip_card_chunks(bytes).unwrap_or_else(|| bytes.to_vec())
}

impl CharacterRows {
    /// The CHARX card (see the module documentation); `exported_at` (unix seconds) stamps
    /// its entries and the world books it carries.
    pub fn charx<R: Read + Seek>(&self, archive: &mut Archive<R>, exported_at: i64) -> Result<Vec<u8>> {
        let what = format!("character {:?}", self.id());
        let card = self.ccv3_value()?;
        let extensions = character_extensions(&self.character)?;
        let gallery = read_gallery(archive, self.id())?;
        let scripts = read_scripts(archive, self.id())?;
        let config = expression_config(&extensions);
        let groups = expression_groups(&extensions)
            .into_iter()
            .map(|(name, labels)| Ok((name, object_entries(Some(&labels), &what)?)))
            .collect::<Result<Vec<_>>>()?;
        let avatars = alternate_avatars(&extensions, &what)?;
        let layers = landing_layers(&extensions);

        let mut ids: Vec<String> = self.avatar_ids()?;
        let text_ids = config
            .mappings
            .iter()
            .map(|(_, id)| id)
            .chain(groups.iter().flat_map(|(_, labels)| labels.iter().map(|(_, id)| id)))
            .chain(avatars.iter().map(|avatar| &avatar.image_id))
            .filter_map(JsValue::as_str)
            .map(str::to_string);
        ids.extend(text_ids);
        ids.extend(gallery.iter().filter_map(|row| row.text("image_id")).map(str::to_string));
        ids.extend(layers.iter().map(|layer| layer.image_id.clone()));
        let pictures = read_pictures(archive, &ids)?;

        let mut entries: IndexMap<String, Vec<u8>> = IndexMap::new();
        entries.insert("card.json".into(), card.to_json_pretty().into_bytes());
        let avatar = self.avatar_ids()?.into_iter().find_map(|id| pictures.get(&id).cloned().flatten());
        if let Some((bytes, ext)) = avatar {
            entries.insert(format!("assets/icon/image/main{ext}"), without_card_chunks(&bytes));
        }
        let mut nsfw_from_groups = false;
        let mut expression_paths = JsObject::new();
        for (label, id) in &config.mappings {
            if let Some((bytes, ext)) = picture(&pictures, id) {
                let path = format!("assets/other/image/expr_{}{ext}", archive_name(label));
                entries.insert(path.clone(), bytes.clone());
                expression_paths.insert(label.clone(), JsValue::from(path));
            }
        }
        let mut group_paths = JsObject::new();
        for (group, labels) in &groups {
            let mut paths = JsObject::new();
            for (label, id) in labels {
                if let Some((bytes, ext)) = picture(&pictures, id) {
                    let path =
                        format!("assets/other/image/exprg_{}--{}{ext}", archive_name(group), archive_name(label));
                    entries.insert(path.clone(), bytes.clone());
                    paths.insert(label.clone(), JsValue::from(path));
                    nsfw_from_groups |= is_nsfw_label(label);
                }
            }
            if !paths.is_empty() {
                group_paths.insert(group.clone(), JsValue::Object(paths));
            }
        }
        for item in &gallery {
            if let Some((bytes, ext)) = item.text("image_id").and_then(|id| pictures.get(id)).and_then(Option::as_ref) {
                let path =
                    format!("assets/other/image/gallery_{}{ext}", id_in_name(item.text("id").unwrap_or_default()));
                entries.insert(path, bytes.clone());
            }
        }
        let mut avatar_list = Vec::new();
        for avatar in &avatars {
            if let Some((bytes, ext)) = picture(&pictures, &avatar.image_id) {
                let path = format!("assets/icon/image/{}{ext}", id_in_name(&js_string(avatar.id.as_ref())));
                entries.insert(path.clone(), without_card_chunks(bytes));
                let mut listed = JsObject::new();
                if let Some(id) = &avatar.id {
                    listed.insert("id", id.clone());
                }
                listed.insert("label", avatar.label.clone());
                listed.insert("path", JsValue::from(path));
                avatar_list.push(JsValue::Object(listed));
            }
        }
        let mut layer_list = Vec::new();
        for layer in &layers {
            if let Some(Some((bytes, ext))) = pictures.get(&layer.image_id) {
                let name = archive_name(layer.label.as_deref().filter(|l| !l.is_empty()).unwrap_or(&layer.id));
                let path = format!("assets/other/image/landing_layer_{name}_{}{ext}", id_in_name(&layer.id));
                entries.insert(path.clone(), bytes.clone());
                let mut listed = JsObject::new();
                listed.insert("id", JsValue::from(layer.id.as_str()));
                if let Some(label) = &layer.label {
                    listed.insert("label", JsValue::from(label.as_str()));
                }
                listed.insert("path", JsValue::from(path));
                listed.insert("intensity", JsValue::Number(layer.intensity));
                layer_list.push(JsValue::Object(listed));
            }
        }

        // lumiverse_modules.json, its keys in the order Lumiverse sets them.
        let mut modules = JsObject::new();
        modules.insert("version", JsValue::Number(1.0));
        if let Some(fields) = alternate_fields(&extensions) {
            modules.insert("alternate_fields", fields);
        }
        let books = attached_book_ids(&extensions)
            .iter()
            .filter_map(|id| self.book(id))
            .map(|book| lumiverse_world_book(book, exported_at))
            .collect::<Result<Vec<_>>>()?;
        if !books.is_empty() {
            modules.insert("world_books", JsValue::Array(books));
        }
        if !scripts.is_empty() {
            let scripts = scripts.iter().map(bundled_script).collect::<Result<Vec<_>>>()?;
            modules.insert("regex_scripts", JsValue::Array(scripts));
        }
        if nsfw_from_groups {
            modules.insert("has_nsfw_expressions", JsValue::Bool(true));
        }
        if !expression_paths.is_empty() {
            let nsfw = expression_paths.iter().any(|(label, _)| is_nsfw_label(&label));
            let mut expressions = JsObject::new();
            expressions.insert("enabled", JsValue::Bool(config.enabled));
            expressions.insert("defaultExpression", config.default_expression.clone());
            expressions.insert("mappings", JsValue::Object(expression_paths));
            modules.insert("expressions", JsValue::Object(expressions));
            if nsfw {
                modules.insert("has_nsfw_expressions", JsValue::Bool(true));
            }
        }
        if !group_paths.is_empty() {
            let mut groups = JsObject::new();
            groups.insert("groups", JsValue::Object(group_paths));
            modules.insert("expression_groups", JsValue::Object(groups));
        }
        if !avatar_list.is_empty() {
            modules.insert("alternate_avatars", JsValue::Array(avatar_list));
        }
        if !layer_list.is_empty() {
            modules.insert("landing_perspective_layers", JsValue::Array(layer_list));
        }
        let carried = [
            "expressions",
            "expression_groups",
            "alternate_fields",
            "alternate_avatars",
            "landing_perspective_layers",
            "world_books",
            "regex_scripts",
        ];
        if carried.iter().any(|key| modules.contains_key(key)) {
            entries.insert("lumiverse_modules.json".into(), JsValue::Object(modules).to_json_pretty().into_bytes());
        }
        write_zip(&entries, exported_at)
    }
}

/// The entries as a ZIP, each deflated, in order.
fn write_zip(entries: &IndexMap<String, Vec<u8>>, exported_at: i64) -> Result<Vec<u8>> {
    let failed = |error: zip::result::ZipError| FormatError::Io(std::io::Error::other(error));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(zip_datetime(exported_at))
        .unix_permissions(0o644);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).map_err(failed)?;
        zip.write_all(bytes).map_err(FormatError::Io)?;
    }
    Ok(zip.finish().map_err(failed)?.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};

    use super::*;
    use crate::Limits;

    const IMAGE: &str = "00000000-0000-4000-8000-000000000001";

    /// An archive with these tables (NDJSON lines as given) and one PNG-named picture file
    /// whose bytes are not a PNG (a CHARX copies pictures as they are).
    fn archive(tables: &[(&str, Vec<String>)]) -> Archive<Cursor<Vec<u8>>> {
        let mut entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[]))];
        for (table, lines) in tables {
            let ndjson: String = lines.iter().map(|line| format!("{line}\n")).collect();
            entries.push(RawEntry::deflated(&format!("database/{table}.ndjson"), ndjson.as_bytes()));
        }
        entries.push(RawEntry::stored(&format!("files/images/{IMAGE}.webp"), b"picture bytes"));
        Archive::open(Cursor::new(RawZip::new(entries).build()), Limits::STANDARD).unwrap()
    }

    fn character(extensions: &str) -> String {
        format!(r#"{{"id":"c","name":"C","extensions":{}}}"#, serde_json::to_string(extensions).unwrap())
    }

    fn image_row() -> String {
        format!(r#"{{"id":"{IMAGE}","filename":"{IMAGE}.webp"}}"#)
    }

    /// The CHARX's entries: name → text (lossy), in order, and the time of the first.
    fn charx_of(archive: &mut Archive<Cursor<Vec<u8>>>) -> (Vec<(String, String)>, zip::DateTime, CompressionMethod) {
        let rows = CharacterRows::read(archive, "c").unwrap();
        let bytes = rows.charx(archive, 1_795_400_000).unwrap();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let (time, method) = {
            let first = zip.by_index(0).unwrap();
            (first.last_modified().unwrap(), first.compression())
        };
        let entries = (0..zip.len())
            .map(|at| {
                let mut file = zip.by_index(at).unwrap();
                let mut text = Vec::new();
                file.read_to_end(&mut text).unwrap();
                (file.name().unwrap().to_string(), String::from_utf8_lossy(&text).into_owned())
            })
            .collect();
        (entries, time, method)
    }

    #[test]
    fn a_bare_character_is_its_card_alone() {
        let mut archive = archive(&[("characters", vec![character("{}")])]);
        let (entries, time, method) = charx_of(&mut archive);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "card.json");
        assert!(entries[0].1.starts_with(
            "{\n  \"spec\": \"chara_card_v3\",\n  \"spec_version\": \"3.0\",\n  \"data\": {\n    \"name\": \"C\","
        ));
        assert_eq!(method, CompressionMethod::Deflated);
        assert_eq!((time.year(), time.month(), time.day(), time.hour(), time.minute()), (2026, 11, 23, 2, 13));
    }

    #[test]
    fn modules_keys_come_in_the_order_lumiverse_sets_them() {
        let extensions = format!(
            r#"{{"alternate_fields":{{"d":[1]}},"expressions":{{"mappings":{{"sex":"{IMAGE}"}}}},"expression_groups":{{"G":{{"nude":"{IMAGE}"}}}},"alternate_avatars":[{{"id":"a","label":"A","image_id":"{IMAGE}"}}],"landing_perspective_layers":[{{"id":"l","image_id":"{IMAGE}"}}]}}"#
        );
        let script = r#"{"id":"r","name":"R","find_regex":"x","scope":"character","scope_id":"c"}"#.to_string();
        let mut archive = archive(&[
            ("characters", vec![character(&extensions)]),
            ("images", vec![image_row()]),
            ("regex_scripts", vec![script]),
        ]);
        let (entries, _, _) = charx_of(&mut archive);
        let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "card.json",
                "assets/other/image/expr_sex.webp",
                "assets/other/image/exprg_G--nude.webp",
                "assets/icon/image/a.webp",
                "assets/other/image/landing_layer_l_l.webp",
                "lumiverse_modules.json"
            ]
        );
        let modules: Vec<String> = match JsValue::parse(&entries[5].1).unwrap() {
            JsValue::Object(object) => object.iter().map(|(key, _)| key).collect(),
            _ => unreachable!(),
        };
        assert_eq!(
            modules,
            [
                "version",
                "alternate_fields",
                "regex_scripts",
                "has_nsfw_expressions",
                "expressions",
                "expression_groups",
                "alternate_avatars",
                "landing_perspective_layers"
            ]
        );
        // Pictures go as they are, whatever their bytes.
        assert_eq!(entries[1].1, "picture bytes");
    }

    #[test]
    fn names_that_meet_are_one_entry_and_ids_cannot_leave_their_folder() {
        let extensions =
            format!(r#"{{"expressions":{{"mappings":{{"a/b":"{IMAGE}","a_b":"{IMAGE}","gone":"nothing"}}}}}}"#);
        let gallery = format!(r#"{{"id":"../up","character_id":"c","image_id":"{IMAGE}","created_at":1}}"#);
        let mut archive = archive(&[
            ("characters", vec![character(&extensions)]),
            ("images", vec![image_row()]),
            ("character_gallery", vec![gallery]),
        ]);
        let (entries, _, _) = charx_of(&mut archive);
        let entries: BTreeMap<String, String> = entries.into_iter().collect();
        assert!(entries.contains_key("assets/other/image/gallery_.._up.webp"), "{:?}", entries.keys());
        assert!(entries.keys().all(|name| !name.contains("../")));
        let modules = JsValue::parse(&entries["lumiverse_modules.json"]).unwrap();
        assert_eq!(
            modules.as_object().unwrap().get("expressions").unwrap().to_json(),
            r#"{"enabled":false,"defaultExpression":"","mappings":{"a/b":"assets/other/image/expr_a_b.webp","a_b":"assets/other/image/expr_a_b.webp"}}"#
        );
        assert_eq!(entries.keys().filter(|name| name.contains("expr_")).count(), 1);
    }
}
