//! The store's URL: which topology, which nodes, which credentials.
//!
//! - `redis://…`, `rediss://…`, `redis+unix://…` (anything [`redis::Client::open`] takes):
//!   one server;
//! - `redis+cluster://[user:pass@]host:port[,host:port…]` (`rediss+cluster://` for TLS): the
//!   seed nodes of a Redis Cluster;
//! - `redis+sentinel://[user:pass@]host:port[,host:port…]/MASTER_NAME[/DB]`
//!   (`rediss+sentinel://` for TLS): the sentinels, and the name of the master they monitor;
//!   the credentials and the database are the data nodes'.
//!
//! Errors name the problem, never the credentials.

use std::fmt::Write as _;

use knolyx_webhook_core::store::{StoreError, StoreErrorKind, StoreResult};
use redis::sentinel::SentinelNodeConnectionInfo;
use redis::{Client, ConnectionInfo, IntoConnectionInfo, RedisError, TlsMode};

/// The default port of a sentinel.
const SENTINEL_PORT: u16 = 26379;
/// The default port of a data node.
const REDIS_PORT: u16 = 6379;

/// What a store URL points at. No `Debug`: it holds credentials.
pub(crate) enum Target {
    /// One server (or a primary behind a failover endpoint).
    Single(Client),
    /// The seed nodes of a cluster.
    Cluster {
        nodes: Vec<ConnectionInfo>,
        /// `cluster host:port,…`, without credentials.
        shown: String,
    },
    /// Sentinels, and the master they know by a name.
    Sentinel(SentinelTarget),
}

/// The sentinels of a `redis+sentinel://` URL, and the master they monitor.
pub(crate) struct SentinelTarget {
    pub(crate) sentinels: Vec<ConnectionInfo>,
    /// The name the sentinels know the master by.
    pub(crate) master: String,
    /// The credentials, database and TLS mode of the data nodes.
    pub(crate) node: SentinelNodeConnectionInfo,
    /// `sentinel host:port,…/master[/db]`, without credentials.
    pub(crate) shown: String,
}

/// A URL the store cannot use: says what is wrong with it, never the URL itself.
fn invalid(problem: impl Into<String>) -> StoreError {
    StoreError::new(
        StoreErrorKind::Misconfigured,
        format!("invalid Redis URL: {}", problem.into()),
        None,
    )
}

/// Like [`invalid`], keeping the Redis error (which never holds the URL) as the source.
fn invalid_because(problem: impl Into<String>, source: RedisError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Misconfigured,
        format!("invalid Redis URL: {}", problem.into()),
        Some(source.into()),
    )
}

const SCHEMES: &str = "redis://, rediss://, redis+unix://, redis+cluster://, rediss+cluster://, \
                       redis+sentinel:// or rediss+sentinel://";

pub(crate) fn parse(url: &str) -> StoreResult<Target> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(format!("no scheme (expected {SCHEMES})")));
    };
    let (tls, sentinel) = match scheme {
        "redis+cluster" => (false, false),
        "rediss+cluster" => (true, false),
        "redis+sentinel" => (false, true),
        "rediss+sentinel" => (true, true),
        "redis" | "rediss" | "valkey" | "valkeys" | "redis+unix" | "valkey+unix" | "unix" => {
            return Client::open(url)
                .map(Target::Single)
                .map_err(|e| invalid_because(format!("cannot use this {scheme}:// URL"), e));
        }
        other => {
            let shown = if other
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                format!("unsupported scheme `{other}://`")
            } else {
                "unsupported scheme".to_owned()
            };
            return Err(invalid(format!("{shown} (expected {SCHEMES})")));
        }
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    if rest.contains('?') {
        return Err(invalid(format!(
            "query parameters are not supported in {scheme}:// URLs"
        )));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    if hosts.is_empty() {
        return Err(invalid(format!("no host in this {scheme}:// URL")));
    }
    let default_port = if sentinel { SENTINEL_PORT } else { REDIS_PORT };
    let hosts = hosts
        .split(',')
        .enumerate()
        .map(|(i, host)| with_port(host, i + 1, default_port))
        .collect::<StoreResult<Vec<String>>>()?;
    let node_scheme = if tls { "rediss" } else { "redis" };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    // One node's URL: `host` with the credentials (and the database) of the URL, for the
    // redis crate to parse (it percent-decodes the credentials).
    let node_url = |host: &str, userinfo: Option<&str>, db: &str| {
        let mut url = format!("{node_scheme}://");
        if let Some(userinfo) = userinfo {
            let _ = write!(url, "{userinfo}@");
        }
        let _ = write!(url, "{host}/{db}{fragment}");
        url
    };
    // Errors name a host by its position: a credential that was not percent-encoded may
    // have been taken for a host.
    let info = |i: usize, userinfo: Option<&str>, db: &str| {
        node_url(&hosts[i], userinfo, db)
            .into_connection_info()
            .map_err(|e| invalid_because(format!("cannot use host {} of the list", i + 1), e))
    };

    if !sentinel {
        if !matches!(path, "" | "0") {
            return Err(invalid(
                "a database in a redis+cluster:// URL: Redis Cluster has only database 0",
            ));
        }
        let nodes = (0..hosts.len())
            .map(|i| info(i, userinfo, ""))
            .collect::<StoreResult<Vec<_>>>()?;
        let shown = format!("cluster {}", hosts.join(","));
        return Ok(Target::Cluster { nodes, shown });
    }

    let path = path.strip_suffix('/').unwrap_or(path);
    let (master, db) = path.split_once('/').unwrap_or((path, ""));
    if master.is_empty() {
        return Err(invalid(format!(
            "no master name in this {scheme}:// URL (expected {scheme}://host:port[,host:port…]/MASTER_NAME)"
        )));
    }
    if !db.is_empty() && db.parse::<i64>().is_err() {
        return Err(invalid(
            "the database after the master name must be a number",
        ));
    }
    // The sentinels take no credentials: those of the URL are the data nodes'.
    let sentinels = (0..hosts.len())
        .map(|i| info(i, None, ""))
        .collect::<StoreResult<Vec<_>>>()?;
    let data = info(0, userinfo, db)?;
    let mut node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(data.redis_settings().clone());
    if tls {
        let insecure = fragment == "#insecure";
        node = node.set_tls_mode(if insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        });
    }
    let mut shown = format!("sentinel {}/{master}", hosts.join(","));
    if !db.is_empty() {
        let _ = write!(shown, "/{db}");
    }
    Ok(Target::Sentinel(SentinelTarget {
        sentinels,
        master: master.to_owned(),
        node,
        shown,
    }))
}

/// `host` (the `position`th of the list, from 1) with its port checked, or `default` added.
fn with_port(host: &str, position: usize, default: u16) -> StoreResult<String> {
    if host.is_empty() {
        return Err(invalid(format!(
            "an empty host at position {position} of the host list"
        )));
    }
    // `[v6]:port`, `[v6]`, `name:port` or `name`.
    let port = match host.rsplit_once(':') {
        Some((name, port))
            if !name.ends_with(':') && (!host.starts_with('[') || name.ends_with(']')) =>
        {
            Some(port)
        }
        _ => None,
    };
    match port {
        None => Ok(format!("{host}:{default}")),
        Some(port) if port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(host.to_owned()),
        Some(_) => Err(invalid(format!(
            "an invalid port in host {position} of the list"
        ))),
    }
}
