//! Cross-file tests: hand-computed rows, KL against a naive implementation, sequences,
//! aggregation, policies, determinism.

use super::*;

/// Deterministic pseudo-random logits (splitmix64), roughly N(0, scale²).
fn logits(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 53) as f32
    };
    (0..n)
        .map(|_| (next() + next() + next() + next() - 2.0) * scale * 1.7)
        .collect()
}

fn perturb(r: &[f32], seed: u64, eps: f32) -> Vec<f32> {
    r.iter()
        .zip(logits(r.len(), seed, 1.0))
        .map(|(&x, e)| x + eps * e)
        .collect()
}

/// KL straight from the definition Σ p (log p − log q), std exp/ln, no shared code.
fn naive_kl(r: &[f32], c: &[f32]) -> f64 {
    let lse = |v: &[f32]| {
        let m = v
            .iter()
            .map(|&x| f64::from(x))
            .fold(f64::NEG_INFINITY, f64::max);
        m + v
            .iter()
            .map(|&x| (f64::from(x) - m).exp())
            .sum::<f64>()
            .ln()
    };
    let (lr, lc) = (lse(r), lse(c));
    r.iter()
        .zip(c)
        .map(|(&x, &y)| {
            let lp = f64::from(x) - lr;
            let lq = f64::from(y) - lc;
            lp.exp() * (lp - lq)
        })
        .sum()
}

/// KL with no cancellation at small Δ = r − c (a precise reference, not a fast one):
/// KL = Σ p (Δ + expm1(−Δ)) − (S − ln1p(S)), S = Σ p expm1(−Δ); both parts are O(Δ²).
fn precise_kl(r: &[f32], c: &[f32]) -> f64 {
    let m = r
        .iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = r.iter().map(|&x| (f64::from(x) - m).exp()).sum();
    let (mut a, mut s) = (0.0f64, 0.0f64);
    for (&x, &y) in r.iter().zip(c) {
        let p = (f64::from(x) - m).exp() / z;
        let d = f64::from(x) - f64::from(y);
        let e = (-d).exp_m1();
        a += p * (d + e);
        s += p * e;
    }
    a - (s - s.ln_1p())
}

fn row(r: &[f32], c: &[f32]) -> RowMetrics {
    compare_rows(r, c, LogitDtype::F32).unwrap()
}

#[test]
fn hand_computed_vocab8_row() {
    let r = [0.5, 2.0, -1.0, 3.0, 3.0, 0.0, 1.0, -2.0];
    let c = [0.5, 2.5, -1.0, 2.75, 3.25, 1.5, 1.0, -2.5];
    let m = row(&r, &c);
    assert!(!m.bit_exact);
    assert_eq!(m.compared, 8);
    // |Δ| = [0, .5, 0, .25, .25, 1.5, 0, .5]
    assert_eq!((m.max_abs_diff, m.max_abs_diff_id), (1.5, 5));
    assert_eq!((m.sum_abs_diff, m.mean_abs_diff), (3.0, 0.375));
    // argmax r: 3.0 at ids 3 and 4 → 3 (lowest); argmax c: id 4.
    assert!(!m.top1_agree);
    let ids = |t: &TopK| t.as_slice().iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&m.top_ref), [3, 4, 1, 6, 0]);
    assert_eq!(ids(&m.top_cand), [4, 3, 1, 5, 6]);
    assert_eq!(m.top_cand.as_slice()[0].logit, 3.25);
    assert_eq!(m.top5_overlap, 0.8); // {3, 4, 1, 6}
    let f = m.flip.unwrap();
    assert_eq!(
        (f.ref_id, f.cand_id, f.logprob_gap, f.near_tie),
        (3, 4, 0.0, true)
    );
    assert!((m.kl - naive_kl(&r, &c)).abs() < 1e-15);
    assert!(m.kl > 0.01);
    assert!(!m.has_non_finite());
}

#[test]
fn kl_closed_form_uniform_vs_one_raised() {
    // p uniform over 8; q has one logit raised by 1: KL = ln((7 + e)/8) − 1/8.
    let r = [0.0f32; 8];
    let mut c = [0.0f32; 8];
    c[7] = 1.0;
    let want = ((7.0 + std::f64::consts::E) / 8.0).ln() - 0.125;
    assert!(
        (row(&r, &c).kl - want).abs() < 1e-16,
        "{} vs {want}",
        row(&r, &c).kl
    );
    // Shifting every logit changes nothing: KL = 0 (clamped, never negative).
    let shifted: Vec<f32> = r.iter().map(|x| x + 4.0).collect();
    let m = row(&r, &shifted);
    assert!(m.kl >= 0.0 && m.kl < 1e-15, "{}", m.kl);
    assert!(m.top1_agree && m.flip.is_none());
}

#[test]
fn kl_matches_naive_on_large_rows() {
    for (i, &(n, scale, eps)) in [
        (128_256, 3.0, 1e-3),
        (128_256, 3.0, 0.5),
        (50_000, 40.0, 2.0),  // wide logits: tiny probabilities underflow in both
        (1_000, 300.0, 30.0), // |Δ| > 30: the log-sum-exp form
        (77, 1.0, 0.1),       // not a multiple of the chunk size
    ]
    .iter()
    .enumerate()
    {
        let r = logits(n, 11 + i as u64, scale);
        let c = perturb(&r, 99 + i as u64, eps);
        let (got, want) = (row(&r, &c).kl, naive_kl(&r, &c));
        // The naive form itself carries ~1e-15 absolute rounding (O(1) terms cancel).
        assert!(
            (got - want).abs() <= 1e-12 * want + 1e-14,
            "n={n} scale={scale}: {got:e} vs {want:e}"
        );
    }
}

#[test]
fn kl_stays_accurate_for_tiny_differences() {
    // f32-noise differences: KL ~1e-13, where the naive form is off by ~1 %.
    for (i, &(n, scale, eps)) in [
        (128_256, 3.0, 1e-6),
        (128_256, 10.0, 1e-5),
        (77, 1.0, 1e-6),
        (4096, 2.0, 1e-3),
    ]
    .iter()
    .enumerate()
    {
        let r = logits(n, 21 + i as u64, scale);
        let c = perturb(&r, 31 + i as u64, eps);
        let (got, want) = (row(&r, &c).kl, precise_kl(&r, &c));
        assert!(want > 0.0);
        assert!(
            ((got - want) / want).abs() < 1e-6,
            "n={n} eps={eps}: {got:e} vs {want:e}"
        );
    }
    // A common shift plus noise: the centring removes the shift.
    let r = logits(10_000, 5, 3.0);
    let c: Vec<f32> = perturb(&r, 6, 1e-4).iter().map(|x| x + 0.75).collect();
    let want = precise_kl(&r, &c.iter().map(|x| x - 0.75).collect::<Vec<_>>());
    let got = row(&r, &c).kl;
    assert!(((got - want) / want).abs() < 1e-3, "{got:e} vs {want:e}");
}

#[test]
fn identical_rows_take_the_fast_path() {
    let r = logits(5000, 1, 2.0);
    let m = row(&r, &r.clone());
    assert!(m.bit_exact && m.top1_agree && m.flip.is_none());
    assert_eq!(
        (m.max_abs_diff, m.kl, m.top5_overlap, m.compared),
        (0.0, 0.0, 1.0, 5000)
    );
    assert_eq!(m.top_ref, m.top_cand);
    let mut t = TopK::default();
    t.offer_all(&r, 0);
    assert_eq!(m.top_ref, t);
}

#[test]
fn signed_zero_is_not_bit_exact_but_has_no_diff() {
    let r = [0.0f32, 1.0, 2.0];
    let c = [-0.0f32, 1.0, 2.0];
    let m = row(&r, &c);
    assert!(!m.bit_exact);
    assert_eq!((m.max_abs_diff, m.kl), (0.0, 0.0));
    assert!(m.top1_agree);
}

#[test]
fn argmax_ties_go_to_the_lowest_id_across_chunks() {
    let mut r = logits(300, 5, 1.0);
    for id in [250, 70, 200] {
        r[id] = 50.0;
    }
    let mut c = r.clone();
    c[0] += 1e-3; // differing rows: the two-pass path
    let m = row(&r, &c);
    assert_eq!(m.top_ref.argmax(), Some(70));
    assert_eq!(m.top_cand.argmax(), Some(70));
    let ids: Vec<u32> = m.top_ref.as_slice()[..3].iter().map(|e| e.id).collect();
    assert_eq!(ids, [70, 200, 250]);
    // Candidate ties between ids 200 and 70 resolved the same way: no flip.
    assert!(m.top1_agree);
    let m = row(&r, &r); // identical path
    assert_eq!(m.top_ref.argmax(), Some(70));
}

#[test]
fn flips_report_gap_and_near_tie() {
    let r = [1.0f32, 1.0 - 4.0 * f32::EPSILON / 2.0, 0.0, -1.0];
    // ε/2 = 2^-24 is the spacing below 1.0: r[1] is 4·2^-24 = 2 ULP(1.0) below.
    let c = [1.0f32, 1.5, 0.0, -1.0];
    let f = row(&r, &c).flip.unwrap();
    assert_eq!((f.ref_id, f.cand_id), (0, 1));
    assert_eq!(f.logprob_gap, 4.0 * 2f64.powi(-24));
    assert!(f.near_tie);
    let r = [1.0f32, 0.59, 0.0, -1.0];
    let f = row(&r, &c).flip.unwrap();
    assert!((f.logprob_gap - 0.41).abs() < 1e-7 && !f.near_tie);
    // bf16 logits: 1.0 vs 0.97 is within 4 ULP (4·2^-7 = 0.03125).
    let r = [1.0f32, 0.97, 0.0, -1.0];
    assert!(
        compare_rows(&r, &c, LogitDtype::Bf16)
            .unwrap()
            .flip
            .unwrap()
            .near_tie
    );
    assert!(!row(&r, &c).flip.unwrap().near_tie);
}

#[test]
fn nan_and_inf_are_flagged_and_numbers_stay_finite() {
    let r = logits(1000, 2, 1.0);
    let mut c = perturb(&r, 3, 1e-3);
    c[517] = f32::NAN;
    c[900] = f32::INFINITY;
    let m = row(&r, &c);
    assert!(m.non_finite_ref.is_none());
    let nf = m.non_finite_cand.unwrap();
    assert_eq!(
        (nf.first_id, nf.first_kind, nf.nan, nf.pos_inf),
        (517, NonFiniteKind::Nan, 1, 1)
    );
    assert_eq!(m.compared, 998);
    assert!(m.max_abs_diff.is_finite() && m.kl.is_finite() && m.max_abs_diff < 1e-2);
    // +Inf never enters the top-5, NaN never wins.
    assert!(m.top_cand.as_slice().iter().all(|e| e.logit.is_finite()));
    // Everything serialises to JSON and back.
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<RowMetrics>(&json).unwrap(), m);

    // Identical rows holding -Inf: caught on the one-pass path.
    let mut x = logits(200, 4, 1.0);
    x[150] = f32::NEG_INFINITY;
    let m = row(&x, &x);
    assert!(m.bit_exact);
    assert_eq!(m.non_finite_ref.unwrap().first_kind, NonFiniteKind::NegInf);
    assert_eq!(m.non_finite_cand.unwrap().first_id, 150);
    // All-NaN rows: no argmax on either side.
    let n = [f32::NAN; 6];
    let m = row(&n, &n);
    assert_eq!((m.top_ref.argmax(), m.compared, m.kl), (None, 0, 0.0));
}

#[test]
fn shape_errors() {
    assert_eq!(
        compare_rows(&[1.0], &[1.0, 2.0], LogitDtype::F32),
        Err(MetricsError::LengthMismatch {
            reference: 1,
            candidate: 2
        })
    );
    assert_eq!(
        compare_rows(&[], &[], LogitDtype::F32),
        Err(MetricsError::EmptyVocab)
    );
    assert_eq!(
        compare_sequence(&[0.0; 10], &[0.0; 10], 4, LogitDtype::F32),
        Err(MetricsError::RaggedRows { len: 10, vocab: 4 })
    );
}

/// A sequence of `span` rows where rows listed in `diff` get noise `eps`.
fn sequence(
    vocab: usize,
    span: usize,
    seed: u64,
    diff: &[usize],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let r = logits(vocab * span, seed, 3.0);
    let mut c = r.clone();
    for &j in diff {
        let noisy = perturb(&r[j * vocab..(j + 1) * vocab], seed + 1000 + j as u64, eps);
        c[j * vocab..(j + 1) * vocab].copy_from_slice(&noisy);
    }
    (r, c)
}

#[test]
fn sequence_stats_series_and_first_divergence() {
    let (r, c) = sequence(64, 6, 7, &[2, 4], 1e-2);
    let s = compare_sequence(&r, &c, 64, LogitDtype::F32).unwrap();
    let sum = &s.stats;
    assert_eq!(
        (sum.rows, sum.bit_exact_rows, sum.all_bit_exact),
        (6, 4, false)
    );
    assert_eq!(
        sum.first_divergent,
        Some(RowRef {
            sequence: 0,
            position: 2
        })
    );
    assert_eq!(sum.max_abs_diff_per_row.len(), 6);
    assert_eq!(sum.max_abs_diff_per_row[0], 0.0);
    assert!(sum.max_abs_diff_per_row[2] > 0.0 && sum.kl_per_row[4] > 0.0);
    let max = sum.max_abs_diff_per_row.iter().cloned().fold(0.0, f64::max);
    assert_eq!(sum.max_abs_diff, max);
    let at = sum.max_abs_diff_at.unwrap();
    assert_eq!(s.rows[at.position as usize].max_abs_diff_id, at.id);
    let mean: f64 = s.rows.iter().map(|m| m.sum_abs_diff).sum::<f64>() / (6.0 * 64.0);
    assert!((sum.mean_abs_diff - mean).abs() < 1e-18);
    let kl = sum.kl.unwrap();
    assert_eq!((kl.count, kl.min, kl.median), (6, 0.0, 0.0));
    assert_eq!(kl.max, sum.kl_per_row[2].max(sum.kl_per_row[4]));
    assert!((sum.mean_kl - (sum.kl_per_row[2] + sum.kl_per_row[4]) / 6.0).abs() < 1e-18);
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<SequenceMetrics>(&json).unwrap(), s);
}

#[test]
fn merge_renumbers_sequences_and_keeps_earliest_position() {
    let (r0, c0) = sequence(32, 4, 1, &[3], 1.0);
    let (r1, c1) = sequence(32, 4, 2, &[1], 1e-3);
    let (r2, c2) = sequence(32, 4, 3, &[], 0.0);
    let seqs = compare_sequences(
        &[
            SequencePair {
                reference: &r0,
                candidate: &c0,
            },
            SequencePair {
                reference: &r1,
                candidate: &c1,
            },
            SequencePair {
                reference: &r2,
                candidate: &c2,
            },
        ],
        32,
        LogitDtype::F32,
    )
    .unwrap();
    let agg = aggregate(&seqs);
    assert_eq!(
        (agg.sequences, agg.rows, agg.divergent_sequences),
        (3, 12, 2)
    );
    assert_eq!(agg.rows_per_sequence, [4, 4, 4]);
    assert_eq!(
        agg.first_divergent,
        Some(RowRef {
            sequence: 1,
            position: 1
        })
    );
    assert_eq!(agg.max_abs_diff_at.unwrap().sequence, 0); // the eps = 1 row
    assert_eq!(agg.max_abs_diff_per_row.len(), 12);
    for f in &agg.flips {
        assert!(f.sequence < 2);
    }
    // Merging merges is the same as merging all at once.
    let ab = Stats::merge([&seqs[0].stats, &seqs[1].stats]);
    assert_eq!(Stats::merge([&ab, &seqs[2].stats]), agg);
    assert_eq!(Stats::merge([]), Stats::default());
}

fn stats_of(rows: &[(Vec<f32>, Vec<f32>)], dtype: LogitDtype) -> Stats {
    let ms: Vec<RowMetrics> = rows
        .iter()
        .map(|(r, c)| compare_rows(r, c, dtype).unwrap())
        .collect();
    Stats::from_rows(&ms)
}

fn check(s: &Stats, p: Policy) -> PolicyOutcome {
    evaluate(s, p, &Overrides::default())
}

fn reasons(o: &PolicyOutcome) -> Vec<String> {
    o.reasons.iter().map(|r| r.to_string()).collect()
}

#[test]
fn policy_exact() {
    let r = logits(100, 1, 1.0);
    let same = stats_of(
        &[(r.clone(), r.clone()), (r.clone(), r.clone())],
        LogitDtype::F32,
    );
    assert!(check(&same, Policy::Exact).pass);
    let mut c = r.clone();
    c[5] = f32::from_bits(c[5].to_bits() ^ 1); // one ULP
    let one_off = stats_of(&[(r.clone(), r.clone()), (r.clone(), c)], LogitDtype::F32);
    let o = check(&one_off, Policy::Exact);
    assert!(!o.pass);
    assert_eq!(
        reasons(&o),
        ["1 of 2 rows not bit-identical (first at position 1)"]
    );
    // ...which fp32 accepts.
    assert!(check(&one_off, Policy::Fp32).pass);
}

#[test]
fn policy_fp32() {
    let r = logits(1000, 2, 2.0);
    let ok = stats_of(&[(r.clone(), perturb(&r, 5, 1e-4))], LogitDtype::F32);
    assert!(
        check(&ok, Policy::Fp32).pass,
        "{:?}",
        reasons(&check(&ok, Policy::Fp32))
    );
    let mut c = r.clone();
    c[10] += 2.1e-3;
    let big = stats_of(&[(r.clone(), c)], LogitDtype::F32);
    let o = check(&big, Policy::Fp32);
    assert!(!o.pass);
    assert!(
        reasons(&o)[0].starts_with("max |Δ| 2.1"),
        "{:?}",
        reasons(&o)
    );
    assert!(
        reasons(&o)[0].ends_with(" > 1e-3 (fp32)"),
        "{:?}",
        reasons(&o)
    );
    // --atol loosens it.
    let loose = Overrides {
        atol: Some(1e-2),
        ..Overrides::default()
    };
    assert!(evaluate(&big, Policy::Fp32, &loose).pass);
    // A flip that is not a near-tie fails even with a tiny |Δ| budget met.
    let r = [1.0f32, 0.59, 0.0];
    let c = [1.0f32, 1.0 + 1e-4, 0.0];
    let o = evaluate(
        &stats_of(
            &[(r.to_vec(), r.to_vec()), (r.to_vec(), c.to_vec())],
            LogitDtype::F32,
        ),
        Policy::Fp32,
        &Overrides {
            atol: Some(1.0),
            ..Overrides::default()
        },
    );
    assert_eq!(
        reasons(&o),
        ["flip at position 1 is not a near-tie (gap 0.41, id 0 → 1)"]
    );
}

#[test]
fn policy_fp16() {
    let r = logits(500, 3, 2.0);
    let rows: Vec<_> = (0..4)
        .map(|i| (r.clone(), perturb(&r, 10 + i, 1e-2)))
        .collect();
    assert!(check(&stats_of(&rows, LogitDtype::F16), Policy::Fp16).pass);
    let rows: Vec<_> = (0..4)
        .map(|i| (r.clone(), perturb(&r, 10 + i, 0.2)))
        .collect();
    let o = check(&stats_of(&rows, LogitDtype::F16), Policy::Fp16);
    assert!(
        !o.pass && reasons(&o)[0].contains("> 0.05 (fp16)"),
        "{:?}",
        reasons(&o)
    );
    // One near-tie flip in 8 rows: top-1 0.875 < 0.995.
    let a = [2.0f32, 2.0 - 2f32.powi(-10), 0.0, 1.0];
    let b = [2.0f32, 2.0 + 2f32.powi(-9), 0.0, 1.0];
    let mut rows = vec![(a.to_vec(), a.to_vec()); 7];
    rows.push((a.to_vec(), b.to_vec()));
    let s = stats_of(&rows, LogitDtype::F16);
    assert!(s.flips[0].flip.near_tie);
    let o = check(&s, Policy::Fp16);
    assert_eq!(reasons(&o), ["top-1 agreement 0.875 < 0.995 (fp16)"]);
    let o = evaluate(
        &s,
        Policy::Fp16,
        &Overrides {
            min_top1: Some(0.8),
            ..Overrides::default()
        },
    );
    assert!(o.pass);
}

#[test]
fn policy_bf16() {
    let r = logits(2000, 4, 3.0);
    let noisy = stats_of(&[(r.clone(), perturb(&r, 6, 0.05))], LogitDtype::Bf16);
    assert!(noisy.max_abs_diff > 0.05 && noisy.mean_kl > 0.0);
    assert!(
        check(&noisy, Policy::Bf16).pass,
        "{:?}",
        reasons(&check(&noisy, Policy::Bf16))
    );
    // |Δ| ≤ 1.5 everywhere but a large mean KL.
    let shifted: Vec<f32> = r
        .iter()
        .enumerate()
        .map(|(i, &x)| if i % 2 == 0 { x + 1.4 } else { x })
        .collect();
    let o = check(
        &stats_of(&[(r.clone(), shifted)], LogitDtype::Bf16),
        Policy::Bf16,
    );
    assert!(
        reasons(&o)
            .iter()
            .any(|s| s.starts_with("mean KL") && s.ends_with("> 5e-3 (bf16)")),
        "{:?}",
        reasons(&o)
    );
    assert!(!reasons(&o).iter().any(|s| s.starts_with("max")));
    let mut c = r.clone();
    c[3] += 2.0;
    let o = check(&stats_of(&[(r.clone(), c)], LogitDtype::Bf16), Policy::Bf16);
    assert!(
        reasons(&o)
            .iter()
            .any(|s| s.starts_with("max |Δ| 2 > 1.5 (bf16)")),
        "{:?}",
        reasons(&o)
    );
}

#[test]
fn non_finite_fails_every_policy() {
    let r = logits(1000, 8, 1.0);
    let mut c = r.clone();
    c[517] = f32::NAN;
    let rows = vec![
        (r.clone(), r.clone()),
        (r.clone(), r.clone()),
        (r.clone(), c),
    ];
    let s = stats_of(&rows, LogitDtype::F32);
    for p in [Policy::Exact, Policy::Fp32, Policy::Fp16, Policy::Bf16] {
        let o = check(&s, p);
        assert!(!o.pass);
        assert_eq!(reasons(&o)[0], "NaN in candidate row 2 at id 517", "{p}");
    }
    // Across sequences the reason names the sequence.
    let agg = Stats::merge([&s, &s]);
    let o = check(&agg, Policy::Bf16);
    assert_eq!(
        reasons(&o)[1],
        "NaN in candidate row 2 of sequence 1 at id 517"
    );
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let vocab = 4099; // odd: tails in every kernel
    let data: Vec<(Vec<f32>, Vec<f32>)> = (0..9)
        .map(|s| {
            sequence(
                vocab,
                5,
                40 + s,
                &[1, 3, 4],
                if s % 3 == 0 { 0.3 } else { 1e-3 },
            )
        })
        .collect();
    let pairs: Vec<SequencePair<'_>> = data
        .iter()
        .map(|(r, c)| SequencePair {
            reference: r,
            candidate: c,
        })
        .collect();
    let serial = compare_sequences(&pairs, vocab, LogitDtype::Bf16).unwrap();
    let want = serde_json::to_string(&(aggregate(&serial), &serial)).unwrap();
    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let par = pool.install(|| compare_sequences_par(&pairs, vocab, LogitDtype::Bf16).unwrap());
        let got = serde_json::to_string(&(aggregate(&par), &par)).unwrap();
        assert!(got == want, "{threads} threads differ");
    }
}
