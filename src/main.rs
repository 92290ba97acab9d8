// mimalloc: an import allocates and frees millions of small strings; glibc's malloc
// spent ~14% of a 1M-row import in malloc/free (perf, ARCHITECTURE.md#performance).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    gleaner::cli::main()
}

/// mimalloc's `mi_option_purge_delay` (its v3 `mi_option_e`, which the `mimalloc`
/// crate builds by default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Freed memory stays with the process instead of going back to the OS a moment later.
/// An import frees the parse trees of one phase while the next allocates as much: with
/// purging, the kernel zeroed the same pages again and again (a third of a 1M-row
/// import's CPU in `clear_page_erms`). gleaner's processes are batch jobs or a browser
/// whose memory is bounded by its peak anyway.
fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; mimalloc reads it on every purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_option_is_the_one_named() {
        // mimalloc v3's default purge_delay is 1000 (ms, `options.c`): a wrong index
        // would read some other option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
        keep_freed_memory();
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, -1);
    }
}
