//! The pictures a card carries: an `images` row, found by id as an import keeps it, and its
//! file `files/images/<filename>` (where Lumiverse's import restores it and its exporter
//! reads it), read under a cap; and a picture made a PNG as Lumiverse's exporter makes it
//! one (the format read from the bytes, not the name; no EXIF rotation; a GIF's first
//! frame). Only PNG, JPEG, WebP and GIF are read; anything else is `unsupported_image`.

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};

use image::{ImageFormat, ImageReader};

use super::source::scan_table;
use super::stored::{StoredRow, IMAGES};
use crate::archive::Archive;
use crate::error::{FormatError, Result};

/// The largest picture file a card reads.
pub const MAX_PICTURE_BYTES: u64 = 64 << 20;

/// The most memory decoding one picture may take (an 8192 × 8192 RGBA picture).
const MAX_DECODED_BYTES: u64 = 256 << 20;

/// The `images` rows with these ids that an import keeps (the first storable row of each).
pub(crate) fn read_image_rows<R: Read + Seek>(
    archive: &mut Archive<R>,
    ids: &[&str],
) -> Result<HashMap<String, StoredRow>> {
    let mut rows: HashMap<String, StoredRow> = HashMap::new();
    if ids.is_empty() {
        return Ok(rows);
    }
    let mut wanted: Vec<&str> = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    scan_table(archive, &IMAGES, &wanted, |id, row| {
        if let (Some(id), Ok(row)) = (id, row) {
            if wanted.binary_search(&id).is_ok() {
                rows.entry(id.to_string()).or_insert(row);
            }
        }
        Ok(rows.len() < wanted.len())
    })?;
    Ok(rows)
}

/// The bytes of an image row's file, or `None` when the archive does not hold it.
pub(crate) fn read_picture<R: Read + Seek>(archive: &mut Archive<R>, row: &StoredRow) -> Result<Option<Vec<u8>>> {
    let Some(filename) = row.text("filename") else { return Ok(None) };
    let name = format!("files/images/{filename}");
    let Some(index) = archive.index_of(&name) else { return Ok(None) };
    let size = archive.entries()[index].uncompressed_size;
    if size > MAX_PICTURE_BYTES {
        return Err(FormatError::TooLarge { what: name, limit: MAX_PICTURE_BYTES, actual: size });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    archive.open_entry(index)?.read_to_end(&mut bytes).map_err(FormatError::from_io)?;
    Ok(Some(bytes))
}

/// The format of a picture, from its first bytes: PNG, JPEG, WebP or GIF.
fn sniff(bytes: &[u8]) -> Result<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(format @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif)) => Ok(format),
        Ok(other) => Err(FormatError::UnsupportedImage { detail: format!("{other:?} pictures are not read") }),
        Err(_) => Err(FormatError::UnsupportedImage { detail: "not a PNG, JPEG, WebP or GIF picture".into() }),
    }
}

/// A picture as a PNG: a PNG as it is; a JPEG, WebP or GIF (its first frame) decoded and
/// written as a PNG of its own colour type.
pub(crate) fn as_png(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let format = sniff(&bytes)?;
    if format == ImageFormat::Png {
        return Ok(bytes);
    }
    let unsupported = |error: image::ImageError| FormatError::UnsupportedImage { detail: error.to_string() };
    let mut reader = ImageReader::with_format(Cursor::new(bytes.as_slice()), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let picture = reader.decode().map_err(unsupported)?;
    let mut out = Vec::new();
    picture.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out)).map_err(unsupported)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pixels(png: &[u8]) -> image::RgbaImage {
        image::load_from_memory_with_format(png, ImageFormat::Png).unwrap().to_rgba8()
    }

    fn encoded(format: ImageFormat) -> (image::RgbaImage, Vec<u8>) {
        let picture = image::RgbaImage::from_fn(3, 2, |x, y| image::Rgba([x as u8 * 80, y as u8 * 120, 7, 255]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(picture.clone()).to_rgb8().write_to(&mut out, format).unwrap();
        (picture, out.into_inner())
    }

    #[test]
    fn a_png_stays_as_it_is() {
        let (_, png) = encoded(ImageFormat::Png);
        assert_eq!(as_png(png.clone()).unwrap(), png);
    }

    #[test]
    fn gif_and_webp_become_pngs_of_the_same_pixels() {
        for format in [ImageFormat::Gif, ImageFormat::WebP] {
            let (picture, bytes) = encoded(format);
            let png = as_png(bytes).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{format:?}");
            assert_eq!(pixels(&png), picture, "{format:?}");
        }
    }

    #[test]
    fn a_jpeg_becomes_a_png_of_its_decoded_pixels() {
        let (_, jpeg) = encoded(ImageFormat::Jpeg);
        let png = as_png(jpeg.clone()).unwrap();
        assert_eq!(pixels(&png), image::load_from_memory(&jpeg).unwrap().to_rgba8());
    }

    #[test]
    fn the_format_comes_from_the_bytes_and_others_are_refused() {
        // A BMP header: not a format a card reads.
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 60]);
        for bytes in [bmp, b"GIF89a broken".to_vec(), b"plain text".to_vec(), Vec::new(), b"<svg/>".to_vec()] {
            let error = as_png(bytes.clone()).unwrap_err();
            assert_eq!(error.code(), "unsupported_image", "{bytes:?}");
        }
    }
}
