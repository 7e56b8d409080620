//! The `lvbak` binary: argument parsing lives in `lvbak_server::cli`.

fn main() -> std::process::ExitCode {
    lvbak_server::cli::main()
}
