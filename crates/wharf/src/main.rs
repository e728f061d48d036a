//! `wharf`: the gateway binary. Thin: parses the command line, loads the configuration and
//! calls the library.

mod cli;
mod config;
mod instances;
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
    use std::ffi::{c_int, c_long, c_void};

    // mimalloc's C API, linked in by the `mimalloc` crate. The option's number is
    // `mi_option_arena_eager_commit` in `mimalloc.h` (4 in v2 and v3; the crate builds v3).
    // Should it ever change, the idle-footprint test of this binary fails.
    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
    }
    const ARENA_EAGER_COMMIT: c_int = 4;

    // mimalloc's allocation functions, for SQLite's C code.
    unsafe extern "C" {
        fn mi_malloc(size: usize) -> *mut c_void;
        fn mi_free(p: *mut c_void);
        fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
        fn mi_usable_size(p: *const c_void) -> usize;
    }

    // SQLite's configuration (`sqlite3.h`), linked in by libsqlite3-sys (sqlx's SQLite).
    unsafe extern "C" {
        fn sqlite3_config(op: c_int, ...) -> c_int;
    }
    const SQLITE_CONFIG_MALLOC: c_int = 4;
    const SQLITE_CONFIG_MEMSTATUS: c_int = 9;

    /// `sqlite3_mem_methods`.
    #[repr(C)]
    struct MemMethods {
        x_malloc: unsafe extern "C" fn(c_int) -> *mut c_void,
        x_free: unsafe extern "C" fn(*mut c_void),
        x_realloc: unsafe extern "C" fn(*mut c_void, c_int) -> *mut c_void,
        x_size: unsafe extern "C" fn(*mut c_void) -> c_int,
        x_roundup: unsafe extern "C" fn(c_int) -> c_int,
        x_init: unsafe extern "C" fn(*mut c_void) -> c_int,
        x_shutdown: unsafe extern "C" fn(*mut c_void),
        app_data: *mut c_void,
    }

    // SAFETY: only function pointers and a null pointer, never written.
    unsafe impl Sync for MemMethods {}

    unsafe extern "C" fn sqlite_malloc(n: c_int) -> *mut c_void {
        // SAFETY: mimalloc's malloc; SQLite never asks for a negative size.
        unsafe { mi_malloc(usize::try_from(n).unwrap_or(0)) }
    }
    unsafe extern "C" fn sqlite_free(p: *mut c_void) {
        // SAFETY: `p` came from `sqlite_malloc` or `sqlite_realloc` (or is null).
        unsafe { mi_free(p) }
    }
    unsafe extern "C" fn sqlite_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as above.
        unsafe { mi_realloc(p, usize::try_from(n).unwrap_or(0)) }
    }
    unsafe extern "C" fn sqlite_size(p: *mut c_void) -> c_int {
        // SAFETY: as above.
        c_int::try_from(unsafe { mi_usable_size(p) }).unwrap_or(c_int::MAX)
    }
    unsafe extern "C" fn sqlite_roundup(n: c_int) -> c_int {
        (n + 7) & !7
    }
    unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
        0
    }
    unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

    /// SQLite's allocator: mimalloc, as for Rust. With glibc's (limited to two arenas for
    /// the idle footprint), SQLite's connection threads queued on the arenas' locks: a
    /// profile of the contacts list under 32 clients spent about a third of its time in
    /// futex waits and wakes, and glibc's malloc and free were the largest user-space costs.
    static SQLITE_MEMORY: MemMethods = MemMethods {
        x_malloc: sqlite_malloc,
        x_free: sqlite_free,
        x_realloc: sqlite_realloc,
        x_size: sqlite_size,
        x_roundup: sqlite_roundup,
        x_init: sqlite_init,
        x_shutdown: sqlite_shutdown,
        app_data: std::ptr::null_mut(),
    };

    // glibc's allocator, which C code other than SQLite's uses.
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
        // SAFETY: `sqlite3_config` before SQLite is initialized (nothing has opened a
        // database yet), single-threaded; `SQLITE_MEMORY` lives for the whole process. The
        // statistics of SQLite's memory use are off: keeping them takes a global mutex on
        // every allocation.
        unsafe {
            sqlite3_config(SQLITE_CONFIG_MALLOC, &raw const SQLITE_MEMORY);
            sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
        }
    }

    /// Run by the C runtime's start-up (`__libc_start_main`) after mimalloc's own
    /// initializer (priority 101) and before Rust's runtime. Elsewhere than Linux the
    /// defaults apply.
    #[cfg(target_os = "linux")]
    #[used]
    #[unsafe(link_section = ".init_array")]
    static CONFIGURE: extern "C" fn() = configure;
}
