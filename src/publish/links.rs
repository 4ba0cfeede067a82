//! Paths and URLs of the site: where a report's page goes, and how a link in a report maps to a
//! file of the site. Every path here is relative to the reports root (= the site root), with
//! `/` separators in URLs, and never leaves the root.

use std::path::{Component, Path, PathBuf};

/// The page of a Markdown report: `a/b/report.md` → `a/b/report.html`. A top-level `index.md`
/// becomes `index.md.html` because `index.html` is the site's own index.
pub fn html_rel(md_rel: &Path) -> PathBuf {
    if md_rel == Path::new("index.md") {
        return PathBuf::from("index.md.html");
    }
    md_rel.with_extension("html")
}

/// `true` for the file names `publish` reads as reports.
pub fn is_markdown(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md"))
}

/// A URL the site must not point to: any scheme (`https:`, `mailto:`, `javascript:`, `data:`),
/// protocol-relative (`//host`) or absolute (`/path`, `\path`) ones.
pub fn is_external(url: &str) -> bool {
    if url.starts_with('/') || url.starts_with('\\') {
        return true;
    }
    // RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" — before any / ? #.
    match url.find(':') {
        Some(i) => {
            let scheme = &url[..i];
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// `(path, suffix)` where the suffix is the query and fragment (`?…`, `#…`), kept as written.
pub fn split_suffix(url: &str) -> (&str, &str) {
    match url.find(['?', '#']) {
        Some(i) => url.split_at(i),
        None => (url, ""),
    }
}

/// `%XX` decoding of a URL path; `None` when the bytes are not UTF-8 or an escape is malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A root-relative path as a URL path: `/` separators, everything but unreserved characters
/// percent-encoded.
pub fn percent_encode(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .map(|c| {
            let s = c.as_os_str().to_string_lossy();
            let mut out = String::with_capacity(s.len());
            for byte in s.bytes() {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            out
        })
        .collect();
    parts.join("/")
}

/// `dir` (root-relative) joined with a relative URL path, `.` and `..` resolved; `None` when the
/// result would leave the root.
pub fn resolve(dir: &Path, rel: &str) -> Option<PathBuf> {
    let mut out: Vec<String> = dir
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for part in rel.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p.to_string()),
        }
    }
    Some(out.iter().collect())
}

/// The URL from a page in `from_dir` to the root-relative `to`: `../b/report.html`.
pub fn relative_url(from_dir: &Path, to: &Path) -> String {
    let from: Vec<_> = from_dir.components().collect();
    let target: Vec<_> = to.components().collect();
    let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let ups = "../".repeat(from.len() - common);
    let rest: PathBuf = target[common..].iter().collect();
    format!("{ups}{}", percent_encode(&rest))
}

/// The directory part of a root-relative file path (`""` for a file at the root).
pub fn dir_of(rel: &Path) -> &Path {
    rel.parent().unwrap_or(Path::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls_are_recognised() {
        for u in [
            "https://example.com",
            "http://x",
            "mailto:a@b",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:image/png;base64,xx",
            "//cdn.example.com/x.js",
            "/etc/passwd",
            "\\\\server\\share",
        ] {
            assert!(is_external(u), "{u}");
        }
        for u in [
            "report.png",
            "../b3_81/report.md",
            "a:b/c",
            "#top",
            "x.md#a:b",
            "a b.png",
        ] {
            // "a:b/c" has a scheme-like prefix but "a" is a valid scheme: it is external too.
            assert_eq!(is_external(u), u == "a:b/c", "{u}");
        }
    }

    #[test]
    fn paths_resolve_inside_the_root_only() {
        let d = Path::new("run/b3_81");
        assert_eq!(resolve(d, "x.png"), Some(PathBuf::from("run/b3_81/x.png")));
        assert_eq!(
            resolve(d, "../b3_77/./report.md"),
            Some(PathBuf::from("run/b3_77/report.md"))
        );
        assert_eq!(resolve(d, "../../top.md"), Some(PathBuf::from("top.md")));
        assert_eq!(resolve(d, "../../../outside.md"), None);
    }

    #[test]
    fn urls_between_pages_are_relative_and_encoded() {
        assert_eq!(
            relative_url(Path::new("a/b"), Path::new("a/c/report.html")),
            "../c/report.html"
        );
        assert_eq!(
            relative_url(Path::new(""), Path::new("a/x y.png")),
            "a/x%20y.png"
        );
        assert_eq!(
            relative_url(Path::new("a/b"), Path::new("index.html")),
            "../../index.html"
        );
        assert_eq!(
            percent_decode("x%20y%2Fz.png").as_deref(),
            Some("x y/z.png")
        );
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(split_suffix("r.md#sec?x"), ("r.md", "#sec?x"));
        assert_eq!(
            html_rel(Path::new("index.md")),
            PathBuf::from("index.md.html")
        );
        assert_eq!(
            html_rel(Path::new("a/index.md")),
            PathBuf::from("a/index.html")
        );
    }
}
