use super::fixtures;
use crate::report::interpret;
use crate::summary::Verdict;

fn find<'a>(bullets: &'a [String], prefix: &str) -> &'a str {
    bullets
        .iter()
        .find(|b| b.starts_with(prefix))
        .unwrap_or_else(|| panic!("no bullet starting with {prefix:?} in {bullets:#?}"))
}

#[test]
fn bit_exact_batches_are_called_bit_perfect() {
    let b = interpret(&fixtures::b3_81());
    assert_eq!(
        find(&b, "**Numerical Stability:**"),
        "**Numerical Stability:** Bit-perfect equivalence (`diff=0.0`) maintained across all tested batch sizes (1, 2, 4, 8): decode vs prefill and batch N vs batch 1, 248 compared rows."
    );
    let t = find(&b, "**Throughput Scaling:**");
    assert!(t.contains("At batch 8 the aggregate is 0.99x batch 1's tokens/s (ideal linear: 8x, 12% of linear)"), "{t}");
    assert!(t.contains("tokens/s ranged 7.23–7.29"), "{t}");
    assert!(t.contains("nearly constant"), "{t}");
    let v = find(&b, "**VRAM Scaling:**");
    assert!(v.contains("Peak 24250 MB at batch 1; vs batch 1: -6509 MB at batch 2, -5217 MB at batch 4, -2633 MB at batch 8."), "{v}");
    assert!(v.contains("peaked below batch 1"), "{v}");
    assert!(
        v.contains("From batch 2 to 8 the peak grew from 17741 to 21617 MB."),
        "{v}"
    );
    assert!(find(&b, "**Stability:**").contains("All 6 cells completed at ctx=8192"));
}

#[test]
fn failing_batch_is_reported_with_its_numbers() {
    let b = interpret(&fixtures::b3_81_failing());
    assert!(b.iter().all(|x| !x.contains("Bit-perfect")), "{b:#?}");
    let n = find(&b, "**Numerical Stability:**");
    assert!(
        n.contains("FAIL_EQUIV in 1 of 6 compared cells under the `exact` policy"),
        "{n}"
    );
    assert!(n.contains("`b2` batch 2 vs batch 1: max |Δ| 0.03125, top-1 0.9375, first divergent position 3, 1 argmax flip (1 not near-tie)"), "{n}");
    assert!(n.contains("Bit-exact: `b1`, `b4`, `b8`."), "{n}");
}

#[test]
fn tolerance_pass_is_not_called_bit_exact() {
    let mut s = fixtures::b3_81();
    let p = &mut s.cells[2].comparisons[0];
    p.bit_exact = false;
    p.max_abs_diff = 0.8125;
    p.kl_mean = 1.2e-3;
    s.policy = "bf16".to_string();
    let b = interpret(&s);
    let n = find(&b, "**Numerical Stability:**");
    assert!(n.starts_with("**Numerical Stability:** Not bit-exact, but every comparison is within the `bf16` policy"), "{n}");
    assert!(
        n.contains("max |Δ| 0.8125 (`b4`, decode vs prefill)"),
        "{n}"
    );
}

#[test]
fn stopped_cells_are_named() {
    let mut s = fixtures::b3_81();
    s.cells[3].verdict = Verdict::FailOom;
    s.cells[3].comparisons.clear();
    s.cells[3].reasons = vec!["engine exited 3 (out of memory)".to_string()];
    let b = interpret(&s);
    assert_eq!(
        find(&b, "**Stop Conditions:**"),
        "**Stop Conditions:** 1 of 6 cells did not complete: `b8` → FAIL_OOM (engine exited 3 (out of memory))."
    );
    assert!(
        find(&b, "**Numerical Stability:**").contains("across the completed batch sizes (1, 2, 4)")
    );
}

#[test]
fn long_context_headline() {
    let b = interpret(&fixtures::b3_77());
    assert_eq!(b[0], "**PASS_EQUIV @ ctx=32768; diff=0.0; top1=1.0**");
    assert_eq!(
        find(&b, "**VRAM:**"),
        "**VRAM:** Peak 17095 MB (~17.1 GB) at ctx=32768, 34s into sampling (`nvml` every 1s)."
    );
    assert!(find(&b, "**Numerical Stability:**")
        .contains("Bit-perfect equivalence (`diff=0.0`) maintained at ctx=32768 (batch 1)"));
}

#[test]
fn prefill_exponent_vs_quadratic() {
    let b = interpret(&fixtures::b3_89());
    let f = find(&b, "**Prefill Scaling (flash_v2_naive):**");
    assert!(f.contains("measured exponent 2.18 vs 2 for O(n²) over contexts 4096–16384 (3 points) — consistent with O(n²) attention"), "{f}");
    assert!(
        f.contains("ctx 16384 took 20.6x the ctx 4096 time (n² predicts ~16x)"),
        "{f}"
    );
    assert!(f.contains("throughput ~180 → ~35 tok/s"), "{f}");
    let a = find(&b, "**Attention Implementations:**");
    assert_eq!(a, "**Attention Implementations:** prefill at ctx 16384: flash_v2_naive 469.75s (fastest), naive 480.00s (1.02x slower).");
}
