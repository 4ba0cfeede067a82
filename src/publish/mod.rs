//! `tracecheck publish --reports DIR --to DIR`: a static HTML site from the Markdown reports,
//! for GitHub Pages or any file server, that works offline.
//!
//! - Every `*.md` under `--reports` (hidden directories and `--to` itself skipped) becomes
//!   `<to>/<same relative path>.html`, rendered by comrak with GitHub-flavoured tables
//!   ([`page`]). Raw HTML in a report is shown escaped, never passed through.
//! - Links between reports point to their pages; linked files and every PNG beside a report are
//!   copied; links the site could not serve (external URLs, missing files, paths outside
//!   `--reports`) are turned into text with a warning. Every URL of the site is relative, and
//!   it loads nothing from elsewhere (the stylesheet is inlined).
//! - `index.html` lists every sweep — a report with summary.json beside it — with its mode,
//!   model, device, date, verdict, gate and cell counts, newest first, then the other pages
//!   ([`index`]). summary.json is copied beside the sweep's page.
//! - `--to` may exist and hold other files: only files this command wrote are replaced or
//!   removed ([`output`]).
//!
//! Errors: a missing or unreadable `--reports`, a `--to` that is `--reports`, or a file in `--to`
//! that publish does not own stop before anything is written (exit 2). A single report that
//! cannot be read, or a sweep whose summary.json cannot be read, does not cost the other pages:
//! the site is written with it listed under "Not published" (or, for summary.json, listed with
//! the reason), and the command then exits 2 naming the file.

pub mod index;
pub mod links;
pub mod output;
pub mod page;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::Environment;
use thiserror::Error;
use tracecheck_engine::trace::TraceError;

use index::{read_summary, BrokenRow, IndexView, PageRow, SweepRow};
use links::{dir_of, html_rel, is_markdown, relative_url};
use output::{write_site, Content, MANIFEST};
use page::SiteMap;

const CSS: &str = include_str!("../../templates/publish/site.css");
const PAGE_TEMPLATE: &str = include_str!("../../templates/publish/page.html.j2");
const INDEX_TEMPLATE: &str = include_str!("../../templates/publish/index.html.j2");

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("--reports {}: {source}", .path.display())]
    Reports {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--reports {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("--to {} is the --reports directory: publish into another directory", .0.display())]
    SameDirectory(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", .path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "refusing to overwrite {}: it {why} (remove it or publish into another directory)",
        .path.display()
    )]
    NotOurs { path: PathBuf, why: &'static str },
    #[error("template {name}: {source:#}")]
    Template {
        name: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("{0}")]
    Write(#[source] TraceError),
}

pub struct PublishOptions {
    pub reports: PathBuf,
    pub to: PathBuf,
    /// The index page's title.
    pub title: Option<String>,
}

/// What was published. `problems` (unreadable reports or summaries) make the command exit 2
/// although the rest of the site was written.
#[derive(Debug)]
pub struct PublishOutcome {
    pub index: PathBuf,
    pub pages: usize,
    pub sweeps: usize,
    pub files: usize,
    pub removed: usize,
    pub warnings: Vec<String>,
    pub problems: Vec<String>,
}

impl PublishOutcome {
    pub fn exit_code(&self) -> i32 {
        if self.problems.is_empty() {
            0
        } else {
            2
        }
    }
}

/// The reports to publish (root-relative, sorted) and what could not be walked.
struct Sources {
    pages: BTreeSet<PathBuf>,
    problems: Vec<String>,
}

fn canonical(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

fn scan(root: &Path, to: Option<&Path>) -> Sources {
    let mut pages = BTreeSet::new();
    let mut problems = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
            let is_out = e.file_type().is_dir()
                && to.is_some_and(|t| canonical(e.path()).as_deref() == Some(t));
            !hidden && !is_out
        });
    for entry in walk {
        match entry {
            Ok(e) if e.file_type().is_file() && is_markdown(e.path()) => {
                if let Ok(rel) = e.path().strip_prefix(root) {
                    pages.insert(rel.to_path_buf());
                }
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("--reports: {e}")),
        }
    }
    Sources { pages, problems }
}

/// The PNGs in a report's directory (charts), root-relative.
fn pngs_in(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| dir.join(e.file_name()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        })
        .collect();
    out.sort();
    out
}

/// The report of a sweep directory: the one summary.json belongs to. `report.md` when it is
/// there, else the directory's only report.
fn is_sweep_report(md: &Path, pages: &BTreeSet<PathBuf>) -> bool {
    let dir = dir_of(md);
    let siblings: Vec<&PathBuf> = pages.iter().filter(|p| dir_of(p) == dir).collect();
    let report = dir.join("report.md");
    if pages.contains(&report) {
        md == report
    } else {
        siblings.len() == 1
    }
}

/// A relative URL this module built (percent-encoded: no character needs escaping but `&`
/// from a source's fragment) as a safe attribute value. Unlike minijinja's default escaping it
/// leaves `/` alone, so the HTML stays readable and greppable.
fn url_filter(url: String) -> minijinja::Value {
    let escaped = url
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;");
    minijinja::Value::from_safe_string(escaped)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_filter("url", url_filter);
    // The names end in .html.j2: minijinja escapes every value for HTML unless marked safe.
    env.add_template("page.html.j2", PAGE_TEMPLATE)
        .expect("the page template parses");
    env.add_template("index.html.j2", INDEX_TEMPLATE)
        .expect("the index template parses");
    env
}

fn render_template(
    env: &Environment<'_>,
    name: &'static str,
    ctx: minijinja::Value,
) -> Result<String, PublishError> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| PublishError::Template { name, source })
}

fn display(rel: &Path) -> String {
    rel.to_string_lossy().replace('\\', "/")
}

/// The site being built: every file, in memory or to copy, before anything is written.
struct Builder<'a> {
    site: SiteMap<'a>,
    env: Environment<'static>,
    files: BTreeMap<PathBuf, Content>,
    copies: BTreeSet<PathBuf>,
    view: IndexView,
    warnings: Vec<String>,
    problems: Vec<String>,
}

impl Builder<'_> {
    fn read(&mut self, md: &Path) -> Option<String> {
        let path = self.site.root.join(md);
        let error = match std::fs::read(&path).map(String::from_utf8) {
            Ok(Ok(text)) => return Some(text),
            Ok(Err(_)) => "not UTF-8 text".to_string(),
            Err(e) => e.to_string(),
        };
        self.problems.push(format!("{}: {error}", path.display()));
        self.view.broken.push(BrokenRow {
            path: display(md),
            error,
        });
        None
    }

    /// Lists the page on the index (as a sweep when summary.json is beside it); returns the
    /// URL of summary.json from the page.
    fn list(&mut self, md: &Path, title: &str) -> Option<String> {
        let dir = dir_of(md);
        let url = relative_url(Path::new(""), &html_rel(md));
        let summary_rel = dir.join("summary.json");
        let summary_path = self.site.root.join(&summary_rel);
        if !(is_sweep_report(md, self.site.pages) && summary_path.is_file()) {
            self.view.pages.push(PageRow {
                url,
                path: display(md),
                title: title.to_string(),
            });
            return None;
        }
        let shown = if dir.as_os_str().is_empty() {
            display(md)
        } else {
            display(dir)
        };
        match read_summary(&summary_path) {
            Ok(head) => {
                let from_index = relative_url(Path::new(""), &summary_rel);
                self.view
                    .sweeps
                    .push(SweepRow::new(url, shown, Some(from_index), &head));
                self.copies.insert(summary_rel.clone());
                Some(relative_url(dir, &summary_rel))
            }
            Err(e) => {
                self.problems.push(e.clone());
                self.view.sweeps.push(SweepRow::unreadable(url, shown, e));
                None
            }
        }
    }

    fn add_page(&mut self, md: &Path) -> Result<(), PublishError> {
        let Some(text) = self.read(md) else {
            return Ok(());
        };
        let body = page::render(&self.site, md, &text);
        self.warnings.extend(body.warnings);
        self.copies.extend(body.files);
        let dir = dir_of(md);
        self.copies.extend(pngs_in(self.site.root, dir));
        let title = body.title.unwrap_or_else(|| display(md));
        let summary_url = self.list(md, &title);
        let ctx = minijinja::context! {
            title => title,
            body => body.html,
            css => CSS,
            source => display(md),
            index_url => relative_url(dir, Path::new("index.html")),
            summary_url => summary_url,
            tool_version => env!("CARGO_PKG_VERSION"),
        };
        let html = render_template(&self.env, "page.html.j2", ctx)?;
        self.files
            .insert(html_rel(md), Content::Bytes(html.into_bytes()));
        Ok(())
    }

    /// Adds the index, and the copies that no page shadows.
    fn finish(&mut self) -> Result<(), PublishError> {
        self.view.sort();
        let index = render_template(
            &self.env,
            "index.html.j2",
            minijinja::Value::from_serialize(&self.view),
        )?;
        self.files.insert(
            PathBuf::from("index.html"),
            Content::Bytes(index.into_bytes()),
        );
        for c in std::mem::take(&mut self.copies) {
            if c == Path::new(MANIFEST) {
                continue;
            }
            if self.files.contains_key(&c) {
                self.warnings.push(format!(
                    "{}: not copied, a page of the site has that name",
                    self.site.root.join(&c).display()
                ));
                continue;
            }
            self.files
                .insert(c.clone(), Content::Copy(self.site.root.join(&c)));
        }
        Ok(())
    }
}

/// Builds the site from `opts.reports` and writes it into `opts.to`.
pub fn publish(opts: &PublishOptions) -> Result<PublishOutcome, PublishError> {
    let root = &opts.reports;
    let meta = std::fs::metadata(root).map_err(|source| PublishError::Reports {
        path: root.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(PublishError::NotADirectory(root.clone()));
    }
    let to_canonical = canonical(&opts.to);
    if to_canonical.is_some() && to_canonical == canonical(root) {
        return Err(PublishError::SameDirectory(opts.to.clone()));
    }
    let Sources { pages, problems } = scan(root, to_canonical.as_deref());
    let mut b = Builder {
        site: SiteMap {
            root,
            pages: &pages,
        },
        env: environment(),
        files: BTreeMap::new(),
        copies: BTreeSet::new(),
        view: IndexView {
            title: opts
                .title
                .clone()
                .unwrap_or_else(|| "tracecheck reports".to_string()),
            tool_version: env!("CARGO_PKG_VERSION"),
            css: CSS,
            sweeps: vec![],
            pages: vec![],
            broken: vec![],
        },
        warnings: vec![],
        problems,
    };
    for md in &pages {
        b.add_page(md)?;
    }
    b.finish()?;
    let written = write_site(&opts.to, &b.files)?;
    Ok(PublishOutcome {
        index: opts.to.join("index.html"),
        pages: b.view.sweeps.len() + b.view.pages.len(),
        sweeps: b.view.sweeps.len(),
        files: written.files,
        removed: written.removed,
        warnings: b.warnings,
        problems: b.problems,
    })
}
