//! Tests of the PostgreSQL store against a real server (`KNOLYX_TEST_DATABASE_URL`), each
//! in its own table; the failure tests go through a proxy they can stop.

mod behaviour;
mod causes;
mod conformance;
mod failure;
mod inbox;
mod interleaving;
mod model;
mod pooler;
mod support;
mod transaction;
