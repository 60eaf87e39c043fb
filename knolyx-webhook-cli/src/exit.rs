//! The process exit codes, as `--help` documents them.

use std::process::ExitCode;

/// Everything worked (for `send`: every delivery was answered 2xx, duplicates included).
pub const SUCCESS: u8 = 0;
/// The server answered with an error: a delivery got 4xx/5xx, or the API answered non-2xx
/// or with a body that could not be read; for the `inbox` commands, no such entry, an
/// entry that is not dead (`retry`), or the database answered with an error.
pub const REJECTED: u8 = 1;
/// Usage or configuration error (the code clap uses for a bad command line).
pub const USAGE: u8 = 2;
/// Transport failure: no HTTP response at all (connection refused, DNS, TLS, timeout); for
/// the `inbox` commands, the database could not be reached.
pub const TRANSPORT: u8 = 3;

/// Why a command failed, with the exit code that goes with it.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn rejected(message: impl Into<String>) -> Self {
        Self {
            code: REJECTED,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the failure on stderr and gives the exit code.
    pub(crate) fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        if let Some(hint) = self.hint {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(self.code)
    }
}
