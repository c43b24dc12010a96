//! `benchscale convert OLD.yaml [-o NEW.yaml] [--force]`: shows what the
//! conversion left out and changed, and writes the new file.

use std::io::Write;
use std::path::Path;

use super::{EXIT_ERROR, EXIT_OK};
use crate::convert;

pub(super) fn run(file: &Path, output: Option<&Path>, force: bool) -> u8 {
    let label = file.display().to_string();
    let text = match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                eprintln!("{label}:1:1: not YAML: the file is not UTF-8 text");
                return EXIT_ERROR;
            }
        },
        Err(e) => {
            eprintln!("Error: cannot read {label}: {e}");
            return EXIT_ERROR;
        }
    };
    let converted = match convert::convert(&label, &text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_ERROR;
        }
    };
    // Refuse to overwrite before saying anything else, so a user who
    // forgot `--force` sees one clear line.
    if let Some(out) = output
        && out.exists()
        && !force
    {
        eprintln!(
            "Error: {} exists; pass --force to overwrite it",
            out.display()
        );
        return EXIT_ERROR;
    }
    let mut stderr = std::io::stderr().lock();
    for n in &converted.notes {
        let _ = writeln!(
            stderr,
            "{label}:{}:{}: note: {}",
            n.line, n.column, n.message
        );
    }
    for p in &converted.problems {
        let _ = writeln!(stderr, "{label}:{}:{}: {}", p.line, p.column, p.message);
    }
    let target = output.map_or_else(|| "stdout".to_string(), |o| o.display().to_string());
    let _ = writeln!(
        stderr,
        "{label}: converted to {target}; {} left out (kept as comments){}",
        super::commands::plural(converted.problems.len(), "item"),
        if converted.notes.is_empty() {
            String::new()
        } else {
            format!(
                ", {}",
                super::commands::plural(converted.notes.len(), "note")
            )
        }
    );
    drop(stderr);
    match output {
        None => {
            print!("{}", converted.yaml);
            EXIT_OK
        }
        Some(out) => match std::fs::write(out, &converted.yaml) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("Error: cannot write {}: {e}", out.display());
                EXIT_ERROR
            }
        },
    }
}
