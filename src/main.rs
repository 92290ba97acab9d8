// mimalloc: an import allocates and frees millions of small strings; glibc's malloc
// spent ~14% of a 1M-row import in malloc/free (perf, ARCHITECTURE.md#performance).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gleaner::cli::main()
}
