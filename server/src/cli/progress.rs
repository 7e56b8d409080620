//! Progress of long CLI commands (`export`, `import`, `inspect --verify`, `embed`) on
//! stderr: an `indicatif` bar when stderr is a terminal, plain lines otherwise (at most
//! one a second, plus every change of phase), so logs of scheduled backups stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;

use crate::progress::Event;

/// Where a command stands, shown as it changes.
pub enum CliProgress {
    Bar(ProgressBar),
    Lines(Mutex<Lines>),
    Quiet,
}

/// What plain-line output printed last.
pub struct Lines {
    phase: String,
    printed_at: Option<Instant>,
}

/// What one step looks like: its words, and how far along it is when that is known.
pub struct Step {
    pub phase: String,
    pub words: String,
    pub position: Option<(u64, u64)>,
    /// The end of a phase: printed as a line even within the second.
    pub last: bool,
}

impl CliProgress {
    /// A bar on a terminal, lines elsewhere, nothing when `quiet` (`--json` keeps stderr
    /// for errors).
    pub fn new(quiet: bool) -> Self {
        if quiet {
            return Self::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Self::Lines(Mutex::new(Lines { phase: String::new(), printed_at: None }));
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self::Bar(bar)
    }

    /// Shows `step`. Its words may name what an archive named (a table), so they are
    /// printed escaped, on the bar as on plain lines.
    pub fn show(&self, step: Step) {
        let text = match step.position {
            Some((done, total)) if total > 0 => {
                format!("{} {done}/{total} ({}%)", step.words, (100 * done / total).min(100))
            }
            _ => step.words.clone(),
        };
        let text = super::printable::field(&text).into_owned();
        match self {
            Self::Bar(bar) => bar.set_message(text),
            Self::Lines(lines) => {
                let mut lines = lines.lock();
                let due = lines.printed_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if lines.phase != step.phase || due || step.last {
                    eprintln!("{text}");
                    lines.phase = step.phase;
                    lines.printed_at = Some(Instant::now());
                }
            }
            Self::Quiet => {}
        }
    }

    /// Shows an export's or an import's event, in the page's words.
    pub fn event(&self, event: &Event) {
        if let Some(step) = step_of(event) {
            self.show(step);
        }
    }

    /// Ends the bar (the final summary follows on stdout).
    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Drop for CliProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn words(table: &str) -> String {
    table.replace('_', " ")
}

/// The words of an event (`None` for events that change nothing shown).
fn step_of(event: &Event) -> Option<Step> {
    let step = |phase: String, words: String, position, last| Some(Step { phase, words, position, last });
    match event {
        Event::Table { table, processed } => {
            step(format!("table {table}"), format!("{}… {processed} rows", words(table)), None, false)
        }
        Event::TableDone { table, counts } => step(
            format!("table {table}"),
            format!("{}: {} imported, {} skipped", words(table), counts.imported, counts.skipped),
            None,
            true,
        ),
        Event::Files { processed, total } => {
            step("files".into(), "Files…".into(), Some((*processed, *total)), processed == total)
        }
        Event::FilesDone { processed, total, .. } => {
            step("files".into(), "Files done:".into(), Some((*processed, *total)), true)
        }
        Event::Lancedb { table, processed } => {
            step(format!("vectors {table}"), format!("Vectors ({})… {processed}", words(table)), None, false)
        }
        Event::LancedbTableDone { table } => {
            step(format!("vectors {table}"), format!("Vectors ({}) done", words(table)), None, true)
        }
        Event::Secrets { count } | Event::SecretsApplyStart { count } => {
            step("secrets".into(), format!("API keys… {count}"), None, true)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_in_words() {
        let files = step_of(&Event::Files { processed: 312, total: 418 }).map(|s| (s.words, s.position));
        assert_eq!(files, Some(("Files…".to_string(), Some((312, 418)))));
        let table = step_of(&Event::Table { table: "chat_chunks".into(), processed: 5 }).map(|s| s.words);
        assert_eq!(table.as_deref(), Some("chat chunks… 5 rows"));
        assert!(step_of(&Event::Running).is_none());
    }
}
