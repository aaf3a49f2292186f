//! `cargo xtask fetch-data` against a loopback HTTP server serving the real MNIST files from
//! ../shared/datasets (and archives built here from real CIFAR-10 photos). Never the internet.

use std::collections::HashMap;
use std::io::Write;
use std::io::{Cursor, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

/// A loopback file server with HTTP Range support. It stops when dropped, or after two minutes
/// at most.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(files: HashMap<String, (Vec<u8>, &'static str)>) -> Server {
        Self::start_with(|_| files)
    }

    /// Like [`Server::start`], with the files made from the server's own base URL.
    fn start_with(files: impl FnOnce(&str) -> HashMap<String, (Vec<u8>, &'static str)>) -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let base = format!(
            "http://127.0.0.1:{}/",
            server.server_addr().to_ip().unwrap().port()
        );
        let files = files(&base);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !thread_stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let path = request
                    .url()
                    .trim_start_matches('/')
                    .split('?')
                    .next()
                    .unwrap()
                    .to_string();
                let range = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Range"))
                    .map(|h| h.value.as_str().to_string());
                thread_log.lock().unwrap().push(format!(
                    "{} {}",
                    request.url(),
                    range.clone().unwrap_or_default()
                ));
                let Some((body, content_type)) = files.get(&path) else {
                    let _ = request.respond(tiny_http::Response::empty(404));
                    continue;
                };
                let header = |k: &str, v: &str| tiny_http::Header::from_bytes(k, v).unwrap();
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                    .unwrap_or(0);
                let len = body.len();
                let (status, slice, mut headers) = if start > 0 {
                    let range = format!("bytes {start}-{}/{len}", len - 1);
                    (
                        206,
                        body[start..].to_vec(),
                        vec![header("Content-Range", &range)],
                    )
                } else {
                    (200, body.clone(), vec![])
                };
                headers.push(header("Content-Type", content_type));
                headers.push(header("Accept-Ranges", "bytes"));
                let announced = slice.len();
                let response = tiny_http::Response::new(
                    status.into(),
                    headers,
                    Cursor::new(slice),
                    Some(announced),
                    None,
                );
                let _ = request.respond(response);
            }
        });
        Server { base, log, stop }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// CIFAR-10's class names in label order, as the binary release numbers them.
const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn mnist_files() -> HashMap<String, (Vec<u8>, &'static str)> {
    [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    .into_iter()
    .map(|f| {
        (
            f.to_string(),
            (
                std::fs::read(shared().join("mnist").join(f)).unwrap(),
                "application/gzip",
            ),
        )
    })
    .collect()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn mnist_downloads_verified_and_loads_with_labels() {
    let server = Server::start(mnist_files());
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let run = xtask(&[
        "fetch-data",
        "mnist",
        "--mirror",
        &server.base,
        "--data-dir",
        dir,
    ]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("sha256 verified"), "{}", text(&run));

    let mnist = data.path().join("mnist");
    let labels = ddpm_dataset::read_idx_labels(&mnist.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let images = ddpm_dataset::read_idx_images(&mnist.join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((images.count, labels.len()), (10_000, 10_000));
    let mut counts = [0; 10];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(
        ddpm_dataset::read_idx_labels(&mnist.join("train-labels-idx1-ubyte.gz"))
            .unwrap()
            .len(),
        60_000
    );

    // A second run finds the data and downloads nothing.
    let requests = server.requests().len();
    let again = xtask(&[
        "fetch-data",
        "mnist",
        "--mirror",
        &server.base,
        "--data-dir",
        dir,
    ]);
    assert!(
        again.status.success() && text(&again).contains("already present"),
        "{}",
        text(&again)
    );
    assert_eq!(server.requests().len(), requests);
}

#[test]
fn a_corrupted_file_fails_its_checksum_and_leaves_no_dataset() {
    let mut files = mnist_files();
    let labels = &mut files.get_mut("t10k-labels-idx1-ubyte.gz").unwrap().0;
    let middle = labels.len() / 2;
    labels[middle] ^= 0xff;
    let server = Server::start(files);
    let data = tempfile::tempdir().unwrap();
    let run = xtask(&[
        "fetch-data",
        "mnist",
        "--mirror",
        &server.base,
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let message = text(&run);
    assert!(
        message.contains("checksum mismatch for t10k-labels-idx1-ubyte.gz"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
    assert!(
        !data.path().join("mnist").exists(),
        "no dataset may look complete"
    );
    let leftovers: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [".downloads"],
        "no half-extracted folder left behind"
    );
    assert!(
        !data
            .path()
            .join(".downloads/t10k-labels-idx1-ubyte.gz")
            .exists()
    );
}

/// A TCP proxy to `upstream` that drops its first connection after relaying `cut_after` bytes
/// of response, as a failing network would; later connections pass through. It stops after two
/// minutes at most.
fn flaky_proxy(upstream: &str, cut_after: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut first = true;
        while Instant::now() < deadline {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            client.set_nonblocking(false).unwrap();
            let server = TcpStream::connect(&upstream).unwrap();
            let limit = if first { cut_after } else { usize::MAX };
            first = false;
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
            });
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let mut relayed = 0;
                let mut buffer = [0u8; 8192];
                while relayed < limit {
                    let Ok(n) = server.read(&mut buffer) else {
                        break;
                    };
                    if n == 0 {
                        break;
                    }
                    let n = n.min(limit - relayed);
                    if client.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    relayed += n;
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    format!("http://{address}/")
}

#[test]
fn a_cut_connection_resumes_with_a_range_request() {
    let server = Server::start(mnist_files());
    let half = 9_912_422 / 2;
    // train-images is fetched first: its response is cut after about half of the file.
    let proxy = flaky_proxy(&server.base, half);
    let data = tempfile::tempdir().unwrap();
    let run = xtask(&[
        "fetch-data",
        "mnist",
        "--mirror",
        &proxy,
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let requests = server.requests();
    let resumed = requests
        .iter()
        .find(|r| r.starts_with("/train-images-idx3-ubyte.gz bytes="));
    let offset: usize = resumed
        .expect("a Range request")
        .rsplit('=')
        .next()
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    // The proxy relayed `half` bytes including headers; the client may not have read its last buffer.
    assert!(
        offset > half - 65_536 && offset < half,
        "resumed at {offset}: {requests:?}"
    );
    assert!(text(&run).contains("resuming"), "{}", text(&run));
    let images =
        ddpm_dataset::read_idx_images(&data.path().join("mnist/train-images-idx3-ubyte.gz"))
            .unwrap();
    assert_eq!(images.count, 60_000);
}

#[test]
fn no_network_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let mirror = format!("http://127.0.0.1:{port}/");
    let run = xtask(&[
        "fetch-data",
        "mnist",
        "--mirror",
        &mirror,
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let message = String::from_utf8_lossy(&run.stderr);
    assert!(
        message.contains("error: ") && message.contains("cannot download"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

/// A cifar-10-binary.tar.gz in the official layout, from real CIFAR-10 JPEGs: `per_batch`
/// records in each of the five training batches and the test batch. Returns the archive and the
/// source images (label, pixels) in record order.
fn small_cifar_archive(per_batch: usize) -> (Vec<u8>, Vec<(u8, image::RgbImage)>) {
    let file = std::fs::File::open(shared().join("cifar10-jpg.tar.gz")).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut sources = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if path.extension().is_none_or(|e| e != "jpg") || !path.starts_with("cifar10_jpg/test") {
            continue;
        }
        let class = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let label = CLASSES.iter().position(|c| *c == class).unwrap() as u8;
        if sources.iter().filter(|(l, _)| *l == label).count() > 6 * per_batch / 10 {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        sources.push((label, image::load_from_memory(&bytes).unwrap().to_rgb8()));
        if sources.len() == 6 * per_batch {
            break;
        }
    }
    assert_eq!(sources.len(), 6 * per_batch);
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (name, chunk) in names.iter().zip(sources.chunks(per_batch)) {
        let mut records = Vec::new();
        for (label, image) in chunk {
            records.push(*label);
            for channel in 0..3 {
                records.extend(image.pixels().map(|p| p.0[channel]));
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(records.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("cifar-10-batches-bin/{name}"),
                records.as_slice(),
            )
            .unwrap();
    }
    (builder.into_inner().unwrap().finish().unwrap(), sources)
}

#[test]
fn cifar10_binary_archive_becomes_class_folders_of_pngs() {
    let (archive, sources) = small_cifar_archive(3);
    let sha = hex::encode(Sha256::digest(&archive));
    let files = HashMap::from([(
        "cifar-10-binary.tar.gz".to_string(),
        (archive, "application/gzip"),
    )]);
    let server = Server::start(files);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();

    // The published md5 does not match a test archive: refused.
    let refused = xtask(&[
        "fetch-data",
        "cifar10",
        "--mirror",
        &server.base,
        "--data-dir",
        dir,
    ]);
    assert!(
        !refused.status.success() && text(&refused).contains("checksum mismatch"),
        "{}",
        text(&refused)
    );

    let run = xtask(&[
        "fetch-data",
        "cifar10",
        "--mirror",
        &server.base,
        "--sha256",
        &sha,
        "--data-dir",
        dir,
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let root = data.path().join("cifar10");
    let train = ddpm_dataset::list_images(&root.join("train")).unwrap();
    let test = ddpm_dataset::list_images(&root.join("test")).unwrap();
    assert_eq!((train.len(), test.len()), (15, 3));
    // Record 4 of the training set (second batch, first record) is the fourth source image.
    let (label, pixels) = &sources[3];
    let png = root
        .join("train")
        .join(CLASSES[*label as usize])
        .join("00003.png");
    assert_eq!(&image::open(&png).unwrap().to_rgb8(), pixels);
    let (label, pixels) = &sources[15];
    let png = root
        .join("test")
        .join(CLASSES[*label as usize])
        .join("00000.png");
    assert_eq!(&image::open(&png).unwrap().to_rgb8(), pixels);
}

#[test]
fn google_drive_confirmation_page_is_followed() {
    let (archive, _) = small_cifar_archive(1);
    let download = archive.clone();
    // Drive answers a large file with a page whose form leads to the file.
    let server = Server::start_with(move |base| {
        let page = format!(
            r#"<html><body><form id="download-form" action="{base}download" method="get">
                <input type="hidden" name="id" value="1MmH_flOgcFlJWXvAHHOvSRp1RsyILwVt">
                <input type="hidden" name="export" value="download">
                <input type="hidden" name="confirm" value="t"></form></body></html>"#
        );
        HashMap::from([
            (
                "uc".to_string(),
                (page.into_bytes(), "text/html; charset=utf-8"),
            ),
            (
                "download".to_string(),
                (download, "application/octet-stream"),
            ),
        ])
    });
    let data = tempfile::tempdir().unwrap();
    let mirror = format!("{}uc?export=download&id=", server.base);
    let run = xtask(&[
        "fetch-data",
        "seed",
        "--mirror",
        &mirror,
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let requests = server.requests();
    let confirmed = "/download?id=1MmH_flOgcFlJWXvAHHOvSRp1RsyILwVt&export=download&confirm=t";
    assert!(
        requests.iter().any(|r| r.starts_with(confirmed)),
        "{requests:?}"
    );
    let unpacked = data.path().join("seed/cifar-10-batches-bin/test_batch.bin");
    assert_eq!(std::fs::metadata(unpacked).unwrap().len(), 3073);
    assert!(
        text(&run).contains(&hex::encode(Sha256::digest(&archive))),
        "{}",
        text(&run)
    );
}

/// The FID Inception weights: the published file's name carries the first digits of its
/// SHA-256 (torch hub's check). The shared copy is the same network in other bytes, so it fails
/// that check, and passes with its own checksum given.
#[test]
fn inception_weights_are_checked_against_the_digits_in_their_name() {
    const FILE: &str = "pt_inception-2015-12-05-6726825d.pth";
    let weights = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/weights/pt_inception-2015-12-05.pth"),
    )
    .unwrap();
    let sha256 = hex::encode(Sha256::digest(&weights));
    assert!(!sha256.starts_with("6726825d"));
    let files = HashMap::from([(
        FILE.to_string(),
        (weights.clone(), "application/octet-stream"),
    )]);
    let server = Server::start(files);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let fetch = |extra: &[&str]| {
        let mut args = vec![
            "fetch-data",
            "inception",
            "--mirror",
            &server.base,
            "--data-dir",
            dir,
        ];
        args.extend_from_slice(extra);
        xtask(&args)
    };
    let refused = fetch(&[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("checksum mismatch") && text(&refused).contains("6726825d"),
        "{}",
        text(&refused)
    );
    assert!(!data.path().join("inception").exists());

    let pinned = fetch(&["--sha256", &sha256]);
    assert!(pinned.status.success(), "{}", text(&pinned));
    let fetched = std::fs::read(data.path().join("inception").join(FILE)).unwrap();
    assert!(fetched == weights, "the weights arrive byte for byte");
}
