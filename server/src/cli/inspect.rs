//! `lvbak inspect FILE [--json] [--ticket T] [--reveal-secrets] [--count-rows] [--verify]`:
//! what an archive holds, from its metadata entries; with a ticket, whether its secrets
//! decrypt. A rejected archive or ticket prints its code and exits 2.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use lvbak_core::{inspect, Archive, FormatError, InspectOptions, Inspection, Limits, Ticket, UtcTime};
use serde::Serialize;

use super::printable::{field, print_json, JsonLayout};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The .lvbak archive.
    pub file: PathBuf,
    /// Print exactly one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// A decryption ticket (.ticket.json): verify it and count the secrets that decrypt.
    #[arg(long)]
    pub ticket: Option<PathBuf>,
    /// Print decrypted secret values (only with --ticket).
    #[arg(long, requires = "ticket")]
    pub reveal_secrets: bool,
    /// Count NDJSON lines instead of trusting manifest-stats.json (reads every table).
    #[arg(long)]
    pub count_rows: bool,
    /// Also read every entry to its end: sizes, CRCs, line caps, JSON validity.
    #[arg(long)]
    pub verify: bool,
}

/// Exit code of a rejected archive or ticket.
const REJECTED: u8 = 2;

/// What the command found: an inspection, perhaps secret outcomes, perhaps a rejection.
struct Report {
    inspection: Option<Inspection>,
    decrypted: Option<Vec<(String, Result<String, String>)>>,
    rejection: Option<FormatError>,
    /// Per table, keys of its rows that are not columns here (`--verify` only).
    dropped_columns: BTreeMap<String, Vec<String>>,
}

pub fn run(args: &InspectArgs) -> ExitCode {
    let limits = match crate::config::limits_from_env() {
        Ok(limits) => limits,
        Err(error) => {
            eprintln!("lvbak: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = examine(args, limits);
    let mut out = std::io::stdout().lock();
    let written = if args.json { write_json(&mut out, &report, args) } else { write_text(&mut out, &report, args) };
    if let Err(error) = written {
        eprintln!("lvbak: cannot write the report: {error}");
        return ExitCode::FAILURE;
    }
    match report.rejection {
        Some(_) => ExitCode::from(REJECTED),
        None => ExitCode::SUCCESS,
    }
}

fn examine(args: &InspectArgs, limits: Limits) -> Report {
    let mut report = Report { inspection: None, decrypted: None, rejection: None, dropped_columns: BTreeMap::new() };
    let ticket = args.ticket.as_deref().map(read_ticket);
    let file = match File::open(&args.file) {
        Ok(file) => file,
        Err(error) => {
            report.rejection = Some(FormatError::Io(error));
            return report;
        }
    };
    let mut archive = match Archive::open(BufReader::with_capacity(64 * 1024, file), limits) {
        Ok(archive) => archive,
        Err(error) => {
            report.rejection = Some(error);
            return report;
        }
    };
    match inspect(&mut archive, InspectOptions { count_rows: args.count_rows }) {
        Ok(inspection) => report.inspection = Some(inspection),
        Err(error) => {
            report.rejection = Some(error);
            return report;
        }
    }
    if args.verify {
        let columns = crate::storage::sqlite::registry_columns().unwrap_or_default();
        let progress = super::progress::CliProgress::new(args.json);
        let verified = archive.verify_all_against(&columns, |at| {
            progress.show(super::progress::Step {
                phase: "verify".into(),
                words: "Verifying entries…".into(),
                position: Some((at.bytes_done, at.bytes_total)),
                last: at.entries_done == at.entries_total,
            })
        });
        progress.finish();
        match verified {
            Ok(dropped) => report.dropped_columns = dropped,
            Err(error) => {
                report.rejection = Some(error);
                return report;
            }
        }
    }
    match ticket {
        None => {}
        Some(Err(error)) => report.rejection = Some(error),
        Some(Ok(ticket)) => match archive.decrypt_secrets(&ticket) {
            Ok(outcomes) => {
                report.decrypted = Some(
                    outcomes
                        .into_iter()
                        .map(|o| (o.key, o.result.map(|value| value.to_string()).map_err(|skip| skip.to_string())))
                        .collect(),
                );
            }
            Err(error) => report.rejection = Some(error),
        },
    }
    report
}

fn read_ticket(path: &Path) -> Result<Ticket, FormatError> {
    let bytes = std::fs::read(path).map_err(FormatError::Io)?;
    Ticket::parse(&bytes)
}

/// `--json`: whether the archive (and the ticket) passed, the inspection report (core's
/// [`Inspection`], as the page gets it; absent when the archive was refused), what a ticket
/// decrypted (`null` without one), and what `--verify` found.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    ok: bool,
    code: Option<&'static str>,
    message: Option<String>,
    #[serde(flatten)]
    inspection: Option<&'a Inspection>,
    ticket: Option<TicketReport<'a>>,
    verified: bool,
    dropped_columns: &'a BTreeMap<String, Vec<String>>,
}

/// What an accepted ticket decrypted: how many, why the others were skipped, and with
/// `--reveal-secrets` the values.
#[derive(Serialize)]
struct TicketReport<'a> {
    decrypted: usize,
    skipped: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<BTreeMap<&'a str, &'a str>>,
}

fn write_json(out: &mut impl Write, report: &Report, args: &InspectArgs) -> std::io::Result<()> {
    let ticket = report.decrypted.as_ref().map(|decrypted| TicketReport {
        decrypted: decrypted.iter().filter(|(_, result)| result.is_ok()).count(),
        skipped: decrypted
            .iter()
            .filter_map(|(key, result)| result.as_ref().err().map(|why| (key.as_str(), why.as_str())))
            .collect(),
        values: args.reveal_secrets.then(|| {
            decrypted
                .iter()
                .filter_map(|(key, result)| result.as_ref().ok().map(|value| (key.as_str(), value.as_str())))
                .collect()
        }),
    });
    let json = JsonReport {
        ok: report.rejection.is_none(),
        code: report.rejection.as_ref().map(FormatError::code),
        message: report.rejection.as_ref().map(ToString::to_string),
        inspection: report.inspection.as_ref(),
        ticket,
        verified: args.verify && report.rejection.is_none(),
        dropped_columns: &report.dropped_columns,
    };
    print_json(out, &json, JsonLayout::Line)
}

fn write_text(out: &mut impl Write, report: &Report, args: &InspectArgs) -> std::io::Result<()> {
    if let Some(inspection) = &report.inspection {
        write_inspection(out, inspection)?;
    }
    if let Some(decrypted) = &report.decrypted {
        let ok = decrypted.iter().filter(|(_, r)| r.is_ok()).count();
        writeln!(out, "\nTicket accepted: {ok} of {} secrets decrypt", decrypted.len())?;
        for (key, result) in decrypted {
            match result {
                Ok(value) if args.reveal_secrets => writeln!(out, "  {} = {}", field(key), field(value))?,
                Ok(_) => writeln!(out, "  {}: decrypts", field(key))?,
                Err(why) => writeln!(out, "  {}: skipped ({})", field(key), field(why))?,
            }
        }
    }
    if args.verify && report.rejection.is_none() {
        writeln!(out, "\nVerified: every entry read to its end (sizes, CRC-32, line caps, JSON)")?;
        for (table, columns) in &report.dropped_columns {
            writeln!(out, "Warning: {}", super::import::dropped_columns_warning(table, columns, false))?;
        }
    }
    if let Some(error) = &report.rejection {
        let gap = if report.inspection.is_some() { "\n" } else { "" };
        writeln!(out, "{gap}{}: {}", error.code(), field(&error.to_string()))?;
    }
    Ok(())
}

fn write_inspection(out: &mut impl Write, inspection: &Inspection) -> std::io::Result<()> {
    let manifest = &inspection.manifest;
    writeln!(out, "Archive   {}", field(&inspection.archive_id))?;
    writeln!(
        out,
        "Producer  {} {} (schema {}{})",
        field(&manifest.producer),
        field(manifest.producer_version.as_deref().unwrap_or("(version not recorded)")),
        manifest.schema_version,
        if manifest.has_line_cap() { "" } else { ", legacy NDJSON" }
    )?;
    let exported = manifest.exported_at.map_or("(not recorded)".to_string(), |at| UtcTime::from_unix(at).human());
    writeln!(out, "Exported  {exported}")?;
    let embedding = &manifest.embedding_config;
    writeln!(
        out,
        "Vectors   {} ({} / {} / {})",
        if manifest.include_vectors { "included" } else { "not included" },
        field(embedding.provider.as_deref().unwrap_or("?")),
        field(embedding.model.as_deref().unwrap_or("?")),
        embedding.dimension.map_or("dimension unknown".to_string(), |d| format!("{d} dimensions")),
    )?;
    writeln!(
        out,
        "Size      {} bytes on disk, {} entries; {} compressed, {} decompressed",
        inspection.bytes.archive, inspection.entries, inspection.bytes.compressed, inspection.bytes.decompressed
    )?;

    let source = match inspection.count_source {
        lvbak_core::CountSource::Stats => "from manifest-stats.json",
        lvbak_core::CountSource::Lines => "counted",
        lvbak_core::CountSource::Unknown => "unknown",
    };
    let nonempty: Vec<&(String, u64)> = inspection.counts.iter().filter(|(_, rows)| *rows > 0).collect();
    writeln!(out, "\nRows ({source})")?;
    for (table, rows) in &nonempty {
        writeln!(out, "  {:<28} {rows:>10}", field(table))?;
    }
    let empty = inspection.counts.len() - nonempty.len();
    if empty > 0 {
        writeln!(out, "  ({empty} more tables are empty)")?;
    }
    let files: BTreeMap<&String, _> = inspection.files.iter().filter(|(_, t)| t.count > 0).collect();
    writeln!(out, "\nFiles")?;
    if files.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for (bucket, totals) in files {
        writeln!(out, "  {bucket:<28} {:>10} files {:>14} bytes", totals.count, totals.bytes)?;
    }
    if !inspection.vectors.is_empty() {
        writeln!(out, "\nVector tables")?;
        for (table, rows) in &inspection.vectors {
            writeln!(out, "  {:<28} {rows:>10}", field(table))?;
        }
    }
    writeln!(out, "\nSecrets   {} encrypted API keys", inspection.secrets.count)?;
    for key in &inspection.secrets.keys {
        writeln!(out, "  {}", field(key))?;
    }
    if !inspection.warnings.is_empty() {
        writeln!(out, "\nWarnings")?;
        for warning in &inspection.warnings {
            writeln!(out, "  - {}", field(warning))?;
        }
    }
    Ok(())
}
