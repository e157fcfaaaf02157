//! The limit settings: dynrt's own bounds on what a peer can make a process hold and how long
//! it may take, which Dynamo 1.6.1 does not have. Each must be a whole number of at least 1
//! (a zero limit or timer would refuse everything, or make a connection spin), and a few have a
//! larger minimum, said in the error. The defaults are the library's
//! ([`crate::conn::ConnConfig`], [`crate::router::RetryConfig`], and the adapters' servers,
//! which take theirs from the `DEFAULT_*` constants here).

use std::num::NonZeroU32;

use super::parse::{ConfigError, Problem, Settings};
use super::vars::*;
use super::{DistributedConfig, SystemConfig, TcpConfig};
use crate::router::RetryConfig;
use crate::wire::mux::MIN_MAX_FRAME_SIZE;

/// Default cap on connections a request-plane server holds at once.
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;
/// Default cap on connections the system status server holds at once.
pub const DEFAULT_SYSTEM_MAX_CONNECTIONS: usize = 1024;
/// Default time a status-server connection has to send a whole request head.
pub const DEFAULT_SYSTEM_HEADER_READ_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(5);
/// Default time a status-server request has to deliver its body.
pub const DEFAULT_SYSTEM_BODY_READ_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(10);
/// Default cap on a status-server request head, in bytes.
pub const DEFAULT_SYSTEM_MAX_HEADER_BYTES: usize = 16 * 1024;
/// The smallest `DYN_SYSTEM_MAX_HEADER_BYTES`: a probe's request line and `Host` header fit.
pub const MIN_SYSTEM_MAX_HEADER_BYTES: u64 = 1024;

/// Reads the `DYN_TCP_*` limits into `tcp`.
pub(super) fn parse_tcp(s: &Settings, tcp: &mut TcpConfig) -> Result<(), ConfigError> {
    let queued = bytes_at_least(
        s,
        DYN_TCP_MAX_QUEUED_BYTES,
        u64::from(tcp.max_queued_bytes),
        u64::from(MIN_MAX_FRAME_SIZE),
        "one frame of the smallest size must fit",
    )?;
    tcp.max_queued_bytes = u32::try_from(queued)
        .map_err(|_| too_big(s, DYN_TCP_MAX_QUEUED_BYTES, u32::MAX.into(), "bytes"))?;
    tcp.stall_timeout = s.timeout(DYN_TCP_STALL_TIMEOUT, tcp.stall_timeout)?;
    tcp.frame_timeout = s.timeout(DYN_TCP_FRAME_TIMEOUT, tcp.frame_timeout)?;
    tcp.max_connections = connections(s, DYN_TCP_MAX_CONNECTIONS, tcp.max_connections)?;
    if s.get(DYN_TCP_MAX_PROCESS_OUTPUT_BYTES).is_some() {
        tcp.max_process_output_bytes = Some(bytes_at_least(
            s,
            DYN_TCP_MAX_PROCESS_OUTPUT_BYTES,
            0,
            u64::from(MIN_MAX_FRAME_SIZE),
            "one frame of the smallest size must fit",
        )?);
    }
    Ok(())
}

/// Reads the `DYN_SYSTEM_*` limits into `system`.
pub(super) fn parse_system(s: &Settings, system: &mut SystemConfig) -> Result<(), ConfigError> {
    system.max_connections = connections(s, DYN_SYSTEM_MAX_CONNECTIONS, system.max_connections)?;
    system.header_read_timeout =
        s.timeout(DYN_SYSTEM_HEADER_READ_TIMEOUT, system.header_read_timeout)?;
    system.body_read_timeout = s.timeout(DYN_SYSTEM_BODY_READ_TIMEOUT, system.body_read_timeout)?;
    let head = bytes_at_least(
        s,
        DYN_SYSTEM_MAX_HEADER_BYTES,
        system.max_header_bytes as u64,
        MIN_SYSTEM_MAX_HEADER_BYTES,
        "a probe's request head must fit",
    )?;
    system.max_header_bytes = usize::try_from(head)
        .map_err(|_| too_big(s, DYN_SYSTEM_MAX_HEADER_BYTES, usize::MAX as u64, "bytes"))?;
    Ok(())
}

/// Reads `DYN_REQUEST_MAX_ATTEMPTS` into `c.request_retry`.
pub(super) fn parse_retry(s: &Settings, c: &mut DistributedConfig) -> Result<(), ConfigError> {
    let default = u64::from(c.request_retry.max_attempts.get());
    let n = s.positive(DYN_REQUEST_MAX_ATTEMPTS, default, Problem::NotANumber)?;
    let n = u32::try_from(n)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| too_big(s, DYN_REQUEST_MAX_ATTEMPTS, u32::MAX.into(), "attempts"))?;
    c.request_retry = RetryConfig::new(n);
    Ok(())
}

fn bytes_at_least(
    s: &Settings,
    var: &'static str,
    default: u64,
    min: u64,
    why: &'static str,
) -> Result<u64, ConfigError> {
    let n = s.positive(var, default, Problem::NotBytes)?;
    if n < min {
        return Err(s.error(
            var,
            Problem::BelowMinimum {
                min,
                unit: "bytes",
                why,
            },
        ));
    }
    Ok(n)
}

fn connections(s: &Settings, var: &'static str, default: usize) -> Result<usize, ConfigError> {
    let n = s.positive(var, default as u64, Problem::NotANumber)?;
    usize::try_from(n).map_err(|_| too_big(s, var, usize::MAX as u64, "connections"))
}

fn too_big(s: &Settings, var: &'static str, max: u64, unit: &'static str) -> ConfigError {
    s.error(var, Problem::AboveMaximum { max, unit })
}
