//! MNIST's IDX files, read from the real files in ../shared/datasets/mnist.

mod common;

use std::io::Read;

use burn::data::dataset::Dataset;
use ddpm_dataset::{
    Channels, DatasetError, MnistSplit, load_mnist, read_idx_images, read_idx_labels,
};

/// The published per-digit counts of MNIST's 10,000 test labels.
const TEST_LABEL_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

#[test]
fn test_split_has_10000_labelled_28px_images() {
    let dir = common::mnist_dir();
    let images = read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (10_000, 28, 28));
    assert_eq!(images.pixels.len(), 10_000 * 28 * 28);
    let labels = read_idx_labels(&dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let mut counts = [0usize; 10];
    for label in labels {
        counts[label as usize] += 1;
    }
    assert_eq!(counts, TEST_LABEL_COUNTS);
    // Digits are white on black: the corners are background, the centre is often ink.
    let first = &images.pixels[..784];
    assert_eq!(first[0], 0);
    assert!(first.iter().filter(|&&p| p > 128).count() > 50);
}

#[test]
fn uncompressed_files_read_the_same() {
    let dir = common::mnist_dir();
    let mut raw = Vec::new();
    let gz = std::fs::File::open(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("t10k-labels-idx1-ubyte");
    std::fs::write(&plain, &raw).unwrap();
    assert_eq!(
        read_idx_labels(&plain).unwrap(),
        read_idx_labels(&dir.join("t10k-labels-idx1-ubyte.gz")).unwrap()
    );
}

#[test]
fn mnist_loads_as_a_store_at_any_size() {
    let dir = common::mnist_dir();
    let native = load_mnist(&dir, MnistSplit::Test, 28, Channels::Gray).unwrap();
    assert_eq!(
        (native.len(), native.size(), native.bytes()),
        (10_000, 28, 10_000 * 784)
    );
    let idx = read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(native.image(9_999).unwrap(), &idx.pixels[9_999 * 784..]);

    let resized = load_mnist(&dir, MnistSplit::Test, 32, Channels::Rgb).unwrap();
    assert_eq!((resized.len(), resized.size()), (10_000, 32));
    let item = resized.get(0).unwrap();
    assert_eq!(item.pixels.len(), 32 * 32 * 3);
    assert!(
        item.pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]),
        "gray replicated"
    );
}

#[test]
fn broken_idx_files_are_named_errors() {
    let dir = common::mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut raw = Vec::new();
    let gz = std::fs::File::open(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();

    let truncated = tmp.path().join("truncated-idx3");
    std::fs::write(&truncated, &raw[..raw.len() - 100]).unwrap();
    let err = read_idx_images(&truncated).unwrap_err();
    assert!(matches!(err, DatasetError::BadIdx { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("header promises 10000 images of 28x28"),
        "{err}"
    );

    let labels_as_images = dir.join("t10k-labels-idx1-ubyte.gz");
    let err = read_idx_images(&labels_as_images).unwrap_err();
    assert!(err.to_string().contains("magic 2049 is not 2051"), "{err}");

    let gz_cut = tmp.path().join("cut.gz");
    let bytes = std::fs::read(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::write(&gz_cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_idx_labels(&gz_cut).unwrap_err();
    assert!(err.to_string().contains("cut.gz"), "{err}");

    let err = load_mnist(tmp.path(), MnistSplit::Train, 28, Channels::Gray).unwrap_err();
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

/// The digits the repository ships in `data/mnist-t10k/` (the default of `ddpm train`).
#[test]
fn the_bundled_digits_are_detected_and_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-t10k");
    let source = ddpm_dataset::DataSource::detect(&dir);
    assert!(
        matches!(
            &source,
            ddpm_dataset::DataSource::Mnist {
                split: MnistSplit::Test,
                ..
            }
        ),
        "{source}"
    );
    let (store, report) = source.load(&Default::default()).unwrap();
    assert!(report.is_none());
    assert_eq!(
        (store.len(), store.size(), store.channels()),
        (10_000, 32, Channels::Rgb)
    );
    // It is the real MNIST test set, byte for byte.
    let bundled = match &source {
        ddpm_dataset::DataSource::Mnist { dir, .. } => dir.join("t10k-images-idx3-ubyte.gz"),
        _ => unreachable!(),
    };
    assert_eq!(
        std::fs::read(bundled).unwrap(),
        std::fs::read(common::mnist_dir().join("t10k-images-idx3-ubyte.gz")).unwrap()
    );
}

#[test]
fn sources_are_detected_from_the_folder() {
    use ddpm_dataset::DataSource;
    let mnist = DataSource::detect(&common::mnist_dir());
    assert!(
        matches!(
            mnist,
            DataSource::Mnist {
                split: MnistSplit::Train,
                ..
            }
        ),
        "{mnist}"
    );
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        DataSource::detect(tmp.path()),
        DataSource::Folder(tmp.path().to_path_buf())
    );
    assert!(mnist.to_string().starts_with("MNIST training split in "));
}
