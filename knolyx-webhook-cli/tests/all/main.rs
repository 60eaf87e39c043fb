//! End-to-end tests of the `knolyx-webhook` binary: every test runs the real binary
//! against servers started in the test on 127.0.0.1.

mod help;
mod inbox;
mod messages;
mod sandbox;
mod send;
mod store;
mod support;
mod token_input;
mod url_credentials;
mod webhooks;
