//! Work split among the machine's cores, with results in input order: the same input gives the
//! same output however many cores there are.
//!
//! Threads take work as they become free instead of a fixed share each: on a busy machine a
//! thread that other work slows down takes less, and none is left waiting for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Stack enough for work that recurses only through JSON values, which the spec keeps shallow.
pub(crate) const SHALLOW_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Runs per core, so that a slowed thread's share can go to the others.
const RUNS_PER_CORE: usize = 4;

/// Splits `items` into runs of at least `smallest` items (a few per core), works each run on
/// [`each_taken`]'s threads, and returns the results in order.
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
    if items.is_empty() {
        return Vec::new();
    }
    let runs: Vec<&[T]> = items.chunks(run_size(items.len(), smallest)).collect();
    each_taken(&runs, stack_bytes, |run| work(run))
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
    let size = run_size(items.len(), smallest);
    let mut runs = Vec::new();
    let mut rest = items;
    while rest.len() > size {
        let tail = rest.split_off(size);
        runs.push(rest);
        rest = tail;
    }
    runs.push(rest);
    // Each run waits in a slot for the thread that takes it.
    let slots: Vec<Mutex<Option<Vec<T>>>> =
        runs.into_iter().map(|run| Mutex::new(Some(run))).collect();
    each_taken(&slots, stack_bytes, |slot| {
        slot.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(&work)
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Works each item on its own, on one thread per core (at most one per item), each with
/// `stack_bytes` of stack and each taking the next item not yet taken. Results come back in input
/// order. When no thread can be had, the items are worked here.
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
        let threads: Vec<_> = (0..cores().min(items.len()))
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

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// How many items go in each run of `items` items: a few runs per core, each of at least
/// `smallest` items (all of them in one run when there are fewer).
fn run_size(items: usize, smallest: usize) -> usize {
    let runs = (cores() * RUNS_PER_CORE)
        .min(items / smallest.max(1))
        .max(1);
    items.div_ceil(runs)
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
