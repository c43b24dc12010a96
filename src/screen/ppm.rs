//! PPM, as QEMU's `screendump` writes it without a format (QEMU before
//! 7.1, and libvirt talking to such a QEMU): `P6`, width, height and the
//! largest sample value in ASCII, then binary samples. The plain form
//! `P3` (ASCII samples) is read too, for completeness; samples above 255
//! (two bytes each, big-endian) are scaled to 8 bits.

use super::{Image, ScreenError, rgb_len};

fn corrupt(message: impl Into<String>) -> ScreenError {
    ScreenError::Corrupt(format!("PPM: {}", message.into()))
}

/// A cursor over the header's ASCII fields.
struct Header<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Header<'_> {
    /// Skips white space and `#` comments (to the end of the line).
    fn skip_space(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            if b == b'#' {
                while self.bytes.get(self.at).is_some_and(|&c| c != b'\n') {
                    self.at += 1;
                }
            } else if b.is_ascii_whitespace() {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    /// The next decimal number, after white space.
    fn number(&mut self, what: &str) -> Result<u32, ScreenError> {
        self.skip_space();
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.at])
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| corrupt(format!("no {what} in the header")))
    }
}

/// Decodes a `P6` or `P3` file.
pub(super) fn decode(bytes: &[u8]) -> Result<Image, ScreenError> {
    let binary = match bytes.get(..2) {
        Some(b"P6") => true,
        Some(b"P3") => false,
        _ => return Err(corrupt("it does not start with P6 or P3")),
    };
    let mut header = Header { bytes, at: 2 };
    let width = header.number("width")?;
    let height = header.number("height")?;
    let max = header.number("largest sample value")?;
    if !(1..=65_535).contains(&max) {
        return Err(corrupt(format!(
            "largest sample value {max} is not 1 to 65535"
        )));
    }
    let len = rgb_len(width, height)?;
    let scale = |sample: u32| -> u8 {
        // Rounded to the nearest 8-bit value.
        u8::try_from((sample.min(max) * 255 + max / 2) / max).unwrap_or(u8::MAX)
    };
    let rgb = if binary {
        // Exactly one white space byte ends the header.
        if !bytes.get(header.at).is_some_and(u8::is_ascii_whitespace) {
            return Err(corrupt("no white space after the header"));
        }
        let data = &bytes[header.at + 1..];
        let wide = max > 255;
        let need = if wide { len * 2 } else { len };
        let data = data.get(..need).ok_or_else(|| {
            corrupt(format!(
                "{width}x{height} pixels need {need} bytes of samples, there are {}",
                data.len()
            ))
        })?;
        if wide {
            data.chunks_exact(2)
                .map(|p| scale(u32::from(u16::from_be_bytes([p[0], p[1]]))))
                .collect()
        } else if max == 255 {
            data.to_vec()
        } else {
            data.iter().map(|&s| scale(u32::from(s))).collect()
        }
    } else {
        // Each sample takes two bytes of text at least: a header that
        // claims more than the file holds allocates no more than it.
        let mut rgb = Vec::with_capacity(len.min(bytes.len() / 2));
        for _ in 0..len {
            rgb.push(scale(header.number("sample")?));
        }
        rgb
    };
    Image::from_rgb(width, height, rgb)
}
