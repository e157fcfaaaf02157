//! The 64-byte ZMTP 3 greeting: signature, version, mechanism, as-server flag, filler
//! (RFC 23/ZMTP §"The greeting").

use super::ZmtpError;

/// The greeting's length.
pub const GREETING_LEN: usize = 64;
/// The ZMTP version we announce (3.1: we answer PING and accept SUBSCRIBE/CANCEL commands).
pub const VERSION: (u8, u8) = (3, 1);

/// Our greeting for the NULL mechanism. `as_server` is informative only under NULL.
pub fn encode(as_server: bool) -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = VERSION.0;
    g[11] = VERSION.1;
    g[12..16].copy_from_slice(b"NULL");
    g[32] = u8::from(as_server);
    g
}

/// What the peer's greeting said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerGreeting {
    /// Major version (≥ 3).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Whether the peer declared itself the server.
    pub as_server: bool,
}

/// Checks as much of a greeting as has arrived, so a peer that is not ZMTP 3 is refused as soon
/// as its first wrong byte is seen (a ZMTP 1.0/2.0 peer never sends all 64 bytes).
pub fn check_prefix(bytes: &[u8]) -> Result<(), ZmtpError> {
    if let Some(&b) = bytes.first()
        && b != 0xFF
    {
        return Err(ZmtpError::BadSignature { offset: 0, byte: b });
    }
    if let Some(&b) = bytes.get(9)
        && b & 1 != 1
    {
        // Bit 0 of byte 9 set is what ZMTP 2+ requires; libzmq writes 0x7F.
        return Err(ZmtpError::BadSignature { offset: 9, byte: b });
    }
    if let Some(&major) = bytes.get(10)
        && major < 3
    {
        return Err(ZmtpError::UnsupportedVersion { major });
    }
    Ok(())
}

/// Parses a complete greeting.
pub fn parse(bytes: &[u8; GREETING_LEN]) -> Result<PeerGreeting, ZmtpError> {
    check_prefix(bytes)?;
    let mechanism = &bytes[12..32];
    let name_len = mechanism
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(mechanism.len());
    if &mechanism[..name_len] != b"NULL" || mechanism[name_len..].iter().any(|&b| b != 0) {
        return Err(ZmtpError::UnsupportedMechanism {
            mechanism: String::from_utf8_lossy(&mechanism[..name_len]).into_owned(),
        });
    }
    Ok(PeerGreeting {
        major: bytes[10],
        minor: bytes[11],
        as_server: bytes[32] != 0,
    })
}
