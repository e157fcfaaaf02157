//! Metadata artifact paths: `/v1/metadata/{namespace}/{component}/{endpoint}/{model_slug}/{model_suffix}/{*filename}`.
//!
//! A worker that self-hosts its model metadata serves each registered file under that route
//! (1.6.1's `metadata_file_handler`). The route function turns the request path into an
//! [`ArtifactKey`] whose parts are validated [`ArtifactSegment`]s, so a driver can look the key
//! up in its artifact store — or even join it under a directory — without ever touching
//! unvalidated input.
//!
//! Each segment is percent-decoded once, then must be 1–255 bytes of `[A-Za-z0-9._+@-]`, must
//! not consist of dots only (`.`, `..`, `...`) and must not end with a dot (Windows drops trailing
//! dots, turning `..` look-alikes into `..`). So `/`, `\`, NUL, control characters, `:`, `%`
//! (what a double-encoded `%252e` leaves after one decoding) and every traversal spelling are
//! rejected. `filename` may span several segments (`tokenizer/vocab.json`), each checked alone.

use bytes::Bytes;

use super::Response;

/// The longest segment accepted (`NAME_MAX` on Linux).
pub const MAX_SEGMENT_LEN: usize = 255;

/// One validated path segment (see the module doc for the rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactSegment(String);

impl ArtifactSegment {
    /// Checks an already-decoded segment.
    pub fn new(decoded: &str) -> Result<Self, ArtifactPathError> {
        let reason = if decoded.is_empty() {
            Some("is empty")
        } else if decoded.len() > MAX_SEGMENT_LEN {
            Some("is longer than 255 bytes")
        } else if !decoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'@' | b'-'))
        {
            Some("has a character outside [A-Za-z0-9._+@-]")
        } else if decoded.bytes().all(|b| b == b'.') {
            Some("is only dots")
        } else if decoded.ends_with('.') {
            Some("ends with a dot")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ArtifactPathError::BadSegment { reason }),
            None => Ok(Self(decoded.to_owned())),
        }
    }

    /// The segment.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ArtifactSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated relative path of one or more segments (the `filename` part).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactPath(Vec<ArtifactSegment>);

impl ArtifactPath {
    /// The segments, at least one.
    pub fn segments(&self) -> &[ArtifactSegment] {
        &self.0
    }

    /// The segments joined by `/`: a relative path that cannot leave its directory.
    pub fn to_path_string(&self) -> String {
        let parts: Vec<&str> = self.0.iter().map(ArtifactSegment::as_str).collect();
        parts.join("/")
    }
}

/// Why a metadata path was refused. Its text never repeats the request's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactPathError {
    /// A `%` not followed by two hex digits, or decoding produced invalid UTF-8.
    #[error("a segment is not valid percent-encoded UTF-8")]
    BadEncoding,
    /// A decoded segment breaks the segment rule.
    #[error("a segment {reason}")]
    BadSegment {
        /// What is wrong.
        reason: &'static str,
    },
}

/// The identity of one self-hosted metadata file, all parts validated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactKey {
    /// Namespace of the serving endpoint.
    pub namespace: ArtifactSegment,
    /// Component of the serving endpoint.
    pub component: ArtifactSegment,
    /// The serving endpoint.
    pub endpoint: ArtifactSegment,
    /// The model's slug.
    pub model_slug: ArtifactSegment,
    /// The LoRA slug, or `_base`.
    pub model_suffix: ArtifactSegment,
    /// The file, relative to the model's metadata.
    pub filename: ArtifactPath,
}

/// A request for an artifact: look `key` up and answer with one of the three responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRequest {
    /// What to look up.
    pub key: ArtifactKey,
}

impl ArtifactRequest {
    /// 200 with the file's bytes.
    pub fn found(&self, bytes: Bytes) -> Response {
        Response {
            status: 200,
            content_type: Some("application/octet-stream"),
            allow: None,
            body: bytes,
        }
    }

    /// 404: no such artifact is registered.
    pub fn not_found(&self) -> Response {
        Response::text(404, "Not found")
    }

    /// 500: the artifact is registered but could not be read.
    pub fn read_failed(&self) -> Response {
        Response::text(500, "Failed to read file")
    }
}

/// Percent-decodes one segment.
pub(crate) fn percent_decode(raw: &str) -> Result<String, ArtifactPathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(ArtifactPathError::BadEncoding)?;
            let hi = (hex[0] as char).to_digit(16);
            let lo = (hex[1] as char).to_digit(16);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(ArtifactPathError::BadEncoding);
            };
            out.push(u8::try_from(hi * 16 + lo).expect("two hex digits fit a byte"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ArtifactPathError::BadEncoding)
}

fn segment(raw: &str) -> Result<ArtifactSegment, ArtifactPathError> {
    ArtifactSegment::new(&percent_decode(raw)?)
}

/// Parses the part after `/v1/metadata/`. `Ok(None)`: the route does not match (fewer than six
/// non-empty parts), which is a 404; `Err`: it matches but a part is invalid, which is a 400.
pub(crate) fn parse(rest: &str) -> Result<Option<ArtifactKey>, ArtifactPathError> {
    let mut parts = rest.splitn(6, '/');
    let mut next = || parts.next().filter(|p| !p.is_empty());
    let (Some(ns), Some(comp), Some(ep), Some(slug), Some(suffix), Some(file)) =
        (next(), next(), next(), next(), next(), next())
    else {
        return Ok(None);
    };
    let filename = file
        .split('/')
        .map(segment)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(ArtifactKey {
        namespace: segment(ns)?,
        component: segment(comp)?,
        endpoint: segment(ep)?,
        model_slug: segment(slug)?,
        model_suffix: segment(suffix)?,
        filename: ArtifactPath(filename),
    }))
}

/// The 400 for an invalid artifact path.
pub(crate) fn bad_path(e: &ArtifactPathError) -> Response {
    Response::text(400, &format!("Invalid metadata path: {e}"))
}
