//! HTTP downloads that resume, show progress and verify checksums before anything uses them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

/// Attempts per file: a dropped connection resumes from the bytes already on disk.
const ATTEMPTS: u32 = 4;

/// A published checksum to verify a download against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Lower-case hex MD5.
    Md5(String),
    /// Lower-case hex SHA-256.
    Sha256(String),
    /// The first hex digits of the SHA-256: the form torch hub puts in a weights file's name
    /// (`pt_inception-2015-12-05-6726825d.pth`) and checks.
    Sha256Prefix(String),
}

impl Checksum {
    fn name(&self) -> &'static str {
        match self {
            Self::Md5(_) => "md5",
            Self::Sha256(_) => "sha256",
            Self::Sha256Prefix(_) => "sha256 beginning",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Self::Md5(hex) | Self::Sha256(hex) | Self::Sha256Prefix(hex) => hex,
        }
    }

    /// Hashes `path` and returns the hex digest of this checksum's kind.
    pub fn compute(&self, path: &Path) -> Result<String> {
        match self {
            Self::Md5(_) => hash_file::<Md5>(path),
            Self::Sha256(_) | Self::Sha256Prefix(_) => hash_file::<Sha256>(path),
        }
    }

    /// Errors unless `path` has this checksum.
    pub fn verify(&self, path: &Path, what: &str) -> Result<()> {
        let actual = self.compute(path)?;
        let matches = match self {
            Self::Sha256Prefix(prefix) => actual.starts_with(&prefix.to_lowercase()),
            _ => actual.eq_ignore_ascii_case(self.expected()),
        };
        if !matches {
            bail!(
                "checksum mismatch for {what}: expected {} {}, got {actual}; the download is corrupt or \
                 not the published file, and was deleted",
                self.name(),
                self.expected()
            );
        }
        Ok(())
    }
}

/// Hex digest of a file.
pub fn hash_file<D: Digest>(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = D::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One HTTP client for a run: connecting and the response headers time out, so a dead network
/// fails instead of hanging. The body has no time limit (ureq's is a budget for the whole body,
/// which a large download on a slow line would exceed); an interrupted one resumes.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Downloads `url` to `dest`, verifying `checksum` if given. Bytes arrive in `<dest>.part`;
/// an interrupted transfer resumes with an HTTP Range request, here and in a later run. Only a
/// complete, verified file is renamed to `dest`. Returns the file's SHA-256.
pub fn download(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    checksum: Option<&Checksum>,
) -> Result<String> {
    let name = dest
        .file_name()
        .map_or_else(|| url.to_string(), |n| n.to_string_lossy().into_owned());
    let part = part_path(dest);
    let mut last_error = None;
    for attempt in 1..=ATTEMPTS {
        match transfer(agent, url, &part, &name) {
            Ok(()) => {
                last_error = None;
                break;
            }
            Err(Transfer::Fatal(error)) => return Err(error),
            Err(Transfer::Retry(error)) => {
                eprintln!("  {name}: {error:#} (attempt {attempt} of {ATTEMPTS}, resuming)");
                last_error = Some(error);
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
            }
        }
    }
    if let Some(error) = last_error {
        return Err(error.context(format!(
            "download of {url} failed; {} bytes are kept in {} and the next run resumes",
            part.metadata().map_or(0, |m| m.len()),
            part.display()
        )));
    }
    if let Some(checksum) = checksum {
        if let Err(error) = checksum.verify(&part, &name) {
            let _ = std::fs::remove_file(&part);
            return Err(error);
        }
        eprintln!("  {name}: {} verified", checksum.name());
    }
    let sha256 = hash_file::<Sha256>(&part)?;
    std::fs::rename(&part, dest)
        .with_context(|| format!("cannot move {} into place", part.display()))?;
    Ok(sha256)
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

enum Transfer {
    /// Worth another attempt: the connection dropped or timed out.
    Retry(anyhow::Error),
    /// Not: the server refused, or the disk failed.
    Fatal(anyhow::Error),
}

fn transfer(agent: &ureq::Agent, url: &str, part: &Path, name: &str) -> Result<(), Transfer> {
    let have = part.metadata().map_or(0, |m| m.len());
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| {
        let error = anyhow::Error::new(e).context(format!("cannot download {url}"));
        Transfer::Retry(error)
    })?;
    let status = response.status().as_u16();
    let (append, total) = match status {
        206 => (
            true,
            content_range_total(&response).or(content_length(&response).map(|n| n + have)),
        ),
        200 => (false, content_length(&response)),
        416 if have > 0 => return Ok(()), // Nothing left to send: the part file is complete.
        _ => {
            return Err(Transfer::Fatal(anyhow::anyhow!(
                "{url} answered HTTP {status}"
            )));
        }
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(|e| {
            Transfer::Fatal(
                anyhow::Error::new(e).context(format!("cannot write {}", part.display())),
            )
        })?;
    let start = if append { have } else { 0 };
    let progress = progress_bar(name, total, start);
    let mut reader = response.into_body().into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = start;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.flush();
                progress.abandon();
                return Err(Transfer::Retry(
                    anyhow::Error::new(e)
                        .context(format!("connection lost after {received} bytes")),
                ));
            }
        };
        file.write_all(&buffer[..n]).map_err(|e| {
            Transfer::Fatal(
                anyhow::Error::new(e).context(format!("cannot write {}", part.display())),
            )
        })?;
        received += n as u64;
        progress.set_position(received);
    }
    file.sync_all().map_err(|e| Transfer::Fatal(e.into()))?;
    progress.finish_and_clear();
    if let Some(total) = total
        && received < total
    {
        return Err(Transfer::Retry(anyhow::anyhow!(
            "connection closed after {received} of {total} bytes"
        )));
    }
    Ok(())
}

fn content_length(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    response
        .headers()
        .get("content-length")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The total size from `Content-Range: bytes a-b/total`.
fn content_range_total(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    value.rsplit('/').next()?.parse().ok()
}

fn progress_bar(name: &str, total: Option<u64>, position: u64) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(name.to_string());
    bar.set_position(position);
    bar
}
