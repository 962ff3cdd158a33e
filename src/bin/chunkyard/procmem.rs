//! The process's resident memory as `top` shows it, split into anonymous
//! pages (heap: the cache, buffers) and file-backed pages (memory maps),
//! read from `/proc/self/status` (Linux), and a background sampler that
//! records its peak and its course over time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Resident memory at one moment, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rss {
    /// Anonymous pages (`RssAnon`).
    pub anon: u64,
    /// File-backed pages (`RssFile`), e.g. touched pages of memory maps.
    pub file: u64,
    /// Shared-memory pages (`RssShmem`).
    pub shmem: u64,
}

impl Rss {
    /// The total `top` shows as RES.
    pub fn total(&self) -> u64 {
        self.anon + self.file + self.shmem
    }

    /// Reads the current process's resident memory; `None` where
    /// `/proc/self/status` is not available.
    pub fn now() -> Option<Rss> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            let kb: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024)
        };
        Some(Rss {
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            shmem: field("RssShmem:").unwrap_or(0),
        })
    }
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Default)]
pub struct MemoryTrace {
    /// Highest anonymous resident bytes seen.
    pub peak_anon: u64,
    /// Highest file-backed resident bytes seen.
    pub peak_file: u64,
    /// Highest total resident bytes seen.
    pub peak_total: u64,
    /// (seconds since start, sample) pairs.
    pub samples: Vec<(f64, Rss)>,
}

/// Samples resident memory on a background thread until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<MemoryTrace>,
}

impl Sampler {
    /// Starts sampling every `interval`.
    pub fn start(interval: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut trace = MemoryTrace::default();
            loop {
                if let Some(r) = Rss::now() {
                    trace.peak_anon = trace.peak_anon.max(r.anon);
                    trace.peak_file = trace.peak_file.max(r.file);
                    trace.peak_total = trace.peak_total.max(r.total());
                    trace.samples.push((t0.elapsed().as_secs_f64(), r));
                }
                if flag.load(Ordering::Relaxed) {
                    return trace;
                }
                std::thread::sleep(interval);
            }
        });
        Sampler { stop, handle }
    }

    /// Stops sampling (after one last sample) and returns the trace.
    pub fn finish(self) -> MemoryTrace {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_large_allocation() {
        assert!(Rss::now().expect("linux /proc").total() > 0);
        let s = Sampler::start(Duration::from_millis(1));
        let v = vec![1u8; 64 << 20];
        std::thread::sleep(Duration::from_millis(30));
        let trace = s.finish();
        assert!(v.iter().all(|&b| b == 1));
        // The process held the 64 MiB buffer while sampled.
        assert!(trace.peak_anon >= 64 << 20, "peak {}", trace.peak_anon);
        assert!(trace.peak_total >= trace.peak_anon);
        assert!(!trace.samples.is_empty());
    }
}
