//! Work split among the machine's cores, with results in input order: the same input gives the
//! same output however many cores there are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

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
    let runs = run_count(items.len(), smallest);
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

/// [`in_runs`] over owned items: each run is handed to `work` by value, so what it leaves is
/// freed on that run's thread too.
pub(crate) fn in_owned_runs<T, R>(
    items: Vec<T>,
    smallest: usize,
    stack_bytes: usize,
    work: impl Fn(Vec<T>) -> R + Sync,
) -> Vec<R>
where
    T: Send,
    R: Send,
{
    if items.is_empty() {
        return Vec::new();
    }
    let size = items.len().div_ceil(run_count(items.len(), smallest));
    let mut runs = Vec::new();
    let mut rest = items;
    while rest.len() > size {
        let tail = rest.split_off(size);
        runs.push(rest);
        rest = tail;
    }
    runs.push(rest);
    // Each run waits in a slot for the thread that takes it (or for this one, when no thread
    // can be had).
    let slots: Vec<Mutex<Option<Vec<T>>>> =
        runs.into_iter().map(|run| Mutex::new(Some(run))).collect();
    in_runs(&slots, 1, stack_bytes, |slots| {
        slots
            .iter()
            .filter_map(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take())
            .map(&work)
            .collect::<Vec<R>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Works each item on its own, on one thread per core (each with `stack_bytes` of stack), every
/// thread taking the next item not yet taken: a thread that other work slows down takes fewer,
/// so none is left waiting for a fixed share. Results come back in input order. When no thread
/// can be had, the items are worked here.
pub(crate) fn each_taken<T, R>(
    items: &[T],
    stack_bytes: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    if items.is_empty() {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let take = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                return done;
            };
            done.push((index, work(item)));
        }
    };
    let take = &take;
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..run_count(items.len(), 1))
            .map(|_| {
                std::thread::Builder::new()
                    .name("envform-worker".to_owned())
                    .stack_size(stack_bytes)
                    .spawn_scoped(scope, take)
            })
            .collect();
        let here = if threads.iter().all(Result::is_err) {
            take()
        } else {
            Vec::new()
        };
        threads
            .into_iter()
            .flatten()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .chain([here])
            .collect()
    });
    let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (index, result) in done.into_iter().flatten() {
        results[index] = Some(result);
    }
    results.into_iter().flatten().collect()
}

/// How many runs `items` items make: one per core, each of at least `smallest` items.
fn run_count(items: usize, smallest: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.min(items / smallest.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::{each_taken, in_owned_runs, in_runs};

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

    #[test]
    fn owned_runs_come_back_in_input_order() {
        let items: Vec<String> = (0..1000).map(|item| item.to_string()).collect();
        let runs = in_owned_runs(items.clone(), 10, 1 << 20, |run| run);
        assert!(!runs.is_empty());
        assert_eq!(runs.into_iter().flatten().collect::<Vec<_>>(), items);
        let empty = in_owned_runs(Vec::<String>::new(), 10, 1 << 20, |run| run.len());
        assert!(empty.is_empty());
    }

    #[test]
    fn taken_items_come_back_in_input_order() {
        let items: Vec<usize> = (0..100).collect();
        let doubled = each_taken(&items, 1 << 20, |item| {
            // Uneven work, so the threads take different shares.
            std::thread::sleep(std::time::Duration::from_micros((*item as u64 % 7) * 50));
            item * 2
        });
        assert_eq!(doubled, (0..100).map(|item| item * 2).collect::<Vec<_>>());
        assert!(each_taken(&[] as &[usize], 1 << 20, |item| *item).is_empty());
    }
}
