//! Memory sampling for run.json: a sampler thread reads a probe (device memory in use, or the
//! process RSS on the CPU) every period, and a sample is taken at every phase boundary, so
//! short phases are never missed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Resident set size of this process in MB (Linux /proc; 0 elsewhere).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| (pages * page_size()) as f64 / 1e6)
        .unwrap_or(0.0)
}

/// The kernel's RSS high-water mark (VmHWM) in MB.
pub fn rss_high_water_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb * 1024.0 / 1e6)
        .unwrap_or(0.0)
}

fn page_size() -> u64 {
    4096
}

/// What a sampler measures: MB in use now.
pub type Probe = Arc<dyn Fn() -> f64 + Send + Sync>;

pub struct Sampler {
    start: Instant,
    probe: Probe,
    samples: Arc<Mutex<Vec<(f64, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `probe` (MB in use) every `period_s` seconds (≤ 0: phase boundaries
    /// only).
    pub fn start(start: Instant, period_s: f64, probe: Probe) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (period_s > 0.0).then(|| {
            let (samples, stop, probe) = (samples.clone(), stop.clone(), probe.clone());
            let period = Duration::from_secs_f64(period_s);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let s = (start.elapsed().as_secs_f64(), probe());
                    if let Ok(mut v) = samples.lock() {
                        v.push(s);
                    }
                    // Sleep in small steps so stop() returns promptly.
                    let until = Instant::now() + period;
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10).min(period));
                    }
                }
            })
        });
        Sampler {
            start,
            probe,
            samples,
            stop,
            thread,
        }
    }

    /// A sample now (phase boundary).
    pub fn mark(&self) {
        let s = (self.start.elapsed().as_secs_f64(), (self.probe)());
        if let Ok(mut v) = self.samples.lock() {
            v.push(s);
        }
    }

    /// Stops the thread; returns the samples in time order.
    pub fn finish(mut self) -> Vec<(f64, f64)> {
        self.mark();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut v = self.samples.lock().map(|v| v.clone()).unwrap_or_default();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
