//! `wharf`: the gateway binary. Thin: parses the command line, loads the configuration and
//! calls the library.

mod cli;
mod config;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's allocator: under `wharf-bench ingest`, glibc's `malloc` and
/// `free` were the largest single cost left in the server's request threads (about 15 %,
/// `docs/benchmarks.md`).
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
