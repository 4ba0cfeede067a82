//! One report page: Markdown → HTML with comrak (GitHub-flavoured tables, strikethrough,
//! footnotes, heading anchors), raw HTML escaped, and every link checked against the reports
//! tree: links to reports become links to their pages, linked files (charts, logs) are copied,
//! and anything the site could not serve offline (external URLs, missing files, paths outside
//! the reports directory) is turned into plain text.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use comrak::nodes::{AstNode, NodeValue};
use comrak::{format_html, parse_document, Arena, Options};

use super::links::{
    dir_of, html_rel, is_external, is_markdown, percent_decode, relative_url, resolve, split_suffix,
};

/// Files a directory link opens, in order of preference.
const DIR_PAGES: &[&str] = &["report.md", "README.md", "index.md"];

/// What the pages of a site can link to.
pub struct SiteMap<'a> {
    /// The reports directory (the site's source root).
    pub root: &'a Path,
    /// Every published report, root-relative.
    pub pages: &'a BTreeSet<PathBuf>,
}

/// A rendered page body and what it needs beside it.
#[derive(Debug, Default)]
pub struct PageBody {
    pub html: String,
    /// The text of the first heading.
    pub title: Option<String>,
    /// Root-relative files the page links to, to copy into the site.
    pub files: BTreeSet<PathBuf>,
    /// Links that were turned into text, and why.
    pub warnings: Vec<String>,
}

enum Resolution {
    Keep,
    Rewrite(String),
    Copy(PathBuf),
    /// Shown as text; `show_url` appends the URL (external links keep their information).
    Unlink {
        show_url: bool,
        why: Option<&'static str>,
    },
}

fn classify(site: &SiteMap<'_>, page: &Path, url: &str) -> Resolution {
    if url.is_empty() || url.starts_with('#') {
        return Resolution::Keep;
    }
    if is_external(url) {
        return Resolution::Unlink {
            show_url: true,
            why: None,
        };
    }
    let (path, suffix) = split_suffix(url);
    if path.is_empty() {
        return Resolution::Keep;
    }
    let unlink = |why| Resolution::Unlink {
        show_url: false,
        why: Some(why),
    };
    let Some(decoded) = percent_decode(path) else {
        return unlink("malformed URL");
    };
    let from = dir_of(page);
    let Some(target) = resolve(from, &decoded) else {
        return unlink("points outside the reports directory");
    };
    let page_url =
        |md: &Path| Resolution::Rewrite(format!("{}{suffix}", relative_url(from, &html_rel(md))));
    if site.pages.contains(&target) {
        return page_url(&target);
    }
    let abs = site.root.join(&target);
    match std::fs::metadata(&abs) {
        Ok(m) if m.is_dir() => DIR_PAGES
            .iter()
            .map(|name| target.join(name))
            .find(|p| site.pages.contains(p))
            .map_or_else(|| unlink("a directory without a report"), |p| page_url(&p)),
        Ok(m) if m.is_file() && is_markdown(&target) => unlink("a report that is not published"),
        Ok(m) if m.is_file() => Resolution::Copy(target),
        Ok(_) => unlink("not a regular file"),
        Err(_) => unlink("missing"),
    }
}

/// Replaces a link or image by its content (the text or the alt text), plus the URL as text.
fn unwrap<'a>(arena: &'a Arena<'a>, node: &'a AstNode<'a>, url_text: Option<String>) {
    while let Some(child) = node.first_child() {
        child.detach();
        node.insert_before(child);
    }
    if let Some(t) = url_text {
        let text: &'a AstNode<'a> = arena.alloc(NodeValue::Text(t.into()).into());
        node.insert_before(text);
    }
    node.detach();
}

fn text_of<'a>(node: &'a AstNode<'a>) -> String {
    let mut s = String::new();
    for d in node.descendants() {
        match &d.data.borrow().value {
            NodeValue::Text(t) => s.push_str(t),
            NodeValue::Code(c) => s.push_str(&c.literal),
            NodeValue::SoftBreak | NodeValue::LineBreak => s.push(' '),
            _ => {}
        }
    }
    s.trim().to_string()
}

pub fn options() -> Options<'static> {
    let mut o = Options::default();
    o.extension.table = true;
    o.extension.strikethrough = true;
    o.extension.tasklist = true;
    o.extension.footnotes = true;
    // Bare URLs stay text: the site links nowhere outside itself.
    o.extension.autolink = false;
    // Anchors on headings, so `#section` links and cross-report `page.md#section` work.
    o.extension.header_id_prefix = Some(String::new());
    // Raw HTML in a report (or in trace text a template copied into it) is shown escaped,
    // never passed through.
    o.render.r#unsafe = false;
    o.render.escape = true;
    o
}

/// Renders the Markdown of the report at root-relative `page`.
pub fn render(site: &SiteMap<'_>, page: &Path, markdown: &str) -> PageBody {
    let arena = Arena::new();
    let opts = options();
    let root = parse_document(&arena, markdown, &opts);
    let mut body = PageBody::default();
    let nodes: Vec<&AstNode<'_>> = root.descendants().collect();
    for node in nodes {
        let (url, is_image) = match &node.data.borrow().value {
            NodeValue::Link(l) => (l.url.clone(), false),
            NodeValue::Image(l) => (l.url.clone(), true),
            NodeValue::Heading(_) if body.title.is_none() => {
                body.title = Some(text_of(node)).filter(|t| !t.is_empty());
                continue;
            }
            _ => continue,
        };
        match classify(site, page, &url) {
            Resolution::Keep => {}
            Resolution::Rewrite(new) => match &mut node.data.borrow_mut().value {
                NodeValue::Link(l) | NodeValue::Image(l) => l.url = new,
                _ => unreachable!("only links and images are classified"),
            },
            Resolution::Copy(file) => {
                body.files.insert(file);
            }
            Resolution::Unlink { show_url, why } => {
                if let Some(why) = why {
                    body.warnings.push(format!(
                        "{}: link `{url}` shown as text ({why})",
                        page.display()
                    ));
                } else if is_image {
                    body.warnings.push(format!(
                        "{}: external image `{url}` not embedded (the site works offline)",
                        page.display()
                    ));
                }
                unwrap(&arena, node, show_url.then(|| format!(" ({url})")));
            }
        }
    }
    let mut html = String::new();
    // Writing into a String cannot fail.
    let _ = format_html(root, &opts, &mut html);
    body.html = html;
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_with(pages: &[&str], files: &[&str]) -> (tempfile::TempDir, BTreeSet<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        for f in pages.iter().chain(files) {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let set = pages.iter().map(PathBuf::from).collect();
        (dir, set)
    }

    #[test]
    fn links_are_rewritten_copied_or_unlinked() {
        let (dir, pages) = site_with(
            &["run/README.md", "run/b3_81/report.md"],
            &["run/b3_81/report_vram.png", "run/b3_81/run.log"],
        );
        let site = SiteMap {
            root: dir.path(),
            pages: &pages,
        };
        let md = "# Run <b>1</b>\n\n[sweep](b3_81/report.md#results) [dir](b3_81/) \
                  [log](b3_81/run.log) ![vram](b3_81/report_vram.png) \
                  [gone](b3_81/missing.md) [web](https://example.com/x) \
                  ![remote](https://example.com/a.png) [js](javascript:alert(1)) \
                  [up](../../etc/passwd) [top](#objective)\n\n<script>alert(1)</script>\n";
        let b = render(&site, Path::new("run/README.md"), md);
        let h = &b.html;
        assert!(h.contains("href=\"b3_81/report.html#results\""), "{h}");
        assert_eq!(h.matches("href=\"b3_81/report.html").count(), 2, "{h}");
        assert!(h.contains("href=\"b3_81/run.log\""), "{h}");
        assert!(h.contains("src=\"b3_81/report_vram.png\""), "{h}");
        assert!(h.contains("href=\"#objective\""), "{h}");
        for bad in [
            "missing.md",
            "href=\"https",
            "src=\"https",
            "href=\"javascript",
            "passwd\"",
        ] {
            assert!(!h.contains(bad), "{bad} in {h}");
        }
        // External links keep their URL as text; raw HTML is shown, never passed through.
        assert!(h.contains("web (https://example.com/x)"), "{h}");
        assert!(
            !h.contains("<script") && h.contains("&lt;script&gt;"),
            "{h}"
        );
        assert!(!h.contains("<b>"), "{h}");
        assert_eq!(b.title.as_deref(), Some("Run 1"));
        let files: Vec<_> = b
            .files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["run/b3_81/report_vram.png", "run/b3_81/run.log"]);
        assert_eq!(b.warnings.len(), 3, "{:?}", b.warnings);
    }

    #[test]
    fn gfm_tables_render() {
        let (dir, pages) = site_with(&["r.md"], &[]);
        let site = SiteMap {
            root: dir.path(),
            pages: &pages,
        };
        let b = render(
            &site,
            Path::new("r.md"),
            "| Batch | Max \\|Δ\\| |\n|---|---|\n| 1 | 0 |\n",
        );
        assert!(
            b.html.contains("<table>") && b.html.contains(">Max |Δ|</th>"),
            "{}",
            b.html
        );
    }
}
