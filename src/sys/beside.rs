//! Two pieces of work at once: one on a second thread, one on this. A
//! commit overlaps O(N) reading with waiting on fsyncs this way
//! (docs/performance.md#below-01--the-walk). Never a panic for want of a
//! thread: where none can be had, the work runs here, after the other.

/// Runs `side` on a second thread while `main` runs on this one; both
/// results. `side` runs here instead, after `main`, where no thread can be
/// started (`EAGAIN` at a process limit) or where the thread did not
/// finish.
pub(crate) fn beside<A: Send, B>(side: impl Fn() -> A + Sync, main: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let thread = std::thread::Builder::new().spawn_scoped(s, &side);
        let b = main();
        let a = match thread {
            Ok(thread) => thread.join().unwrap_or_else(|_| side()),
            Err(_) => side(),
        };
        (a, b)
    })
}

#[cfg(test)]
mod tests {
    use super::beside;

    #[test]
    fn both_run_and_the_side_runs_on_another_thread() {
        let here = std::thread::current().id();
        let (side, main) = beside(|| std::thread::current().id(), || 7);
        assert_eq!(main, 7);
        assert_ne!(side, here);
    }
}
