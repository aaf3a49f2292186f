//! Image folders: order, conversions, formats and bad input, on real CIFAR-10 photos.

mod common;

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use ddpm_dataset::{Channels, DatasetError, ImageFolderOptions, list_images, load_image_folder};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba};

fn options(image_size: usize, channels: Channels) -> ImageFolderOptions {
    ImageFolderOptions {
        image_size,
        channels,
        strict: false,
    }
}

fn real_photos(dir: &Path, count: usize) -> Vec<RgbImage> {
    common::cifar_jpegs(dir, &["cat"], count)
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect()
}

#[test]
fn files_load_in_natural_order_recursively() {
    let source = tempfile::tempdir().unwrap();
    let photos = real_photos(source.path(), 4);
    let dir = tempfile::tempdir().unwrap();
    // Names that sort differently as text and as numbers, in nested folders.
    let names = ["12.png", "2.png", "sub/1.png", "sub/10.png"];
    for (photo, name) in photos.iter().zip(names) {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        photo.save(&path).unwrap();
    }
    std::fs::write(dir.path().join("labels.csv"), "not an image").unwrap();

    let listed: Vec<String> = list_images(dir.path())
        .unwrap()
        .iter()
        .map(|p| {
            p.strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(listed, ["2.png", "12.png", "sub/1.png", "sub/10.png"]);

    let (store, report) = load_image_folder(dir.path(), &options(32, Channels::Rgb)).unwrap();
    assert_eq!(store.len(), 4);
    assert!(report.skipped.is_empty());
    // Lossless PNGs of 32x32 photos come back pixel for pixel, in the listed order.
    assert_eq!(store.image(0).unwrap(), photos[1].as_raw().as_slice());
    assert_eq!(store.image(1).unwrap(), photos[0].as_raw().as_slice());
    assert_eq!(store.image(3).unwrap(), photos[3].as_raw().as_slice());
    assert_eq!(store.get(2).unwrap().pixels, photos[2].as_raw().clone());
    assert_eq!(store.bytes(), 4 * 32 * 32 * 3);
}

#[test]
fn every_supported_format_decodes() {
    let source = tempfile::tempdir().unwrap();
    let photo = DynamicImage::ImageRgb8(real_photos(source.path(), 1).remove(0));
    let dir = tempfile::tempdir().unwrap();
    let formats = [
        ("a.png", ImageFormat::Png),
        ("b.jpg", ImageFormat::Jpeg),
        ("c.bmp", ImageFormat::Bmp),
        ("d.gif", ImageFormat::Gif),
        ("e.webp", ImageFormat::WebP),
        ("f.tiff", ImageFormat::Tiff),
        ("g.JPEG", ImageFormat::Jpeg),
    ];
    for (name, format) in formats {
        photo
            .save_with_format(dir.path().join(name), format)
            .unwrap();
    }
    let (store, report) = load_image_folder(dir.path(), &options(16, Channels::Rgb)).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(store.len(), formats.len());
    // Lossless formats agree exactly with each other after the same resize.
    assert_eq!(store.image(0), store.image(2)); // png, bmp
    assert_eq!(store.image(0), store.image(4)); // png, webp (lossless)
    assert_eq!(store.image(0), store.image(5)); // png, tiff
}

#[test]
fn non_square_images_are_resized_on_the_short_side_and_centre_cropped() {
    let dir = tempfile::tempdir().unwrap();
    // 64 wide, 32 high: black, white middle half, black.
    let wide = RgbImage::from_fn(64, 32, |x, _| {
        if (16..48).contains(&x) {
            Rgb([255; 3])
        } else {
            Rgb([0; 3])
        }
    });
    wide.save(dir.path().join("wide.png")).unwrap();
    let (store, _) = load_image_folder(dir.path(), &options(16, Channels::Gray)).unwrap();
    let pixels = store.image(0).unwrap();
    assert_eq!(pixels.len(), 16 * 16);
    // Scaled to 32x16, the middle 16 columns are the white half.
    for y in 0..16 {
        for x in 1..15 {
            assert!(
                pixels[y * 16 + x] > 200,
                "({x}, {y}) = {}",
                pixels[y * 16 + x]
            );
        }
    }
}

#[test]
fn channels_alpha_and_16_bit_are_converted() {
    let dir = tempfile::tempdir().unwrap();
    let gray = ImageBuffer::from_fn(8, 8, |x, _| Luma([(x * 30) as u8]));
    DynamicImage::ImageLuma8(gray)
        .save(dir.path().join("1-gray.png"))
        .unwrap();
    let transparent =
        ImageBuffer::from_fn(8, 8, |x, _| Rgba([0, 0, 0, if x < 4 { 0 } else { 255 }]));
    DynamicImage::ImageRgba8(transparent)
        .save(dir.path().join("2-alpha.png"))
        .unwrap();
    let deep = ImageBuffer::from_fn(8, 8, |x, _| {
        Rgb([if x < 4 { 65535u16 } else { 32896 }, 0, 0])
    });
    DynamicImage::ImageRgb16(deep)
        .save(dir.path().join("3-sixteen.png"))
        .unwrap();

    let (rgb, _) = load_image_folder(dir.path(), &options(8, Channels::Rgb)).unwrap();
    let pixel = |store: &ddpm_dataset::ImageStore, image: usize, x: usize, c: usize| {
        let n = store.channels().count();
        store.image(image).unwrap()[x * n + c]
    };
    // Grayscale replicated to RGB.
    assert_eq!(
        [
            pixel(&rgb, 0, 3, 0),
            pixel(&rgb, 0, 3, 1),
            pixel(&rgb, 0, 3, 2)
        ],
        [90, 90, 90]
    );
    // Fully transparent pixels become white, opaque ones keep their colour.
    assert_eq!(pixel(&rgb, 1, 0, 0), 255);
    assert_eq!(pixel(&rgb, 1, 5, 0), 0);
    // 16-bit values are scaled, not truncated.
    assert_eq!(pixel(&rgb, 2, 0, 0), 255);
    assert_eq!(pixel(&rgb, 2, 5, 0), 128);

    let (gray, _) = load_image_folder(dir.path(), &options(8, Channels::Gray)).unwrap();
    assert_eq!(gray.channels().count(), 1);
    assert_eq!(pixel(&gray, 0, 3, 0), 90);
    assert_eq!(pixel(&gray, 1, 0, 0), 255);
}

fn folder_with_bad_files(dir: &Path) -> Vec<PathBuf> {
    let photos = common::cifar_jpegs(dir, &["dog"], 3);
    let jpeg = std::fs::read(&photos[0]).unwrap();
    let class = photos[0].parent().unwrap();
    let truncated = class.join("truncated.jpg");
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 3]).unwrap();
    // Cut late, the decoder would fill the rest in grey without an error.
    let cut_late = class.join("cut-late.jpg");
    std::fs::write(&cut_late, &jpeg[..jpeg.len() * 7 / 10]).unwrap();
    let garbage = class.join("garbage.png");
    std::fs::write(
        &garbage,
        (0..500u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let empty = class.join("empty.gif");
    std::fs::write(&empty, b"").unwrap();
    vec![truncated, cut_late, garbage, empty]
}

#[test]
fn corrupt_files_are_skipped_with_a_summary_or_fail_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let bad = folder_with_bad_files(dir.path());
    let (store, report) = load_image_folder(dir.path(), &options(32, Channels::Rgb)).unwrap();
    assert_eq!(store.len(), 3, "the three good photos remain");
    assert_eq!(report.files.len(), 7);
    let mut skipped: Vec<&PathBuf> = report.skipped.iter().map(|s| &s.path).collect();
    skipped.sort();
    let mut expected: Vec<&PathBuf> = bad.iter().collect();
    expected.sort();
    assert_eq!(skipped, expected);
    let summary = report.skipped_summary().unwrap();
    assert!(
        summary.starts_with("skipped 4 of 7 image files that could not be decoded: "),
        "{summary}"
    );
    assert!(
        report
            .skipped
            .iter()
            .take(3)
            .all(|s| summary.contains(s.path.to_str().unwrap()))
            && summary.ends_with("; and 1 more"),
        "{summary}"
    );
    assert!(
        report
            .skipped
            .iter()
            .all(|s| s.reason.contains("cannot") || s.reason.contains("cut short")),
        "{:?}",
        report.skipped
    );

    let strict = ImageFolderOptions {
        strict: true,
        ..options(32, Channels::Rgb)
    };
    let err = load_image_folder(dir.path(), &strict).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::Decode { .. }
                | DatasetError::Read { .. }
                | DatasetError::Truncated { .. }
        ),
        "{err:?}"
    );
    assert!(
        bad.iter()
            .any(|p| err.to_string().contains(p.to_str().unwrap())),
        "{err}"
    );
}

/// A JPEG cut anywhere after its header lacks the end marker of its scan; whole ones have it.
#[test]
fn jpegs_cut_short_are_told_from_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    for photo in common::cifar_jpegs(dir.path(), &["ship"], 5) {
        let jpeg = std::fs::read(&photo).unwrap();
        assert!(ddpm_dataset::jpeg_is_complete(&jpeg), "{}", photo.display());
        for cut in [400, jpeg.len() / 2, jpeg.len() * 7 / 10, jpeg.len() - 2] {
            let part = &jpeg[..cut.min(jpeg.len() - 2)];
            assert!(!ddpm_dataset::jpeg_is_complete(part), "cut at {cut}");
        }
    }
}

/// Images smaller than the training size are kept, enlarged, and counted in one line.
#[test]
fn images_smaller_than_the_training_size_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    common::cifar_jpegs(dir.path(), &["frog"], 4);
    let (store, report) = load_image_folder(dir.path(), &options(48, Channels::Rgb)).unwrap();
    assert_eq!((store.len(), report.upscaled), (4, 4));
    let line = report.upscaled_summary(48).unwrap();
    assert!(
        line.starts_with("4 of 4 images are smaller than 48x48"),
        "{line}"
    );
    let (_, report) = load_image_folder(dir.path(), &options(32, Channels::Rgb)).unwrap();
    assert_eq!((report.upscaled, report.upscaled_summary(32)), (0, None));
}

#[test]
fn folders_with_nothing_usable_are_clear_errors() {
    let missing = Path::new("/definitely/not/here");
    let err = load_image_folder(missing, &options(32, Channels::Rgb)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dataset folder /definitely/not/here does not exist"
    );

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("readme.txt"), "hello").unwrap();
    let err = load_image_folder(empty.path(), &options(32, Channels::Rgb)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(empty.path().to_str().unwrap()) && message.contains("png, jpg, jpeg"),
        "{message}"
    );

    let only_bad = tempfile::tempdir().unwrap();
    std::fs::write(only_bad.path().join("a.png"), b"not a png").unwrap();
    std::fs::write(only_bad.path().join("b.jpg"), b"").unwrap();
    let err = load_image_folder(only_bad.path(), &options(32, Channels::Rgb)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("none of its 2 image files could be decoded"),
        "{message}"
    );
    assert!(
        message.contains("a.png") && message.contains("b.jpg"),
        "{message}"
    );
}
