//! `wharf`: the gateway binary. Thin: parses the command line, loads the configuration and
//! calls the library.

mod cli;
mod config;
mod link;
mod logs;
mod numbers;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: under `wharf-bench ingest`, glibc's `malloc` and
/// `free` were the largest single cost left in the server's request threads (about 15 %,
/// `docs/benchmarks.md`). Its options are set before `main` (see [`allocator`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The allocators' options (mimalloc's, and glibc's for SQLite), set in the binary (not left
/// to the user's environment) and before the first allocation: mimalloc reserves its first
/// arena with the options in force at the first allocation, and Rust's runtime allocates
/// before `main` runs (the main thread's information), so they are set from an ELF
/// initializer, which runs before that.
mod allocator {
    use std::ffi::{c_int, c_long};

    // mimalloc's C API, linked in by the `mimalloc` crate. The option's number is
    // `mi_option_arena_eager_commit` in `mimalloc.h` (4 in v2 and v3; the crate builds v3).
    // Should it ever change, the idle-footprint test of this binary fails.
    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }
    const ARENA_EAGER_COMMIT: c_int = 4;

    // glibc's allocator, which SQLite's C code uses (only Rust's allocations go to mimalloc).
    #[cfg(target_env = "gnu")]
    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    /// `M_ARENA_MAX` in glibc's `malloc.h`.
    #[cfg(target_env = "gnu")]
    const M_ARENA_MAX: c_int = -8;

    /// Arenas are committed as they are used rather than all at once when reserved. By
    /// default mimalloc commits each arena (1 GiB of address space) eagerly on Linux and
    /// advises the kernel to back it with transparent huge pages, so each 2 MiB of it touched
    /// at start became a resident huge page: an idle server held about 14 MiB more
    /// anonymous memory, and ingest throughput did not depend on it (`docs/benchmarks.md`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    extern "C" fn configure() {
        // SAFETY: writes mimalloc's option table, once, while the process is still
        // single-threaded (before `main`).
        unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) };
        // glibc gives each thread that allocates its own arena (a heap of its own, up to 8
        // per core): SQLite's connection threads each held one. Two arenas for all of them.
        // SAFETY: a documented glibc tunable, set before any thread is started.
        #[cfg(target_env = "gnu")]
        unsafe {
            mallopt(M_ARENA_MAX, 2)
        };
    }

    /// Run by the C runtime's start-up (`__libc_start_main`) after mimalloc's own
    /// initializer (priority 101) and before Rust's runtime. Elsewhere than Linux the
    /// defaults apply.
    #[cfg(target_os = "linux")]
    #[used]
    #[unsafe(link_section = ".init_array")]
    static CONFIGURE: extern "C" fn() = configure;
}
