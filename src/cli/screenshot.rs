//! `benchscale screenshot LAB NODE [-o FILE.png]`.

use std::io::Write;
use std::path::PathBuf;

use super::lab::{engine, report};
use super::{EXIT_ERROR, EXIT_OK};
use crate::config::Config;
use crate::topology::model::NodeKind;

/// Saves the screen of `node` as PNG: to `output`, by default
/// `LAB-NODE.png` in the current folder, or to stdout for `-`.
pub(super) async fn run(config: &Config, lab: &str, node: &str, output: Option<PathBuf>) -> u8 {
    // Screens are libvirt's: it must answer. Docker is asked when it
    // answers, so that a container is named as one.
    let engine = match engine(config, &[NodeKind::Vm]).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let image = match engine.screenshot(lab, node).await {
        Ok(image) => image,
        Err(e) => return report(e),
    };
    let png = match image.to_png() {
        Ok(png) => png,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let path = output.unwrap_or_else(|| PathBuf::from(format!("{lab}-{node}.png")));
    if path.as_os_str() == "-" {
        return match std::io::stdout().lock().write_all(&png) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: writing the screenshot to stdout: {e}");
                EXIT_ERROR
            }
        };
    }
    match std::fs::write(&path, &png) {
        Ok(()) => {
            println!(
                "{}x{} screen of {node} saved to {}",
                image.width(),
                image.height(),
                path.display()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", path.display());
            EXIT_ERROR
        }
    }
}
