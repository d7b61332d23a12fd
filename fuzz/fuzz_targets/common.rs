//! Shared by every target.

/// Runs rayon's work on this (libFuzzer's) thread: a one-thread global pool
/// that includes the caller, so the many tiny parallel calls per input do not
/// each wait for another thread to wake (24 runs/s before, under load).
pub fn one_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .use_current_thread()
            .build_global();
    });
}
