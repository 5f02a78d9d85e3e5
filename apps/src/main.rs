//! The `knactor` binary: the CLI, with the example apps' reconcilers linked in.

fn main() -> std::process::ExitCode {
    knactor::cli::main(knactor_apps::registry(), knactor_apps::demos())
}
