//! Integration tests of the Knolyx Webhook API client against a fake API on 127.0.0.1.

mod api;
mod errors;
mod responses;
mod server;
mod token;
mod url;
