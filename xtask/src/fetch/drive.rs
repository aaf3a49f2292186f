//! Google Drive downloads: large files first answer with an HTML page asking to confirm.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use regex::Regex;

use super::{Checksum, download};

/// Downloads a Drive file, following the large-file confirmation page when Drive sends one.
pub fn fetch(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    checksum: Option<&Checksum>,
) -> Result<()> {
    if dest.exists() {
        if let Some(c) = checksum {
            c.verify(dest, &dest.display().to_string())?;
        }
        return Ok(());
    }
    println!("downloading {url}");
    let response = agent
        .get(url)
        .call()
        .with_context(|| format!("cannot download {url}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        bail!("{url} answered HTTP {status}");
    }
    let is_html = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let file_url = if is_html {
        let mut page = String::new();
        response
            .into_body()
            .into_reader()
            .take(4 << 20)
            .read_to_string(&mut page)?;
        confirm_url(&page, url).with_context(|| {
            format!("{url} sent a web page without a download link (is the file shared publicly?)")
        })?
    } else {
        url.to_string()
    };
    let sha256 = download(agent, &file_url, dest, checksum)?;
    if checksum.is_none() {
        println!("  sha256 {sha256} (pass --sha256 to verify next time)");
    }
    Ok(())
}

/// The download URL in Drive's confirmation page: its form (action plus hidden inputs), or a
/// link carrying a `confirm` token.
fn confirm_url(page: &str, page_url: &str) -> Option<String> {
    let unescape = |s: &str| s.replace("&amp;", "&");
    let form =
        Regex::new(r#"(?s)<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>"#)
            .ok()?;
    if let Some(captures) = form.captures(page) {
        let input = Regex::new(r#"<input[^>]*name="([^"]+)"[^>]*value="([^"]*)""#).ok()?;
        let query: Vec<String> = input
            .captures_iter(&captures[2])
            .map(|c| format!("{}={}", &c[1], unescape(&c[2])))
            .collect();
        return Some(format!("{}?{}", unescape(&captures[1]), query.join("&")));
    }
    let link = Regex::new(r#"href="([^"]*confirm=[^"]+)""#).ok()?;
    let href = unescape(&link.captures(page)?[1]);
    if href.starts_with("http") {
        return Some(href);
    }
    let origin_end = page_url.find("://").map(|i| i + 3)?;
    let host_end = page_url[origin_end..]
        .find('/')
        .map_or(page_url.len(), |i| origin_end + i);
    Some(format!("{}{href}", &page_url[..host_end]))
}
