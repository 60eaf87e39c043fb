//! The webhook security token from `--token`, `--token-file` or the environment, checked
//! with the receiver's own rule ([`SecretToken::new`]) before anything is sent.

use std::io::Read as _;
use std::path::Path;

use knolyx_webhook_core::SecretToken;

use crate::cli::TokenArgs;
use crate::exit::Failure;

/// The environment variable `send` reads the token from when no flag gives one.
pub(crate) const TOKEN_ENV: &str = "KNOLYX_WEBHOOK_TOKEN";

/// Largest `--token-file` read, in bytes: a token is one short line.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The token given with `--token` or `--token-file`, if any.
pub(crate) fn given(args: &TokenArgs) -> Result<Option<SecretToken>, Failure> {
    match (&args.token, &args.token_file) {
        (Some(token), _) => check(token.clone(), "--token").map(Some),
        (None, Some(path)) => {
            let from = from_file(path);
            check(read_file(path, &from)?, &from).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// The token given with `--token` or `--token-file`, else from [`TOKEN_ENV`].
pub(crate) fn given_or_env(args: &TokenArgs) -> Result<SecretToken, Failure> {
    if let Some(token) = given(args)? {
        return Ok(token);
    }
    match std::env::var_os(TOKEN_ENV) {
        Some(value) => {
            let text = value.into_string().map_err(|_| not_utf8(TOKEN_ENV))?;
            check(text, TOKEN_ENV)
        }
        None => Err(Failure::usage(format!(
            "no webhook security token: give --token TOKEN or --token-file PATH, or set \
             {TOKEN_ENV}"
        ))),
    }
}

/// Checks `text` with the receiver's rule; `from` says where it came from.
fn check(text: String, from: &str) -> Result<SecretToken, Failure> {
    SecretToken::new(text).map_err(|e| {
        Failure::usage(format!("{from}: {e}")).with_hint(
            "the receiver refuses such a token, so no delivery could ever match it: use \
             visible ASCII characters, with spaces only inside",
        )
    })
}

/// How a `--token-file` is named in messages.
fn from_file(path: &Path) -> String {
    if path == Path::new("-") {
        "--token-file - (stdin)".to_owned()
    } else {
        format!("--token-file {}", path.display())
    }
}

/// Reads a token file (`-` is stdin) and strips one trailing newline, nothing else.
fn read_file(path: &Path, from: &str) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_TOKEN_FILE + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_TOKEN_FILE + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure::usage(format!("cannot read {from}: {e}")))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(Failure::usage(format!(
            "{from} is larger than {} KiB: that is not a webhook security token",
            MAX_TOKEN_FILE / 1024
        )));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| not_utf8(from))?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

fn not_utf8(from: &str) -> Failure {
    Failure::usage(format!(
        "{from}: the webhook security token is not UTF-8 text"
    ))
}
