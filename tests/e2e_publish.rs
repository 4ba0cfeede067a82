//! Publishing and CI outputs end to end: a real tiny sweep analysed with `--junit` and
//! `$GITHUB_STEP_SUMMARY`, published with the repo's own reports into a site whose every link is
//! checked; text from traces and raw HTML in reports never reach the HTML unescaped; `--to`
//! keeps files publish does not own; bad input exits 2 without losing the other pages.

mod common;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use common::*;
use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

const B2: &str = "cpu_b2_p0_ctx128_gen16_span8_f32_invariant_flash_kv1_s0";
const EVIL: &str = "<script>alert('device')</script> & <b>GPU</b>";

fn publish(reports: &Path, to: &Path) -> std::process::Output {
    let o = tracecheck()
        .arg("publish")
        .arg("--reports")
        .arg(reports)
        .arg("--to")
        .arg(to)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

fn html_pages(site: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![site.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "html") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The values of every `name="…"` attribute, entities decoded.
fn attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    let mut out = vec![];
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').unwrap();
        out.push(decode_entities(&rest[..end]));
        rest = &rest[end..];
    }
    out
}

fn decode_entities(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Walks every href and src of every page: each is relative, stays inside the site, names a
/// file that exists, and a `#fragment` names an id of its target page.
fn check_links(site: &Path) -> usize {
    let site = site.canonicalize().unwrap();
    let mut checked = 0;
    for page in html_pages(&site) {
        let html = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(&site).unwrap().display().to_string();
        for tag in ["<link", "<script", "@import", "url(", "<iframe"] {
            assert!(!html.contains(tag), "{name}: {tag} (no external assets)");
        }
        let mut urls = attributes(&html, "href");
        urls.extend(attributes(&html, "src"));
        for url in urls {
            checked += 1;
            let scheme = url
                .split_once(':')
                .is_some_and(|(s, _)| !s.contains(['/', '#', '?']));
            assert!(
                !scheme && !url.starts_with('/') && !url.starts_with('\\') && !url.is_empty(),
                "{name}: absolute or external link `{url}`"
            );
            let (path, fragment) = match url.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (url.as_str(), None),
            };
            let path = path.split('?').next().unwrap();
            let target = if path.is_empty() {
                page.clone()
            } else {
                let mut t = page.parent().unwrap().to_path_buf();
                for c in Path::new(&percent_decode(path)).components() {
                    match c {
                        Component::ParentDir => assert!(t.pop()),
                        Component::Normal(n) => t.push(n),
                        _ => panic!("{name}: odd path `{url}`"),
                    }
                }
                t
            };
            assert!(target.starts_with(&site), "{name}: `{url}` leaves the site");
            assert!(target.is_file(), "{name}: `{url}` is broken");
            if let Some(f) = fragment {
                let text = std::fs::read_to_string(&target).unwrap();
                assert!(
                    text.contains(&format!("id=\"{f}\"")),
                    "{name}: `{url}` names no anchor"
                );
            }
        }
    }
    checked
}

fn junit(path: &Path) -> Report {
    Report::deserialize_from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn failures(r: &Report) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for case in r.test_suites.iter().flat_map(|s| &s.test_cases) {
        if let TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Failure,
            message,
            description,
            ..
        } = &case.status
        {
            out.push((
                format!(
                    "{}/{}",
                    case.classname.as_ref().unwrap().as_str(),
                    case.name.as_str()
                ),
                message.as_ref().unwrap().to_string(),
                description.as_ref().unwrap().to_string(),
            ));
        }
    }
    out
}

fn repo_reports() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reports")
}

#[test]
fn a_real_sweep_and_the_repo_reports_publish_as_a_site_without_broken_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let input = root.join("input");
    copy_dir(&repo_reports(), &input.join("repo"));

    // A clean tiny sweep, analysed with --junit and a step summary that other steps wrote to.
    let sweep = root.join("sweep");
    let o = run_sweep(&sweep, &["--mode", "b3_81", "--quick", "--model", "tiny"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let step = root.join("step_summary.md");
    std::fs::write(&step, "## An earlier step\n").unwrap();
    let junit_path = root.join("ci/junit.xml");
    let report = input.join("tiny/b3_81/report.md");
    let o = tracecheck()
        .env("GITHUB_STEP_SUMMARY", &step)
        .args(["analyze", "--mode", "b3_81", "--gate", "PASS_EQUIV"])
        .arg("--traces-dir")
        .arg(&sweep)
        .arg("--output")
        .arg(&report)
        .arg("--junit")
        .arg(&junit_path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&report.with_file_name("summary.json"));
    let cells = s["cells"].as_array().unwrap();
    let comparisons: usize = cells
        .iter()
        .map(|c| c["comparisons"].as_array().unwrap().len())
        .sum();
    let r = junit(&junit_path);
    assert_eq!(r.test_suites.len(), 1);
    let suite = &r.test_suites[0];
    let verdicts = suite
        .test_cases
        .iter()
        .filter(|c| c.name.as_str() == "verdict")
        .count();
    assert_eq!(verdicts, cells.len(), "one verdict test case per cell");
    assert_eq!(suite.tests, cells.len() + comparisons);
    assert_eq!(suite.test_cases.len(), suite.tests);
    assert_eq!((r.tests, r.failures, suite.failures), (suite.tests, 0, 0));
    assert!(suite
        .test_cases
        .iter()
        .any(|c| c.name.as_str() == "batch2_vs_batch1"
            && c.classname.as_ref().unwrap().as_str() == B2));
    let md = std::fs::read_to_string(&step).unwrap();
    assert!(md.starts_with("## An earlier step\n\n### ✅ tracecheck `b3_81` — PASS_EQUIV"));
    assert!(md.len() < 1024 * 1024);
    assert!(md.contains(&format!("| `{B2}` | PASS_EQUIV |")), "{md}");

    // One flipped bit: the JUnit file says which cell and comparisons fail, with the numbers.
    let flipped = root.join("flipped");
    copy_dir(&sweep, &flipped);
    let f = flipped.join(B2).join("logits.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    let at = tensor_offset(&bytes, "decode", (8 + 3) * 320 + 17);
    bytes[at] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    let bad_junit = root.join("bad.xml");
    let o = tracecheck()
        .args(["analyze", "--mode", "b3_81", "--gate", "PASS_EQUIV"])
        .arg("--traces-dir")
        .arg(&flipped)
        .arg("--junit")
        .arg(&bad_junit)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let fails = failures(&junit(&bad_junit));
    assert!(fails.len() >= 2, "{fails:?}");
    assert_eq!(fails[0].0, format!("{B2}/verdict"));
    assert!(fails[0].1.starts_with("FAIL_EQUIV: "), "{:?}", fails[0]);
    let cmp = &fails[1];
    assert!(cmp.0.starts_with(B2), "{cmp:?}");
    assert!(
        cmp.1.contains("max |Δ|") && cmp.1.contains("first divergent position 3"),
        "{cmp:?}"
    );
    assert!(cmp.2.contains("top-1 agreement: "), "{cmp:?}");

    // Text from a trace: a device name with markup, analysed into a report of its own.
    let evil = root.join("evil");
    copy_dir(&sweep, &evil);
    for e in std::fs::read_dir(&evil).unwrap() {
        let p = e.unwrap().path().join("run.json");
        if p.is_file() {
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            v["engine"]["device"] = EVIL.into();
            std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        }
    }
    let o = analyze(
        &evil,
        &[
            "--mode",
            "b3_81",
            "--output",
            input.join("evil/report.md").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(input.join("evil/report.md"))
        .unwrap()
        .contains("<script>"));
    // A hand-written page with raw HTML and links of every kind.
    std::fs::write(
        input.join("notes.md"),
        "# Notes\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
         See [the tiny sweep](tiny/b3_81/report.md#objective), [the repo runs](repo/2026-11-21-h200-cuda-invariant/), \
         [upstream](https://github.com/), [nothing](missing.md) and ![remote](https://example.com/x.png).\n",
    )
    .unwrap();

    let site = root.join("site");
    let o = publish(&input, &site);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("missing.md") && err.contains("example.com/x.png"),
        "{err}"
    );

    let checked = check_links(&site);
    assert!(checked > 50, "{checked} links checked");
    for page in html_pages(&site) {
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(
            !html.contains("<script") && !html.contains("<img src=x"),
            "{}",
            page.display()
        );
        assert!(!html.contains("<b>GPU"), "{}", page.display());
    }
    let evil_page = std::fs::read_to_string(site.join("evil/report.html")).unwrap();
    assert!(
        evil_page.contains("&lt;script&gt;alert"),
        "device text is shown, escaped"
    );
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains("&lt;script&gt;"),
        "the index escapes summary.json text"
    );

    // Tables with the seeds' column headers.
    let headers = |page: &str, cols: &[&str]| {
        let html = std::fs::read_to_string(site.join(page)).unwrap();
        assert!(html.contains("<table>"), "{page}");
        for c in cols {
            assert!(html.contains(&format!("<th>{c}</th>")), "{page}: {c}");
        }
    };
    let b3_81_cols = [
        "Batch",
        "Peak VRAM (MB)",
        "Prefill (s)",
        "Decode (s)",
        "Tokens/s",
        "Speedup",
        "VRAM Delta",
        "Verdict",
    ];
    headers("tiny/b3_81/report.html", &b3_81_cols);
    let run = "repo/2026-11-21-h200-cuda-invariant";
    headers(&format!("{run}/b3_81/report.html"), &b3_81_cols);
    headers(
        &format!("{run}/b3_77/report.html"),
        &[
            "Context",
            "KV",
            "Peak VRAM (MB)",
            "Max Logits Diff",
            "Top-1 Agreement",
            "Verdict",
        ],
    );
    headers(
        &format!("{run}/b3_89/report.html"),
        &[
            "Context",
            "prefill_s",
            "wall_time_s",
            "attn_impl",
            "Throughput (tok/s)",
            "Status",
        ],
    );
    // Charts and summaries beside their pages.
    for f in ["report_throughput.png", "report_vram.png", "summary.json"] {
        assert!(site.join(run).join("b3_81").join(f).is_file(), "{f}");
    }
    // The index: every sweep with its verdict and gate, linked; the other pages too.
    for sweep in [
        "tiny/b3_81",
        "evil",
        &format!("{run}/b3_81"),
        &format!("{run}/b3_77"),
        &format!("{run}/b3_89"),
        &format!("{run}/inv64"),
    ] {
        assert!(
            index.contains(&format!("href=\"{sweep}/report.html\"")),
            "{sweep} in {index}"
        );
    }
    assert!(index.contains("PASS_EQUIV passed") && index.contains("70 (PASS_EQUIV × 70)"));
    assert!(
        index.contains("href=\"notes.html\"")
            && index.contains(&format!("href=\"{run}/README.html\""))
    );
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn publish_owns_only_its_files_and_bad_input_exits_2_keeping_the_other_pages() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let site = dir.path().join("site");
    write(
        &input.join("a/report.md"),
        "# A\n\n![chart](report_x.png)\n",
    );
    write(&input.join("a/report_x.png"), "png");
    write(&input.join("b/report.md"), "# B\n");
    write(&site.join("CNAME"), "reports.example.com\n");

    let o = publish(&input, &site);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = files_under(&site);
    for f in [
        "CNAME",
        "index.html",
        "a/report.html",
        "a/report_x.png",
        "b/report.html",
    ] {
        assert!(first.contains(f), "{f}: {first:?}");
    }
    // Publishing again is idempotent; a report that went away takes its page with it.
    std::fs::remove_dir_all(input.join("b")).unwrap();
    let o = publish(&input, &site);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let second = files_under(&site);
    assert!(
        !second.contains("b/report.html") && !site.join("b").exists(),
        "{second:?}"
    );
    assert!(second.contains("CNAME") && second.contains("a/report.html"));
    assert_eq!(
        std::fs::read_to_string(site.join("CNAME")).unwrap(),
        "reports.example.com\n"
    );

    // A file publish does not own is never replaced: nothing is written.
    let other = dir.path().join("other");
    write(&other.join("a/report.html"), "mine");
    let o = publish(&input, &other);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("refusing to overwrite") && stderr(&o).contains("report.html"));
    assert_eq!(
        std::fs::read_to_string(other.join("a/report.html")).unwrap(),
        "mine"
    );
    assert!(!other.join("index.html").exists());

    // A broken summary.json: named, exit 2, every page still published.
    write(&input.join("c/report.md"), "# C\n");
    write(&input.join("c/summary.json"), "{ not json");
    let o = publish(&input, &site);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("c/summary.json"), "{}", stderr(&o));
    assert!(site.join("c/report.html").is_file() && site.join("a/report.html").is_file());
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains("not a tracecheck summary.json"), "{index}");
    check_links(&site);

    // Missing --reports, and --to = --reports.
    let o = publish(&dir.path().join("nope"), &site);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    let o = publish(&input, &input);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is the --reports directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn junit_path_that_cannot_be_written_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    // The smallest real sweep: one cell.
    let sweep = dir.path().join("s");
    let o = run_sweep(
        &sweep,
        &[
            "--mode",
            "b3_81",
            "--quick",
            "--model",
            "tiny",
            "--batches",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tracecheck()
        .env(
            "GITHUB_STEP_SUMMARY",
            dir.path().join("no/such/dir/summary.md"),
        )
        .args(["analyze", "--mode", "b3_81", "--junit"])
        .arg(blocker.join("junit.xml"))
        .arg("--traces-dir")
        .arg(&sweep)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--junit") && err.contains("file"), "{err}");
    // An unwritable step summary is only a warning.
    let o = tracecheck()
        .env(
            "GITHUB_STEP_SUMMARY",
            dir.path().join("no/such/dir/summary.md"),
        )
        .args(["analyze", "--mode", "b3_81", "--traces-dir"])
        .arg(&sweep)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: step summary"),
        "{}",
        stderr(&o)
    );
}
