//! JUnit read back with a JUnit reader (quick-junit), step summaries under GitHub's limit.

use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

use super::step_summary::{self, GITHUB_LIMIT};
use super::{checks, junit};
use crate::report::tests::fixtures::{b3_81, b3_81_failing};
use crate::summary::{Summary, Verdict};

fn parse(s: &Summary) -> Report {
    let xml = junit::render_summary(s);
    Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

fn comparisons(s: &Summary) -> usize {
    s.cells.iter().map(|c| c.comparisons.len()).sum()
}

fn failures(r: &Report) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for suite in &r.test_suites {
        for case in &suite.test_cases {
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
                        case.classname.as_ref().map_or("", |c| c.as_str()),
                        case.name.as_str()
                    ),
                    message.as_ref().map_or("", |m| m.as_str()).to_string(),
                    description.as_ref().map_or("", |d| d.as_str()).to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn junit_has_one_case_per_cell_and_comparison_and_counts_agree() {
    let s = b3_81_failing();
    let r = parse(&s);
    assert_eq!(r.test_suites.len(), 1);
    let suite = &r.test_suites[0];
    assert_eq!(suite.name.as_str(), "b3_81 runs/b3_81");
    assert_eq!(suite.tests, s.cells.len() + comparisons(&s));
    assert_eq!(suite.test_cases.len(), suite.tests);
    assert_eq!(r.tests, suite.tests);
    let verdicts = suite
        .test_cases
        .iter()
        .filter(|c| c.name.as_str() == "verdict")
        .count();
    assert_eq!(verdicts, s.cells.len());
    // Batch 2's verdict and its batch-vs-batch-1 comparison fail, with the numbers.
    let f = failures(&r);
    assert_eq!((suite.failures, r.failures, f.len()), (2, 2, 2), "{f:?}");
    let key = &s.cells[1].key;
    assert_eq!(f[0].0, format!("{key}/verdict"));
    assert!(f[0].1.starts_with("FAIL_EQUIV: argmax flip"), "{}", f[0].1);
    assert_eq!(f[1].0, format!("{key}/batch2_vs_batch1"));
    assert!(
        f[1].1.contains("max |Δ| 0.031250") && f[1].1.contains("first divergent position 3"),
        "{}",
        f[1].1
    );
    assert!(f[1].2.contains("top-1 agreement: 0.9375\n"), "{}", f[1].2);
    assert!(
        f[1].2.contains("argmax flips: 1 (1 not near-ties)"),
        "{}",
        f[1].2
    );
    let props: Vec<_> = suite
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert!(props.contains(&("device", "MI300X")), "{props:?}");
}

#[test]
fn junit_escapes_text_from_traces() {
    let mut s = b3_81_failing();
    let nasty = "<script>alert('x')</script> & \"q\" ]]> \u{1}\ttab\nline";
    s.device = Some(nasty.to_string());
    s.cells[1].reasons = vec![nasty.to_string()];
    let xml = junit::render_summary(&s);
    assert!(!xml.contains("<script>"), "{xml}");
    let r = parse(&s);
    let f = failures(&r);
    // Everything comes back as it was but the one character XML cannot carry, and line breaks
    // and tabs, which are spaces in attribute values.
    let expected = nasty.replace('\u{1}', "\\u{1}").replace(['\t', '\n'], " ");
    assert_eq!(f[0].1, format!("FAIL_EQUIV: {expected}"));
    let device = r.test_suites[0]
        .properties
        .iter()
        .find(|p| p.name.as_str() == "device")
        .unwrap();
    assert_eq!(device.value.as_str(), expected);
}

#[test]
fn allowed_verdicts_are_skipped_and_passing_runs_have_no_failures() {
    let mut s = b3_81_failing();
    s.allow = vec!["FAIL_EQUIV".into()];
    let r = parse(&s);
    assert_eq!((r.failures, r.test_suites[0].skipped), (0, 2));

    let s = b3_81();
    let r = parse(&s);
    assert_eq!((r.failures, r.tests), (0, s.cells.len() + comparisons(&s)));
}

#[test]
fn sweep_problems_without_a_cell_are_a_failed_check() {
    let mut s = b3_81();
    s.golden_dir = Some("golden/b3_81/tiny".into());
    let names = |s: &Summary| -> Vec<String> {
        checks(s)
            .iter()
            .filter(|c| c.name == "sweep")
            .map(|c| format!("{:?}", c.outcome))
            .collect()
    };
    assert_eq!(names(&s), ["Passed"]);
    s.overall.problems = vec![
        format!("{}: INVALID_TRACE — x", s.cells[0].key),
        "golden cell cuda_b16_x is missing from the traces".into(),
    ];
    let f = failures(&parse(&s));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "b3_81/sweep");
    assert_eq!(f[0].1, "golden cell cuda_b16_x is missing from the traces");
}

/// A Summary far too large for one step summary: 30,000 cells, the last one failing.
fn huge() -> Summary {
    let mut s = b3_81();
    let template = s.cells[0].clone();
    s.cells = (0..30_000)
        .map(|i| {
            let mut c = template.clone();
            c.key = format!("{}_variant{i:05}_{}", template.key, "x".repeat(40));
            c
        })
        .collect();
    let last = s.cells.last_mut().unwrap();
    last.verdict = Verdict::FailOom;
    last.reasons = vec!["out of memory: ".to_string() + &"y".repeat(5000)];
    s
}

#[test]
fn step_summary_puts_failures_first_and_stays_under_the_limit() {
    let s = huge();
    let md = step_summary::render(&s, GITHUB_LIMIT - 1);
    assert!(md.len() < GITHUB_LIMIT, "{}", md.len());
    assert!(
        md.len() > GITHUB_LIMIT - 4096,
        "uses the room it has: {}",
        md.len()
    );
    let failing = &s.cells.last().unwrap().key;
    let first_row = md.find("| Cell |").unwrap();
    let fail_at = md.find(failing.as_str()).unwrap();
    assert!(
        fail_at < first_row,
        "the failure is listed before the table"
    );
    assert!(md.contains("more lines not shown"), "truncation is said");
    // The 5000-character reason is cut.
    assert!(!md.contains(&"y".repeat(1000)));

    // Appending after another step's output keeps the whole file under the limit.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("step_summary.md");
    std::fs::write(&f, "x".repeat(900_000)).unwrap();
    step_summary::append(&f, &s).unwrap();
    let size = std::fs::metadata(&f).unwrap().len() as usize;
    assert!(size < GITHUB_LIMIT && size > GITHUB_LIMIT - 4096, "{size}");
    // A full file is left alone, with an error saying why.
    let e = step_summary::append(&f, &s).unwrap_err().to_string();
    assert!(e.contains("1 MiB"), "{e}");
    assert_eq!(std::fs::metadata(&f).unwrap().len() as usize, size);
}

#[test]
fn step_summary_of_a_small_run_is_complete_and_escaped() {
    let mut s = b3_81_failing();
    s.device = Some("<img src=x onerror=alert(1)> | pipe".into());
    s.overall.gate = Some("PASS_EQUIV".into());
    s.overall.gate_passed = false;
    let md = step_summary::render(&s, GITHUB_LIMIT - 1);
    assert!(
        md.starts_with("### ❌ tracecheck `b3_81` — FAIL_EQUIV\n"),
        "{md}"
    );
    assert!(md.contains("gate `PASS_EQUIV` **FAILED**"), "{md}");
    assert!(
        md.contains("Device: &lt;img src=x onerror=alert(1)&gt; \\| pipe"),
        "{md}"
    );
    assert!(!md.contains("not shown"));
    let rows = md.lines().filter(|l| l.starts_with("| `cuda_")).count();
    assert_eq!(rows, s.cells.len());
    let first = md.lines().find(|l| l.starts_with("| `cuda_")).unwrap();
    assert!(
        first.contains("FAIL_EQUIV | 0.031250 | 0.9375 | 7.2 | 17741 |"),
        "{first}"
    );
}
