//! The layer over real HTTP: an axum app on a loopback port, a real client.

mod concurrency;
mod limits;
mod pipeline;
mod plain_hyper;
mod routing;
mod support;
