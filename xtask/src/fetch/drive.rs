//! Google Drive downloads: large files first answer with an HTML page asking to confirm.

use std::io::Read;

use anyhow::{Context, Result, bail};
use regex::Regex;

/// The URL that serves a Drive file's bytes: `url` itself, or, when Drive answers with its
/// large-file confirmation page, the link that page leads to.
pub fn file_url(agent: &ureq::Agent, url: &str) -> Result<String> {
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
    if !is_html {
        return Ok(url.to_string());
    }
    let mut page = String::new();
    response
        .into_body()
        .into_reader()
        .take(4 << 20)
        .read_to_string(&mut page)?;
    confirm_url(&page, url).with_context(|| {
        format!("{url} sent a web page without a download link (is the file shared publicly?)")
    })
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
