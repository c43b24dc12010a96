//! The `benchscale` command. Thin on purpose: the CLI module parses
//! arguments, calls the library and maps results to exit codes.

fn main() -> std::process::ExitCode {
    benchscale::cli::main()
}
