//! Matmul kernel throughput at decode and prefill shapes (run: `cargo bench -p
//! tracecheck-engine --bench kernels`): weight GB/s and GFLOP/s per dtype.

use std::time::Instant;

use tracecheck_engine::backend::cpu::kernels::matmul;

fn main() {
    let (m, k) = (1536usize, 576usize);
    let w32: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let w16: Vec<u16> = w32.iter().map(|x| (x.to_bits() >> 16) as u16).collect();
    // Many distinct matrices so weights stream from memory as in a real decode step.
    let copies = 64;
    let big32: Vec<Vec<f32>> = (0..copies).map(|_| w32.clone()).collect();
    let big16: Vec<Vec<u16>> = (0..copies).map(|_| w16.clone()).collect();
    for n in [1usize, 4, 128] {
        let x: Vec<f32> = (0..n * k).map(|i| ((i * 31) % 97) as f32 / 97.0).collect();
        let mut out = vec![0f32; n * m];
        let reps = if n == 128 { 2 } else { 10 };
        let t = Instant::now();
        for _ in 0..reps {
            for w in &big32 {
                matmul(&x, n, w, m, k, &mut out);
            }
        }
        let s = t.elapsed().as_secs_f64();
        let flops = 2.0 * (n * m * k * copies * reps) as f64;
        let bytes = (m * k * 4 * copies * reps) as f64;
        println!(
            "f32  n={n:4}: {:6.2} GB/s weights, {:6.2} GFLOP/s",
            bytes / s / 1e9,
            flops / s / 1e9
        );
        let t = Instant::now();
        for _ in 0..reps {
            for w in &big16 {
                matmul(&x, n, w, m, k, &mut out);
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "bf16 n={n:4}: {:6.2} GB/s weights, {:6.2} GFLOP/s",
            bytes / 2.0 / s / 1e9,
            flops / s / 1e9
        );
    }
}
