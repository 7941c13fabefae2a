//! Work split among the machine's cores with rayon, results in input order: the same input gives
//! the same output however many cores there are.
//!
//! One pool of one thread per core, built on first use, with stacks deep enough for the YAML
//! parser (it recurses once per nesting level, with large frames in unoptimized builds; only the
//! pages a thread touches are resident). One pool, not one per kind of work: every thread that
//! allocates keeps a malloc arena, and the same few threads parsing, diffing and rendering kept
//! the plan's peak memory a quarter lower than a second pool did. Work is cut into a few runs per
//! thread and rayon's work stealing hands a slowed thread's runs to the others.

use std::sync::LazyLock;

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// Runs per thread, so that a slowed thread's share can go to the others.
const RUNS_PER_THREAD: usize = 4;

/// Stack per thread: the parser's recursion is safe up to the nesting budget whatever the build.
const STACK_BYTES: usize = 64 << 20;

/// The pool; `None` when no thread can be had (the work then runs on the caller's thread, in
/// order).
static POOL: LazyLock<Option<ThreadPool>> = LazyLock::new(|| {
    ThreadPoolBuilder::new()
        .stack_size(STACK_BYTES)
        .thread_name(|index| format!("envform-worker-{index}"))
        .build()
        .ok()
});

/// Splits `items` into runs of at least `smallest` items (a few per thread), works each run in the
/// pool, and returns the results in order.
pub(crate) fn in_runs<T, R>(
    items: &[T],
    smallest: usize,
    work: impl Fn(&[T]) -> R + Sync + Send,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    if items.is_empty() {
        return Vec::new();
    }
    let size = run_size(items.len(), smallest);
    match POOL.as_ref() {
        Some(pool) => pool.install(|| items.par_chunks(size).map(work).collect()),
        None => items.chunks(size).map(work).collect(),
    }
}

/// [`in_runs`] over owned items: each run is handed to `work` by value, so what it leaves is
/// freed on that run's thread too.
pub(crate) fn in_owned_runs<T, R>(
    items: Vec<T>,
    smallest: usize,
    work: impl Fn(Vec<T>) -> R + Sync + Send,
) -> Vec<R>
where
    T: Send,
    R: Send,
{
    if items.is_empty() {
        return Vec::new();
    }
    let size = run_size(items.len(), smallest);
    match POOL.as_ref() {
        Some(pool) => pool.install(|| items.into_par_iter().chunks(size).map(work).collect()),
        None => {
            let mut runs = Vec::new();
            let mut rest = items;
            while !rest.is_empty() {
                let tail = rest.split_off(size.min(rest.len()));
                runs.push(work(rest));
                rest = tail;
            }
            runs
        }
    }
}

/// Works each item on its own in the pool (in runs of at least `smallest`), each result in two
/// parts written straight into two lists in input order: no run's results are copied again.
pub(crate) fn each_unzipped<T, A, B>(
    items: &[T],
    smallest: usize,
    work: impl Fn(&T) -> (A, B) + Sync + Send,
) -> (Vec<A>, Vec<B>)
where
    T: Sync,
    A: Send,
    B: Send,
{
    match POOL.as_ref() {
        Some(pool) => pool.install(|| {
            let (mut first, mut second) = (Vec::new(), Vec::new());
            items
                .par_iter()
                .with_min_len(smallest)
                .map(work)
                .unzip_into_vecs(&mut first, &mut second);
            (first, second)
        }),
        None => items.iter().map(work).unzip(),
    }
}

/// Works each item on its own in the pool, results in input order.
pub(crate) fn each<T, R>(items: &[T], work: impl Fn(&T) -> R + Sync + Send) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    match POOL.as_ref() {
        Some(pool) => pool.install(|| items.par_iter().map(work).collect()),
        None => items.iter().map(work).collect(),
    }
}

/// Starts `work` in the pool and returns at once; its result arrives on the receiver. Without a
/// pool the work is done before this returns.
pub(crate) fn start<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> tokio::sync::oneshot::Receiver<R> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    // A dropped receiver means nobody waits for the result any more.
    let job = move || drop(sender.send(work()));
    match POOL.as_ref() {
        Some(pool) => pool.spawn(job),
        None => job(),
    }
    receiver
}

/// How many items go in each run of `items` items: a few runs per thread, each of at least
/// `smallest` items (all of them in one run when there are fewer).
fn run_size(items: usize, smallest: usize) -> usize {
    let threads = POOL.as_ref().map_or(1, ThreadPool::current_num_threads);
    let runs = (threads * RUNS_PER_THREAD)
        .min(items / smallest.max(1))
        .max(1);
    items.div_ceil(runs)
}

#[cfg(test)]
mod tests {
    use super::{each, each_unzipped, in_owned_runs, in_runs, start};

    #[test]
    fn results_come_back_in_input_order() {
        let items: Vec<usize> = (0..1000).collect();
        let sums = in_runs(&items, 10, |run| run.iter().sum::<usize>());
        assert_eq!(sums.iter().sum::<usize>(), 999 * 1000 / 2);
        let runs = in_runs(&items, 10, <[usize]>::to_vec);
        let flat: Vec<usize> = runs.into_iter().flatten().collect();
        assert_eq!(flat, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn unzipped_results_come_back_in_input_order() {
        let items: Vec<usize> = (0..5000).collect();
        let (doubled, text) = each_unzipped(&items, 64, |item| (item * 2, item.to_string()));
        assert_eq!(
            doubled,
            items.iter().map(|item| item * 2).collect::<Vec<_>>()
        );
        assert_eq!(text[4321], "4321");
        assert_eq!(text.len(), items.len());
    }

    #[test]
    fn started_work_answers_on_its_receiver() {
        let receivers: Vec<_> = (0..20_u64).map(|item| start(move || item * 3)).collect();
        let results: Vec<u64> = receivers
            .into_iter()
            .map(|receiver| receiver.blocking_recv().expect("the work ran"))
            .collect();
        assert_eq!(results, (0..20).map(|item| item * 3).collect::<Vec<_>>());
    }

    #[test]
    fn small_inputs_make_one_run() {
        let runs = in_runs(&[1, 2, 3], 10, <[i32]>::len);
        assert_eq!(runs, vec![3]);
    }

    #[test]
    fn owned_runs_come_back_in_input_order() {
        let items: Vec<String> = (0..1000).map(|item| item.to_string()).collect();
        let runs = in_owned_runs(items.clone(), 10, |run| run);
        assert!(runs.len() > 1);
        assert_eq!(runs.into_iter().flatten().collect::<Vec<_>>(), items);
        let empty = in_owned_runs(Vec::<String>::new(), 10, |run| run.len());
        assert!(empty.is_empty());
    }

    #[test]
    fn each_item_comes_back_in_input_order() {
        let items: Vec<usize> = (0..100).collect();
        let doubled = each(&items, |item| {
            // Uneven work, so the threads take different shares.
            std::thread::sleep(std::time::Duration::from_micros((*item as u64 % 7) * 50));
            item * 2
        });
        assert_eq!(doubled, (0..100).map(|item| item * 2).collect::<Vec<_>>());
        assert!(each(&[] as &[usize], |item| *item).is_empty());
    }

    #[test]
    fn the_pool_has_a_deep_stack() {
        fn depth(level: usize) -> usize {
            // ~1 KiB a frame: 20,000 levels need ~20 MiB, more than a default 2 MiB stack.
            let frame = std::hint::black_box([0u8; 1024]);
            if level == 0 {
                frame[0] as usize
            } else {
                depth(level - 1) + usize::from(frame[1])
            }
        }
        assert_eq!(each(&[20_000], |levels| depth(*levels)), vec![0]);
    }
}
