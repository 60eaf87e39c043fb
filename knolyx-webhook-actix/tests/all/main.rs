//! Integration tests of knolyx-webhook-actix over real HTTP: a real actix-web server on a
//! loopback port, a real client.

mod claim;
mod concurrency;
mod config;
mod expect;
mod pipeline;
mod rejections;
mod settle;
mod support;
