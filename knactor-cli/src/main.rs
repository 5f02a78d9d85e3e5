//! The `knactor` binary: the CLI, with the example apps' reconcilers and demos linked in.

/// mimalloc: the runtime allocates and frees many small JSON values per change, where it is
/// markedly faster than the system allocator (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    knactor_cli::main(knactor_apps::registry(), knactor_cli::demo::examples())
}
