//! Rows in steps, with bounded memory: NDJSON lines are read and parsed a step at a time
//! (at most [`STEP_ROWS`] rows or [`STEP_BYTES`] of lines) on a thread of their own, one
//! step ahead of the caller, who applies each step as it comes. Whatever an entry or a
//! batch holds, at most three steps exist at once. Raw uploads, `lvbak import` and browser
//! batches all read rows through here.

use std::io::BufRead;

use lvbak_core::{FormatError, NdjsonLines};

use super::error::ImportError;

/// Rows per step (one transaction step of the applier), at most.
pub const STEP_ROWS: usize = 1000;
/// Bytes of NDJSON lines per step, at most (a longer line makes a step of its own).
pub const STEP_BYTES: usize = 2 * 1024 * 1024;

/// Reads every line of `lines` (numbered from `first_line`), parses it with `parse` and
/// hands the rows to `apply` a step at a time. Parsing runs on another thread one step
/// ahead, so it overlaps with applying on the other core; `apply`'s error ends the reading.
pub fn for_each_step<R: BufRead + Send, T: Send>(
    mut lines: NdjsonLines<R>,
    first_line: u64,
    parse: impl Fn(&str, u64, &[u8]) -> Result<T, FormatError> + Send,
    mut apply: impl FnMut(Vec<T>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let offset = first_line.saturating_sub(1);
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<T>>(1);
        let reader = std::thread::Builder::new().name("rows-reader".into()).spawn_scoped(
            scope,
            move || -> Result<(), ImportError> {
                let entry = lines.entry().to_string();
                let mut step = Vec::with_capacity(STEP_ROWS);
                let mut bytes = 0;
                while let Some((number, line)) = lines.next_line()? {
                    bytes += line.len();
                    step.push(parse(&entry, offset + number, line)?);
                    if step.len() >= STEP_ROWS || bytes >= STEP_BYTES {
                        // A closed channel means the applier stopped; its error is the story.
                        if sender.send(std::mem::replace(&mut step, Vec::with_capacity(STEP_ROWS))).is_err() {
                            return Ok(());
                        }
                        bytes = 0;
                    }
                }
                if !step.is_empty() {
                    let _ = sender.send(step);
                }
                Ok(())
            },
        )?;
        let mut applied = Ok(());
        for step in receiver {
            applied = apply(step);
            if applied.is_err() {
                break;
            }
        }
        let read = reader.join().map_err(|_| ImportError::Io(std::io::Error::other("the rows reader panicked")))?;
        applied.and(read)
    })
}
