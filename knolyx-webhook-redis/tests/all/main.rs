//! Tests of the Redis store against a real server (`KNOLYX_TEST_REDIS_URL`), and against
//! private `redis-server` processes for the failure and round-trip tests.

mod behaviour;
mod causes;
mod conformance;
mod failure;
mod model;
mod support;
