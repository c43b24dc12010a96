//! A VM's screen as an image: what libvirt's screenshot stream brings
//! (PPM from older QEMU, PNG from newer) decoded to 8-bit RGB and written
//! as PNG.
//!
//! Pure: no I/O. The backend hands the stream's bytes and MIME type to
//! [`Image::decode`]; the engine and test steps take it from there. Every
//! input, however broken, is an error value, never a panic, and sizes are
//! bounded before anything is allocated.

mod ppm;

use std::collections::HashSet;

/// The largest side accepted, in pixels: far above any virtual screen
/// (QEMU's largest modes are 16384 wide only with special set-ups), and
/// small enough that width x height x 3 fits in memory.
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels accepted (8K x 8K): bounds every allocation below.
pub const MAX_PIXELS: u64 = 8_192 * 8_192;

/// A screen image: `width` x `height` pixels, 3 bytes (R, G, B) each, rows
/// top to bottom.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}x{})", self.width, self.height)
    }
}

/// Why bytes are not an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// Neither PPM nor PNG, by MIME type or by the first bytes.
    #[error("the screenshot is in a format benchscale does not read ({0})")]
    Format(String),
    /// A PPM or PNG that cannot be read: cut short, a bad header, sizes
    /// out of bounds.
    #[error("the screenshot cannot be read: {0}")]
    Corrupt(String),
    /// PNG encoding failed.
    #[error("the screenshot cannot be written as PNG: {0}")]
    Encode(String),
}

/// Checks a size against the bounds; the number of RGB bytes it needs.
fn rgb_len(width: u32, height: u32) -> Result<usize, ScreenError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ScreenError::Corrupt(format!(
            "{width}x{height} pixels is not a screen size (each side 1 to {MAX_SIDE})"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(ScreenError::Corrupt(format!(
            "{width}x{height} pixels is more than the {MAX_PIXELS} accepted"
        )));
    }
    usize::try_from(pixels * 3).map_err(|_| ScreenError::Corrupt("too large".into()))
}

impl Image {
    /// An image from its RGB bytes.
    ///
    /// # Errors
    ///
    /// The size is out of bounds or `rgb` is not `width * height * 3` long.
    pub fn from_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Result<Image, ScreenError> {
        let want = rgb_len(width, height)?;
        if rgb.len() != want {
            return Err(ScreenError::Corrupt(format!(
                "{width}x{height} pixels need {want} bytes, not {}",
                rgb.len()
            )));
        }
        Ok(Image { width, height, rgb })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, 3 bytes each, rows top to bottom.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// Decodes what a screenshot stream brought. `mime` is the type
    /// libvirt names (`image/x-portable-pixmap`, `image/png`); when it
    /// names neither, the first bytes decide.
    ///
    /// # Errors
    ///
    /// Neither format, or a file that cannot be read.
    pub fn decode(mime: &str, bytes: &[u8]) -> Result<Image, ScreenError> {
        // The bytes say best what they are; the type names what a broken
        // file was meant to be, for its error.
        let mime = mime.trim().to_ascii_lowercase();
        if bytes.starts_with(PNG_MAGIC) {
            Image::from_png(bytes)
        } else if bytes.starts_with(b"P6") || bytes.starts_with(b"P3") {
            ppm::decode(bytes)
        } else if mime == "image/png" {
            Image::from_png(bytes)
        } else if mime.contains("portable-pixmap") || mime.contains("ppm") {
            ppm::decode(bytes)
        } else {
            Err(ScreenError::Format(if mime.is_empty() {
                "no type given".into()
            } else {
                mime
            }))
        }
    }

    /// Reads a PNG of any colour type and depth, as 8-bit RGB.
    ///
    /// # Errors
    ///
    /// It is not a PNG, or is cut short or out of bounds.
    pub fn from_png(bytes: &[u8]) -> Result<Image, ScreenError> {
        let corrupt = |e: png::DecodingError| ScreenError::Corrupt(e.to_string());
        let limits = png::Limits {
            bytes: usize::try_from(MAX_PIXELS * 8).unwrap_or(usize::MAX),
        };
        let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().map_err(corrupt)?;
        let (width, height) = {
            let info = reader.info();
            (info.width, info.height)
        };
        rgb_len(width, height)?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| ScreenError::Corrupt("too large".into()))?;
        let mut buf = vec![0; size];
        let out = reader.next_frame(&mut buf).map_err(corrupt)?;
        let channels = match out.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Indexed => {
                return Err(ScreenError::Corrupt(
                    "an indexed PNG was not expanded".into(),
                ));
            }
        };
        let mut rgb = Vec::with_capacity(rgb_len(out.width, out.height)?);
        for row in buf.chunks(out.line_size).take(out.height as usize) {
            for px in row.chunks_exact(channels).take(out.width as usize) {
                match channels {
                    1 | 2 => rgb.extend_from_slice(&[px[0], px[0], px[0]]),
                    _ => rgb.extend_from_slice(&px[..3]),
                }
            }
        }
        Image::from_rgb(out.width, out.height, rgb)
    }

    /// The image as a PNG file (8-bit RGB).
    ///
    /// # Errors
    ///
    /// The encoder fails (it does not for a valid image; kept as a value
    /// rather than trusted).
    pub fn to_png(&self) -> Result<Vec<u8>, ScreenError> {
        let encode = |e: png::EncodingError| ScreenError::Encode(e.to_string());
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().map_err(encode)?;
        writer.write_image_data(&self.rgb).map_err(encode)?;
        writer.finish().map_err(encode)?;
        Ok(out)
    }

    /// How many colours the image has, counting up to `limit`: a screen of
    /// one colour (1) shows nothing.
    pub fn colours(&self, limit: usize) -> usize {
        let mut seen = HashSet::new();
        for px in self.rgb.chunks_exact(3) {
            seen.insert([px[0], px[1], px[2]]);
            if seen.len() >= limit {
                break;
            }
        }
        seen.len()
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

#[cfg(test)]
mod tests;
