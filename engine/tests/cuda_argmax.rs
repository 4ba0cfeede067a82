//! The device argmax of greedy decode steps (argmax.cu) against the host's `backend::argmax`
//! on rows built to break it: ties across blocks, NaN first and everywhere, -0 against +0,
//! infinities, the maximum in the last id, vocabularies that end inside a block. Needs a GPU:
//! without one the test is skipped with a note, unless `TRACECHECK_REQUIRE_GPU=1`.

#[cfg(feature = "cuda")]
#[test]
fn device_argmax_matches_the_host() {
    use tracecheck_engine::backend::{argmax, CudaBackend};

    let be = match CudaBackend::new(None) {
        Ok(be) => be,
        Err(e) => {
            assert!(
                !std::env::var("TRACECHECK_REQUIRE_GPU").is_ok_and(|v| v == "1"),
                "TRACECHECK_REQUIRE_GPU=1 but no CUDA device: {e}"
            );
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    // A fixed xorshift stream: values in [-8, 8) with many exact repeats (coarse grid).
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for vocab in [1usize, 7, 4096, 4097, 49152, 128256] {
        let mut rows: Vec<Vec<f32>> = Vec::new();
        let random = |next: &mut dyn FnMut() -> u64| -> Vec<f32> {
            (0..vocab)
                .map(|_| ((next() % 64) as f32 - 32.0) / 4.0)
                .collect()
        };
        rows.push(random(&mut next));
        // The maximum tied at ids in different blocks: the lowest wins.
        let mut r = random(&mut next);
        for i in [vocab - 1, vocab / 2, vocab / 3] {
            r[i] = 100.0;
        }
        rows.push(r);
        // The maximum only at the last id.
        let mut r = random(&mut next);
        r[vocab - 1] = 1e30;
        rows.push(r);
        // NaN at id 0 and scattered: never chosen.
        let mut r = random(&mut next);
        for i in (0..vocab).step_by(97) {
            r[i] = f32::NAN;
        }
        rows.push(r);
        // All NaN: 0.
        rows.push(vec![f32::NAN; vocab]);
        // -0 before +0, everything else negative: a tie, the lowest id.
        let mut r = vec![-1.0f32; vocab];
        r[vocab / 2] = 0.0;
        r[vocab / 3] = -0.0;
        rows.push(r);
        // -inf everywhere but NaN at 0; +inf twice.
        let mut r = vec![f32::NEG_INFINITY; vocab];
        r[0] = f32::NAN;
        rows.push(r);
        let mut r = random(&mut next);
        r[vocab / 4] = f32::INFINITY;
        r[vocab - 1] = f32::INFINITY;
        rows.push(r);
        // Subnormals and the largest finite values.
        let mut r: Vec<f32> = (0..vocab)
            .map(|i| f32::from_bits(1 + (i as u32 % 5)))
            .collect();
        r[vocab / 5] = -f32::MAX;
        rows.push(r);
        let flat: Vec<f32> = rows.concat();
        let want: Vec<u32> = rows.iter().map(|r| argmax(r)).collect();
        let got = be
            .device_argmax(&flat, vocab)
            .unwrap_or_else(|e| panic!("vocab {vocab}: {e}"));
        assert_eq!(got, want, "vocab {vocab}");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn device_argmax_matches_the_host() {
    eprintln!("SKIPPED: built without --features cuda");
}
