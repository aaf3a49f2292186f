//! `cargo xtask fetch-data`: real datasets into `data/<name>/`, verified before use.
//!
//! Each dataset is downloaded into `data/.downloads/`, verified, then unpacked into a temporary
//! folder that is renamed to `data/<name>/` only when complete: an interrupted run never leaves a
//! half dataset that looks whole, and a second run with the data present does nothing.

mod cifar;
mod download;
mod drive;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

pub use download::{Checksum, download};

/// Arguments of `cargo xtask fetch-data`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cargo xtask fetch-data mnist\n  cargo xtask fetch-data cifar10\n  \
cargo xtask fetch-data inception   # data/inception/pt_inception-2015-12-05-6726825d.pth\n  \
cargo xtask fetch-data url --url https://example.org/pets.tar.gz --sha256 <hex> --name pets"
)]
pub struct FetchArgs {
    /// Which dataset.
    dataset: DatasetName,
    /// Folder that receives `<name>/` (default: the workspace's `data/`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Download from this base URL instead of the official one (a mirror, or a test server).
    #[arg(long)]
    mirror: Option<String>,
    /// With `url`: the file to download (a .tar.gz, .tgz, .tar or .zip archive, or one file).
    #[arg(long)]
    url: Option<String>,
    /// Expected SHA-256 of the download; replaces the published checksum of a known dataset (for
    /// a mirror that repackages it).
    #[arg(long)]
    sha256: Option<String>,
    /// With `url`: the folder name under the data folder (default: from the URL).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetName {
    /// MNIST's four IDX files (kept as IDX: the dataset crate reads them directly).
    Mnist,
    /// CIFAR-10's binary release, converted to PNGs in `train|test/<class>/<n>.png`.
    Cifar10,
    /// The seed's own dataset, published on Google Drive.
    Seed,
    /// pytorch-fid's FID Inception weights (`ddpm eval`, `ddpm stats`), from its GitHub release.
    Inception,
    /// Any URL, given with --url.
    Url,
}

const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
/// (file, published sha256): the files of the MNIST page.
const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];
const CIFAR_URL: &str = "https://www.cs.toronto.edu/~kriz/";
const CIFAR_FILE: &str = "cifar-10-binary.tar.gz";
const CIFAR_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
const INCEPTION_URL: &str =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/";
/// The file's name carries the first digits of its SHA-256, as torch hub checks them.
const INCEPTION_FILE: &str = "pt_inception-2015-12-05-6726825d.pth";
const INCEPTION_SHA256_PREFIX: &str = "6726825d";
const SEED_DRIVE_ID: &str = "1MmH_flOgcFlJWXvAHHOvSRp1RsyILwVt";
const DRIVE_URL: &str = "https://drive.google.com/uc?export=download&id=";

/// Runs `cargo xtask fetch-data`.
pub fn run(args: &FetchArgs, workspace: &Path) -> Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| workspace.join("data"));
    let name = match args.dataset {
        DatasetName::Mnist => "mnist".to_string(),
        DatasetName::Cifar10 => "cifar10".to_string(),
        DatasetName::Seed => "seed".to_string(),
        DatasetName::Inception => "inception".to_string(),
        DatasetName::Url => match (&args.url, &args.name) {
            (None, _) => bail!("`fetch-data url` needs --url"),
            (Some(_), Some(name)) => name.clone(),
            (Some(url), None) => name_from_url(url)?,
        },
    };
    let target = data_dir.join(&name);
    if target.exists() {
        println!(
            "{} is already present; nothing to do (delete it to fetch again)",
            target.display()
        );
        return Ok(());
    }
    let downloads = data_dir.join(".downloads");
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("cannot create {}", downloads.display()))?;
    let agent = download::agent();
    let sha256 = args
        .sha256
        .as_ref()
        .map(|hex| Checksum::Sha256(hex.to_lowercase()));
    let base = |official: &str| {
        let base = args.mirror.as_deref().unwrap_or(official);
        if base.ends_with('/') || base.ends_with('=') {
            base.to_string()
        } else {
            format!("{base}/")
        }
    };

    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempdir_in(&data_dir)
        .with_context(|| format!("cannot create a folder in {}", data_dir.display()))?;
    match args.dataset {
        DatasetName::Mnist => {
            let base = base(MNIST_URL);
            for (file, published) in MNIST_FILES {
                let checksum = Checksum::Sha256(published.to_string());
                let dest = downloads.join(file);
                fetch_once(&agent, &format!("{base}{file}"), &dest, Some(&checksum))?;
                std::fs::copy(&dest, staging.path().join(file))?;
            }
        }
        DatasetName::Cifar10 => {
            let url = format!("{}{CIFAR_FILE}", base(CIFAR_URL));
            let checksum = sha256
                .clone()
                .unwrap_or_else(|| Checksum::Md5(CIFAR_MD5.into()));
            let archive = downloads.join(CIFAR_FILE);
            fetch_once(&agent, &url, &archive, Some(&checksum))?;
            let count = cifar::convert_binary_archive(&archive, staging.path())?;
            println!("converted {count} CIFAR-10 images to PNG");
        }
        DatasetName::Inception => {
            let url = format!("{}{INCEPTION_FILE}", base(INCEPTION_URL));
            let checksum = sha256
                .clone()
                .unwrap_or_else(|| Checksum::Sha256Prefix(INCEPTION_SHA256_PREFIX.into()));
            let dest = downloads.join(INCEPTION_FILE);
            fetch_once(&agent, &url, &dest, Some(&checksum))?;
            std::fs::copy(&dest, staging.path().join(INCEPTION_FILE))?;
        }
        DatasetName::Seed => {
            let url = format!(
                "{}{SEED_DRIVE_ID}",
                args.mirror.as_deref().unwrap_or(DRIVE_URL)
            );
            let archive = downloads.join("seed-dataset");
            let file_url = if archive.exists() {
                url
            } else {
                drive::file_url(&agent, &url)?
            };
            fetch_once(&agent, &file_url, &archive, sha256.as_ref())?;
            unpack(&archive, staging.path())?;
        }
        DatasetName::Url => {
            let url = args.url.as_deref().expect("checked above");
            let file = url
                .rsplit('/')
                .next()
                .filter(|f| !f.is_empty())
                .unwrap_or("download");
            let dest = downloads.join(file);
            fetch_once(&agent, url, &dest, sha256.as_ref())?;
            unpack(&dest, staging.path())?;
        }
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &target)
        .with_context(|| format!("cannot move {} to {}", staged.display(), target.display()))?;
    println!("{name} is ready in {}", target.display());
    Ok(())
}

/// Downloads unless a verified copy is already in the downloads folder; prints the SHA-256 of
/// unverified downloads so a user can pin it with --sha256.
fn fetch_once(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    checksum: Option<&Checksum>,
) -> Result<()> {
    if dest.exists() {
        match checksum {
            Some(c) if c.verify(dest, &dest.display().to_string()).is_ok() => return Ok(()),
            None => return Ok(()),
            Some(_) => std::fs::remove_file(dest)?,
        }
    }
    println!("downloading {url}");
    let sha256 = download(agent, url, dest, checksum)?;
    if checksum.is_none() {
        println!("  no checksum given; its sha256 is {sha256} (pass --sha256 to verify next time)");
    }
    Ok(())
}

/// Unpacks a .tar.gz, .tar or .zip archive into `dir`; any other file is copied in as is.
fn unpack(file: &Path, dir: &Path) -> Result<()> {
    let mut magic = [0u8; 262];
    let n = std::io::Read::read(&mut std::fs::File::open(file)?, &mut magic)?;
    let magic = &magic[..n];
    let opened =
        || std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()));
    if magic.starts_with(&[0x1f, 0x8b]) {
        tar::Archive::new(flate2::read::GzDecoder::new(opened()?))
            .unpack(dir)
            .with_context(|| format!("cannot unpack {} (tar.gz)", file.display()))
    } else if magic.starts_with(b"PK\x03\x04") {
        zip::ZipArchive::new(opened()?)
            .and_then(|mut archive| archive.extract(dir))
            .with_context(|| format!("cannot unpack {} (zip)", file.display()))
    } else if magic.len() > 262 - 5 && &magic[257..262] == b"ustar" {
        tar::Archive::new(opened()?)
            .unpack(dir)
            .with_context(|| format!("cannot unpack {} (tar)", file.display()))
    } else {
        let name = file.file_name().unwrap_or_default();
        std::fs::copy(file, dir.join(name))
            .map(drop)
            .context("cannot copy the download")
    }
}

fn name_from_url(url: &str) -> Result<String> {
    let file = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .next()
        .unwrap_or("");
    let stem = file
        .trim_end_matches(".gz")
        .trim_end_matches(".tgz")
        .trim_end_matches(".tar")
        .trim_end_matches(".zip");
    if stem.is_empty() {
        bail!("cannot name a dataset after {url}; pass --name");
    }
    Ok(stem.to_string())
}
