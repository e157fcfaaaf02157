//! From a listing of a discovery store to "the instances of endpoint X", for drivers that read
//! the store themselves (a blocking client, a script, a test) instead of keeping an
//! [`super::InstanceSet`] fed by a watch.
//!
//! Both stores hand back `(key, value)` pairs with the same keys:
//!
//! - **etcd**: a range read of [`Query::prefix`] (for one endpoint,
//!   `v1/instances/{ns}/{comp}/{ep}/`) gives the keys as they are.
//! - **file store** (`DYN_FILE_KV=<root>`): every instance of every endpoint is one file in
//!   `<root>/`[`file_store_dir`]`(Bucket::Instances)` (that is `<root>/v1/instances`); the
//!   file's name is its key, escaped ([`file_store_key`] turns it back, and says `None` for
//!   the store's temporary files). Files are expired by mtime (see [`crate::kv::file`]), so a
//!   listing may hold an instance that died within the last TTL (10 s by default): a caller
//!   that cannot connect tries the next one.
//!
//! [`endpoint_instances`] then keeps the entries of one endpoint and parses them, sorted by
//! instance id; entries of the endpoint that do not parse are returned beside them, with why.
//!
//! ```
//! use dynrt_core::discovery::{Bucket, DiscoveryRecord, EndpointRecord, Transport};
//! use dynrt_core::discovery::listing::{endpoint_instances, file_store_dir, file_store_key};
//! use dynrt_core::kv::file::file_name;
//! use dynrt_core::names::{EndpointId, InstanceId};
//!
//! let endpoint: EndpointId = "dyn://demo.backend.generate".parse()?;
//! let record = DiscoveryRecord::from(EndpointRecord::new(&endpoint, InstanceId(0x2a),
//!     Transport::Tcp("127.0.0.1:41233/2a/demo/backend/generate".into())));
//! // What `std::fs::read_dir(root.join(file_store_dir(Bucket::Instances)))` would yield:
//! let name = file_name("demo/backend/generate/2a");
//! assert_eq!(file_store_dir(Bucket::Instances), "v1/instances");
//! let key = file_store_key(Bucket::Instances, &name).expect("not a temporary file");
//! let listing = endpoint_instances(&endpoint, [(key, record.to_json())]);
//! assert!(listing.skipped.is_empty());
//! let tcp = listing.instances[0].tcp().expect("a TCP instance");
//! assert_eq!(tcp.addr.to_string(), "127.0.0.1:41233");
//! assert_eq!(tcp.route_str(), Some("2a/demo/backend/generate"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use thiserror::Error;

use super::instance::{Instance, InstanceAddress};
use super::keys::{Bucket, DiscoveryKey, KeyError, Query};
use super::record_parser::EndpointRecordParser;
use super::records::RecordError;
use crate::kv::file::{is_temp_file_name, key_from_file_name};
use crate::names::{EndpointId, TcpTransport};

/// The directory of `bucket` under a file store's root (`DYN_FILE_KV`): its name as a relative
/// path, e.g. `v1/instances`.
#[must_use]
pub fn file_store_dir(bucket: Bucket) -> &'static str {
    bucket.name()
}

/// The discovery key of the file `file_name` found in [`file_store_dir`]`(bucket)`, or `None`
/// for the store's temporary files (which listings skip).
#[must_use]
pub fn file_store_key(bucket: Bucket, file_name: &str) -> Option<String> {
    if is_temp_file_name(file_name) {
        return None;
    }
    Some(format!(
        "{}{}",
        bucket.prefix(),
        key_from_file_name(file_name)
    ))
}

/// Why an entry of the endpoint was left out of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ListingError {
    /// The key is under the endpoint's prefix but is not an instance key.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The value is not an endpoint record of that instance.
    #[error("instance record '{key}': {source}")]
    Record {
        /// The key.
        key: String,
        /// What is wrong with the value.
        source: RecordError,
    },
}

/// The instances of one endpoint found in a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The instances whose records parse, sorted by id.
    pub instances: Vec<Instance>,
    /// Entries of the endpoint that could not be read, with why.
    pub skipped: Vec<ListingError>,
}

impl Listing {
    /// The instances that serve dynrt's mux protocol over TCP (the ones a mux client can
    /// call), with their transports.
    pub fn mux_instances(&self) -> impl Iterator<Item = (&Instance, &TcpTransport)> {
        self.instances
            .iter()
            .filter(|i| i.mux.is_some())
            .filter_map(|i| i.tcp().map(|t| (i, t)))
    }
}

impl Instance {
    /// The TCP transport (address and route) if the instance serves the TCP request plane.
    #[must_use]
    pub fn tcp(&self) -> Option<&TcpTransport> {
        match &self.address {
            InstanceAddress::Tcp(t) => Some(t),
            InstanceAddress::Nats(_) => None,
        }
    }
}

/// The instances of `endpoint` among `entries` (`(key, value)` pairs from an etcd range read
/// or a file-store listing; other endpoints' entries are ignored).
pub fn endpoint_instances<K, V>(
    endpoint: &EndpointId,
    entries: impl IntoIterator<Item = (K, V)>,
) -> Listing
where
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    let query = Query::Endpoint(endpoint.clone());
    let parser = EndpointRecordParser::new(endpoint.clone());
    let mut listing = Listing::default();
    for (key, value) in entries {
        let key = key.as_ref();
        if !query.matches_key(key) {
            continue;
        }
        let id = match DiscoveryKey::parse(key) {
            Ok(DiscoveryKey::Instance { instance, .. }) => instance,
            Ok(_) => continue,
            Err(e) => {
                listing.skipped.push(e.into());
                continue;
            }
        };
        match parser.parse(value.as_ref(), id) {
            Ok(instance) => listing.instances.push(instance),
            Err(source) => listing.skipped.push(ListingError::Record {
                key: key.to_owned(),
                source,
            }),
        }
    }
    listing.instances.sort_by_key(|i| i.id);
    listing
}
