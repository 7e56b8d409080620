//! `lvbak card ARCHIVE --character ID --format json|png|charx -o FILE` and `lvbak card ARCHIVE
//! --all --format F -o DIR`: character cards out of an archive, built by lvbak-core exactly
//! as Lumiverse 1.1 exports them (`--all`: one file per character, `<character id>.<ext>`);
//! `lvbak card --inspect FILE [--json]`: a card file (JSON, PNG or CHARX) read back and
//! shown. A refused archive, card or character prints its code and exits 2.
//!
//! A CHARX's entries and world books carry the time of the export: now, or
//! `SOURCE_DATE_EPOCH` when it is set (so a card can be made again byte for byte).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use lvbak_core::card::{character_list, read_card, CardView, CharacterRows};
use lvbak_core::{Archive, FormatError};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::printable::{field, print_json, printable, Breaks, JsonLayout};

#[derive(Debug, Args)]
pub struct CardArgs {
    /// The .lvbak archive the cards come from.
    #[arg(required_unless_present = "inspect", conflicts_with = "inspect")]
    archive: Option<PathBuf>,
    /// The character's id, whole, as the archive has it.
    #[arg(long, conflicts_with = "all", required_unless_present_any = ["all", "inspect"])]
    character: Option<String>,
    /// Every character of the archive: one file each in the -o folder, named
    /// <character id>.<json|png|charx>.
    #[arg(long)]
    all: bool,
    /// The card's format.
    #[arg(long, value_enum, required_unless_present = "inspect")]
    format: Option<CardFormat>,
    /// The card file to write (with --all: the folder, made if missing).
    #[arg(short = 'o', long = "output", required_unless_present = "inspect")]
    output: Option<PathBuf>,
    /// Read a card file back (JSON, PNG with a ccv3/chara chunk, or CHARX) and show its name,
    /// fields and book entries.
    #[arg(long, value_name = "FILE")]
    inspect: Option<PathBuf>,
    /// With --inspect: print exactly one JSON object.
    #[arg(long, requires = "inspect")]
    json: bool,
}

/// A card's format, which is also its file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CardFormat {
    Json,
    Png,
    Charx,
}

impl CardFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Png => "png",
            Self::Charx => "charx",
        }
    }
}

/// Exit code of a refused archive, card or character.
const REJECTED: u8 = 2;

pub fn run(args: &CardArgs) -> ExitCode {
    match (&args.inspect, &args.archive, args.format, &args.output) {
        (Some(file), _, _, _) => inspect(file, args.json),
        (None, Some(archive), Some(format), Some(output)) => export(archive, format, output, args),
        // clap requires these without --inspect.
        _ => ExitCode::FAILURE,
    }
}

/// Prints a refusal as `code: message` on stderr; answers the exit code.
fn refused(error: &FormatError) -> ExitCode {
    eprintln!("{}: {}", error.code(), field(&error.to_string()));
    if error.code() == "unsupported_image" {
        eprintln!("  the avatar cannot go into a PNG card; the JSON card can still be made (--format json)");
    }
    ExitCode::from(REJECTED)
}

/// The time a CHARX is stamped with.
fn exported_at() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(crate::util::now)
}

fn build<R: std::io::Read + std::io::Seek>(
    archive: &mut Archive<R>,
    id: &str,
    format: CardFormat,
    exported_at: i64,
) -> Result<(String, Vec<u8>), FormatError> {
    let rows = CharacterRows::read(archive, id)?;
    let bytes = match format {
        CardFormat::Json => rows.ccv3_json()?.into_bytes(),
        CardFormat::Png => rows.png(archive)?,
        CardFormat::Charx => rows.charx(archive, exported_at)?,
    };
    Ok((rows.name().to_string(), bytes))
}

fn export(path: &Path, format: CardFormat, output: &Path, args: &CardArgs) -> ExitCode {
    let limits = match crate::config::limits_from_env() {
        Ok(limits) => limits,
        Err(error) => {
            eprintln!("lvbak: {error}");
            return ExitCode::FAILURE;
        }
    };
    let opened = File::open(path)
        .map_err(FormatError::Io)
        .and_then(|file| Archive::open(BufReader::with_capacity(64 * 1024, file), limits));
    let mut archive = match opened {
        Ok(archive) => archive,
        Err(error) => return refused(&error),
    };
    let at = exported_at();
    let Some(id) = &args.character else { return export_all(&mut archive, format, output, at) };
    let (name, bytes) = match build(&mut archive, id, format, at) {
        Ok(card) => card,
        Err(error) => return refused(&error),
    };
    if let Err(error) = std::fs::write(output, &bytes) {
        eprintln!("lvbak: cannot write {}: {error}", output.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {} ({} bytes): {}", output.display(), bytes.len(), field(&name));
    ExitCode::SUCCESS
}

/// A character id as a file name: as it is when it is a plain name (letters, digits, `.`,
/// `_`, `-`, not starting with `.`, at most 200 bytes); otherwise those characters kept,
/// the rest `_`, cut to 200, and the first 8 hex digits of the id's SHA-256 added, so ids
/// an archive chose cannot leave the folder, hide, or meet.
fn file_stem(id: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !id.is_empty() && id.len() <= 200 && !id.starts_with('.') && id.chars().all(plain) {
        return id.to_string();
    }
    let kept: String = id.chars().take(200).map(|c| if plain(c) { c } else { '_' }).collect();
    let kept = kept.trim_start_matches('.');
    format!("{kept}-{}", &hex::encode(Sha256::digest(id.as_bytes()))[..8])
}

fn export_all<R: std::io::Read + std::io::Seek>(
    archive: &mut Archive<R>,
    format: CardFormat,
    folder: &Path,
    exported_at: i64,
) -> ExitCode {
    let characters = match character_list(archive) {
        Ok(characters) => characters,
        Err(error) => return refused(&error),
    };
    if let Err(error) = std::fs::create_dir_all(folder) {
        eprintln!("lvbak: cannot make {}: {error}", folder.display());
        return ExitCode::FAILURE;
    }
    let mut written = std::collections::HashSet::new();
    let mut failed = 0usize;
    for (id, _) in &characters {
        let file = format!("{}.{}", file_stem(id), format.extension());
        if !written.insert(file.clone()) {
            eprintln!("{}: two characters would be written to {}; this one is left out", field(id), field(&file));
            failed += 1;
            continue;
        }
        match build(archive, id, format, exported_at) {
            Ok((name, bytes)) => {
                if let Err(error) = std::fs::write(folder.join(&file), &bytes) {
                    eprintln!("lvbak: cannot write {}: {error}", folder.join(&file).display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {file} ({} bytes): {}", bytes.len(), field(&name));
            }
            Err(error) => {
                eprintln!("{}: {}: {}", field(id), error.code(), field(&error.to_string()));
                if error.code() == "unsupported_image" {
                    eprintln!("  its JSON card can still be made (--format json)");
                }
                failed += 1;
            }
        }
    }
    let made = characters.len() - failed;
    println!("{made} of {} cards written to {}", characters.len(), folder.display());
    if failed > 0 {
        ExitCode::from(REJECTED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--inspect --json`: whether the card was read, and what it holds (core's [`CardView`]).
#[derive(Serialize)]
struct JsonView<'a> {
    ok: bool,
    code: Option<&'static str>,
    message: Option<String>,
    card: Option<&'a CardView>,
}

fn inspect(path: &Path, json: bool) -> ExitCode {
    let read = File::open(path).map_err(FormatError::Io).and_then(|file| read_card(BufReader::new(file)));
    let mut out = std::io::stdout().lock();
    let written = match (&read, json) {
        (_, true) => {
            let error = read.as_ref().err();
            let answer = JsonView {
                ok: error.is_none(),
                code: error.map(FormatError::code),
                message: error.map(ToString::to_string),
                card: read.as_ref().ok(),
            };
            print_json(&mut out, &answer, JsonLayout::Line)
        }
        (Ok(view), false) => write_view(&mut out, view),
        (Err(error), false) => writeln!(out, "{}: {}", error.code(), field(&error.to_string())),
    };
    if let Err(error) = written {
        eprintln!("lvbak: cannot write the card: {error}");
        return ExitCode::FAILURE;
    }
    if read.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(REJECTED)
    }
}

/// Prose from a card, its lines indented under their heading.
fn indented(text: &str) -> String {
    format!("    {}", printable(text, Breaks::Keep).replace('\n', "\n    "))
}

fn write_view(out: &mut impl Write, view: &CardView) -> std::io::Result<()> {
    writeln!(out, "Card      {}", field(&view.name))?;
    let version = view.spec_version.as_deref().map(|v| format!(" {}", field(v))).unwrap_or_default();
    writeln!(out, "Spec      {}{version} (from {})", field(&view.spec), view.source.what())?;
    if let Some(assets) = view.assets {
        writeln!(out, "Assets    {assets} files under assets/")?;
    }
    if !view.tags.is_empty() {
        let tags: Vec<String> = view.tags.iter().map(|t| field(t).into_owned()).collect();
        writeln!(out, "Tags      {}", tags.join(", "))?;
    }
    writeln!(out, "Greetings {} alternate", view.alternate_greetings)?;
    for item in &view.fields {
        writeln!(out, "\n{}\n{}", item.field, indented(&item.text))?;
    }
    let Some(book) = &view.book else { return writeln!(out, "\nBook      (none)") };
    writeln!(out, "\nBook      {} ({} entries)", field(&book.name), book.entries_total)?;
    for (at, entry) in book.entries.iter().enumerate() {
        let keys: Vec<String> = entry.keys.iter().map(|k| field(k).into_owned()).collect();
        let keys = if keys.is_empty() { "(no keys)".to_string() } else { keys.join(", ") };
        let comment = if entry.comment.is_empty() { String::new() } else { format!(" · {}", field(&entry.comment)) };
        let disabled = if entry.enabled { "" } else { " · disabled" };
        writeln!(out, "  {}. {keys}{comment}{disabled}\n{}", at + 1, indented(&entry.content))?;
    }
    if book.entries_total > book.entries.len() {
        writeln!(out, "  … and {} more entries", book.entries_total - book.entries.len())?;
    }
    Ok(())
}
