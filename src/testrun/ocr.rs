//! Text on a VM's screen, read by the `tesseract` program.
//!
//! The program rather than a binding crate: bindings build Tesseract's
//! and Leptonica's C and C++ libraries (or need their headers), while
//! Debian's `tesseract-ocr` package is one `apt-get install` and brings
//! the English model. The PNG goes to its stdin and the text comes from
//! its stdout, so no file is written.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

/// The longest a reading may take: tesseract takes about a second for a
/// screen on one core.
const LIMIT: Duration = Duration::from_secs(60);

/// What a reading gave, and how long it took.
#[derive(Debug, Clone)]
pub struct Reading {
    pub text: String,
    pub took: Duration,
}

/// Reads the text of a screen, given as PNG (see
/// [`crate::screen::Image::to_png`]).
///
/// # Errors
///
/// The program is missing, fails, or takes longer than a minute; the
/// message names the fix where there is one.
pub async fn read(png: &[u8]) -> Result<Reading, String> {
    let started = Instant::now();
    // As it is, with tesseract's automatic page layout. Measured on the
    // tiny guest's 720x400 text console (9x16 glyphs): 97 % of characters
    // read right as is; scaled up twice (nearest neighbour) 98 % with a
    // fixed one-block layout but 83 % with the automatic one, which then
    // splits console lines into columns and so breaks patterns that span
    // them. Automatic layout also suits desktop screens, where a single
    // block does not.
    let mut child = tokio::process::Command::new("tesseract")
        .args(["stdin", "stdout"])
        // Tesseract's OpenMP threads spin against each other on small
        // machines: on two cores a reading took 12 s with them and 1 s
        // with one thread.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "OCR needs the `tesseract` program, which is not installed: install Debian's `tesseract-ocr` package (scripts/setup-host.sh does)".to_string(),
            _ => format!("OCR: cannot run tesseract: {e}"),
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| "OCR: no stdin for tesseract".to_string())?;
    let feed = async move {
        let written = stdin.write_all(png).await;
        drop(stdin);
        written
    };
    let run = async {
        let (fed, output) = tokio::join!(feed, child.wait_with_output());
        fed.map_err(|e| format!("OCR: writing to tesseract: {e}"))?;
        output.map_err(|e| format!("OCR: tesseract: {e}"))
    };
    let output = tokio::time::timeout(LIMIT, run)
        .await
        .map_err(|_| format!("OCR: tesseract took longer than {} s", LIMIT.as_secs()))??;
    if !output.status.success() {
        return Err(format!(
            "OCR: tesseract failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(Reading {
        text: String::from_utf8_lossy(&output.stdout).into_owned(),
        took: started.elapsed(),
    })
}

/// The text as a message shows it: lines trimmed, blank ones and stray
/// one-character lines (OCR noise from borders and the cursor) dropped,
/// at most `max` characters from the end, where a console's newest lines
/// are.
pub fn shown(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().count() > 1)
        .collect();
    let joined = lines.join("\n");
    let count = joined.chars().count();
    if count <= max {
        return joined;
    }
    let tail: String = joined.chars().skip(count - max).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_drops_noise_and_keeps_the_end() {
        let text = "  first line \n\n[\nc\nsecond line\n   \nlast line\n";
        assert_eq!(shown(text, 100), "first line\nsecond line\nlast line");
        assert_eq!(shown(text, 9), "…last line");
        assert_eq!(shown("", 10), "");
    }
}
