//! The `knolyx-webhook` binary; see `knolyx-webhook --help`.

fn main() -> std::process::ExitCode {
    knolyx_webhook_cli::main()
}
