//! Discovery: the records processes publish, where they are stored, and the instance set a
//! client keeps from a watch.
//!
//! Everything here is compatible with dynamo-runtime 1.6.1, so a dynrt worker shows up to
//! Dynamo frontends watching the same etcd (or directory), and the other way round:
//!
//! - [`records`]: the JSON records ([`DiscoveryRecord`] and its four kinds), byte for byte as
//!   1.6.1 writes them, plus dynrt's optional `"dynrt"` capability field;
//! - [`keys`]: buckets, keys ([`DiscoveryKey`]) and queries as key prefixes ([`Query`]);
//! - [`InstanceSet`]: the state machine a client feeds with the watch of one endpoint;
//! - [`listing`]: a one-off listing (etcd range read, file-store directory) turned into the
//!   instances of one endpoint, for drivers without a watch.
//!
//! ## What a backend driver calls
//!
//! Registering: build an [`EndpointRecord`] (or another record), store
//! [`DiscoveryRecord::to_json`] under [`DiscoveryRecord::key`] with create-if-absent under the
//! process lease. Listing and watching: read or watch [`Query::prefix`], filter with
//! [`Query::matches_key`], parse values with [`DiscoveryRecord::from_json`]. A client of one
//! endpoint builds an [`InstanceSet`] and feeds it the watch of [`InstanceSet::prefix`]:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dynrt_core::discovery::{EndpointRecord, InstanceEvent, InstanceSet, Transport};
//! use dynrt_core::discovery::DiscoveryRecord;
//! use dynrt_core::names::{EndpointId, InstanceId};
//!
//! let endpoint: EndpointId = "dyn://demo.backend.generate".parse()?;
//! let record = EndpointRecord::new(&endpoint, InstanceId(0x2a), Transport::Tcp(
//!     "10.0.0.5:41233/2a/demo/backend/generate".into()));
//! let record = DiscoveryRecord::from(record);
//!
//! let t0 = Instant::now();
//! let mut set = InstanceSet::new(endpoint, Duration::from_secs(5));
//! let skipped = set.handle_snapshot([(record.key(), record.to_json())], t0);
//! assert!(skipped.is_empty());
//! while let Some(event) = set.poll_event() {
//!     assert!(matches!(event, InstanceEvent::Added(ref i) if i.id == InstanceId(0x2a)));
//! }
//! set.report_down(InstanceId(0x2a), t0);
//! assert_eq!(set.available().count(), 0);
//! let deadline = set.poll_timeout().expect("one instance is down");
//! set.handle_timeout(deadline);
//! assert_eq!(set.poll_event(), Some(InstanceEvent::Down(InstanceId(0x2a))));
//! assert_eq!(set.poll_event(), Some(InstanceEvent::Restored(InstanceId(0x2a))));
//! assert_eq!(set.available().count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod instance;
mod instance_set;
pub mod keys;
pub mod listing;
mod record_parser;
pub mod records;

pub use instance::{Instance, InstanceAddress};
pub use instance_set::{
    DEFAULT_RECONCILE_INTERVAL, DownReport, InstanceEvent, InstanceSet, WatchError,
};
pub use keys::{Bucket, DiscoveryKey, KeyError, Query, instance_key};
pub use record_parser::EndpointRecordParser;
pub use records::{
    DeviceType, DiscoveryRecord, DynrtCapabilities, EndpointRecord, EventChannelRecord,
    EventEndpoint, EventScope, EventSourceRecord, EventTransport, MUX_PROTOCOL_VERSION,
    ModelRecord, PayloadCodec, RecordError, Transport,
};
