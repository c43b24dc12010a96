//! The `screenshot` step: a VM's screen saved as PNG in the test's
//! artifacts folder and, with `expect: { text: REGEX }`, read by OCR.

use regex::Regex;

use super::ocr;
use super::steps::{Attempt, Lab, expectation};
use crate::backend::Backend;
use crate::topology::checks::Expect;

/// The most characters of read text a failure shows.
const SHOWN: usize = 1500;

impl<B: Backend> Lab<'_, B> {
    /// One try: the screen, saved (each try replaces the step's file, so
    /// the last one stays), then read when `expect` asks for text.
    pub(super) async fn screenshot(&mut self, node: &str, expect: &Expect) -> Attempt {
        let expected = match expect {
            Expect::Text(_) => expectation(expect),
            _ => "a screenshot".into(),
        };
        let id = match self.ids.get(node) {
            Some(id) => id.clone(),
            None => return Attempt::failed(expected, format!("node `{node}` is not running")),
        };
        let image = match self.backend.screenshot(&id).await {
            Ok(image) => image,
            Err(e) => return Attempt::failed(expected, e.to_string()),
        };
        // Encoded once: saved, and read by OCR.
        let png = match image.to_png() {
            Ok(png) => png,
            Err(e) => return Attempt::failed(expected, e.to_string()),
        };
        let saved = self.save_screen(node, &png);
        let Expect::Text(regex) = expect else {
            return match saved {
                Ok(path) => Attempt::done(format!(
                    "{}x{} screen saved to {path}",
                    image.width(),
                    image.height()
                )),
                Err(why) => Attempt::failed(expected, why),
            };
        };
        let saved = saved.unwrap_or_else(|why| format!("not saved: {why}"));
        let reading = match ocr::read(&png).await {
            Ok(reading) => reading,
            Err(why) => return Attempt::failed(expected, why),
        };
        // Checked when the file was loaded; a bad one cannot get here.
        let passed = Regex::new(regex).is_ok_and(|re| re.is_match(&reading.text));
        let text = ocr::shown(&reading.text, SHOWN);
        let output = format!(
            "{}x{} screen ({saved}), read in {:.1}s:\n{text}",
            image.width(),
            image.height(),
            reading.took.as_secs_f64()
        );
        let seen = if text.is_empty() {
            format!("no text on the screen ({saved})")
        } else {
            format!("the screen reads ({saved}):\n{text}")
        };
        Attempt::judged(passed, output, expected, seen)
    }

    /// Writes the screen's PNG to the test's artifacts folder; where it
    /// went.
    fn save_screen(&self, node: &str, png: &[u8]) -> Result<String, String> {
        let Some(dir) = &self.artifacts else {
            return Err("the test has no artifacts folder".into());
        };
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("step-{:02}-{node}.png", self.step));
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path.display().to_string())
    }
}
