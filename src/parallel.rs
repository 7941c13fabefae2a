//! Work split among the machine's cores, with results in input order: the same input gives the
//! same output however many cores there are.

/// Stack enough for work that recurses only through JSON values, which the spec keeps shallow.
pub(crate) const SHALLOW_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Splits `items` into one run per core (each of at least `smallest` items), hands each run to
/// `work` on its own thread with `stack_bytes` of stack, and returns the results in order. When a
/// thread cannot be had, that run is worked here.
pub(crate) fn in_runs<T, R>(
    items: &[T],
    smallest: usize,
    stack_bytes: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let runs = cores.min(items.len() / smallest.max(1)).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let threads: Vec<_> = items
            .chunks(items.len().div_ceil(runs).max(1))
            .map(|run| {
                let thread = std::thread::Builder::new()
                    .name("envform-worker".to_owned())
                    .stack_size(stack_bytes)
                    .spawn_scoped(scope, move || work(run));
                (run, thread)
            })
            .collect();
        threads
            .into_iter()
            .map(|(run, thread)| match thread {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => work(run),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::in_runs;

    #[test]
    fn results_come_back_in_input_order() {
        let items: Vec<usize> = (0..1000).collect();
        let sums = in_runs(&items, 10, 1 << 20, |run| run.iter().sum::<usize>());
        assert_eq!(sums.iter().sum::<usize>(), 999 * 1000 / 2);
        let runs = in_runs(&items, 10, 1 << 20, <[usize]>::to_vec);
        let flat: Vec<usize> = runs.into_iter().flatten().collect();
        assert_eq!(flat, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn small_inputs_make_one_run_on_its_own_thread() {
        let here = std::thread::current().id();
        let runs = in_runs(&[1, 2, 3], 10, 1 << 20, |run| {
            (std::thread::current().id() == here, run.len())
        });
        assert_eq!(runs, vec![(false, 3)]);
    }
}
