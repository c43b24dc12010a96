use super::*;

/// A 3x2 image: red, green, blue / black, white, grey.
fn sample() -> Image {
    let rgb = vec![
        255, 0, 0, 0, 255, 0, 0, 0, 255, //
        0, 0, 0, 255, 255, 255, 128, 128, 128,
    ];
    Image::from_rgb(3, 2, rgb).unwrap()
}

fn ppm(header: &str, samples: &[u8]) -> Vec<u8> {
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(samples);
    bytes
}

#[test]
fn binary_ppm_as_qemu_writes_it_decodes() {
    let bytes = ppm("P6\n3 2\n255\n", sample().rgb());
    let image = Image::decode("image/x-portable-pixmap", &bytes).unwrap();
    assert_eq!(image, sample());
    // Comments, other white space, and no MIME type at all.
    let bytes = ppm("P6 # made by hand\n3\t2 # size\n255\r", sample().rgb());
    assert_eq!(Image::decode("", &bytes).unwrap(), sample());
}

#[test]
fn ppm_samples_other_than_8_bits_are_scaled() {
    // maxval 15: 15 is full, 8 is about half.
    let bytes = ppm("P6 1 1 15\n", &[15, 8, 0]);
    assert_eq!(Image::decode("", &bytes).unwrap().rgb(), [255, 136, 0]);
    // 16 bits, big-endian.
    let bytes = ppm("P6 1 1 65535\n", &[0xff, 0xff, 0x80, 0x00, 0, 0]);
    assert_eq!(Image::decode("", &bytes).unwrap().rgb(), [255, 128, 0]);
    // Plain PPM.
    let plain = b"P3\n1 1\n255\n1 2 3\n";
    assert_eq!(Image::decode("", plain).unwrap().rgb(), [1, 2, 3]);
}

#[test]
fn broken_ppm_is_an_error_not_a_panic() {
    let cases: &[&[u8]] = &[
        b"P6",
        b"P6\n3 2\n255\n\x00\x01",
        b"P6\n0 2\n255\n",
        b"P6\n99999999 99999999\n255\n",
        b"P6\n3 2\n0\n",
        b"P6\n3 2\n70000\n",
        b"P6\n3 2\n255",
        b"P6\nx y\n255\n",
        b"P3\n2 2\n255\n1 2 3\n",
        b"P6\n16384 16384\n255\n",
    ];
    for bytes in cases {
        let got = Image::decode("image/x-portable-pixmap", bytes);
        assert!(
            matches!(got, Err(ScreenError::Corrupt(_))),
            "{:?}: {got:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(matches!(
        Image::decode("image/jpeg", b"\xff\xd8\xff"),
        Err(ScreenError::Format(_))
    ));
}

#[test]
fn png_round_trips_and_is_read_whatever_its_colour_type() {
    let png = sample().to_png().unwrap();
    assert!(png.starts_with(PNG_MAGIC));
    assert_eq!(Image::decode("image/png", &png).unwrap(), sample());
    // The type does not matter when the bytes say PNG.
    assert_eq!(
        Image::decode("application/octet-stream", &png).unwrap(),
        sample()
    );
    // Grey with alpha, as another encoder might write it.
    let mut grey = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut grey, 2, 1);
        encoder.set_color(png::ColorType::GrayscaleAlpha);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[10, 255, 200, 0]).unwrap();
    }
    let image = Image::from_png(&grey).unwrap();
    assert_eq!(image.rgb(), [10, 10, 10, 200, 200, 200]);
    // Cut short.
    assert!(Image::decode("image/png", &png[..png.len() / 2]).is_err());
    assert!(Image::decode("image/png", b"not a png").is_err());
}

#[test]
fn colours_are_counted_up_to_a_limit() {
    assert_eq!(sample().colours(100), 6);
    assert_eq!(sample().colours(2), 2);
    let blank = Image::from_rgb(4, 4, vec![7; 48]).unwrap();
    assert_eq!(blank.colours(100), 1);
    assert!(Image::from_rgb(2, 2, vec![0; 3]).is_err());
}
