//! How the allocator is set up before a command starts its threads, and told when a phase has freed
//! much.

/// Caps glibc's malloc arenas at one per core for the commands that run once and exit. Their
/// threads hand what they build to one another (the files are read on every core, the list on
/// the runtime's threads, the plan on the caller's), so glibc's default of eight arenas per core
/// keeps each thread's freed memory where no other thread reuses it: about a sixth of the peak
/// resident memory of `envform plan` at 30,000 environments (docs/src/contributing/benchmarks.md).
/// The server and the worker keep the default: their threads allocate at once, all the time.
pub(super) fn share_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets a tunable of the allocator; it is called before the
        // runtime starts any thread, and an arena cap it refuses leaves the default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Gives the pages of freed memory back to the system at a phase boundary of `plan` and `apply`:
/// the files' YAML trees, freed once the environments are read, were about a quarter of the peak
/// resident memory at 30,000 environments, and glibc keeps such pages (spread among what is still
/// in use, so its own trimming, from the top of the heap, does not reach them). What the next
/// phase allocates reuses the same addresses, so only what is touched again comes back.
pub(super) fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages to the system; it takes the allocator's own
    // locks, so it is safe while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}
