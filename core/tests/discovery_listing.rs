//! `discovery::listing`: etcd and file-store entries become the instances of one endpoint.

use dynrt_core::discovery::listing::{
    ListingError, endpoint_instances, file_store_dir, file_store_key,
};
use dynrt_core::discovery::{Bucket, DiscoveryRecord, EndpointRecord, MUX_PROTOCOL_VERSION};
use dynrt_core::discovery::{DynrtCapabilities, Transport};
use dynrt_core::kv::file::{TEMP_FILE_PREFIX, file_name};
use dynrt_core::names::{EndpointId, InstanceId};

fn endpoint(url: &str) -> EndpointId {
    url.parse().unwrap()
}

fn entry(ep: &EndpointId, id: u64, port: u16, mux: bool) -> (String, Vec<u8>) {
    let route = format!("{id:x}/{}/{}/{}", ep.namespace, ep.component, ep.endpoint);
    let mut record = EndpointRecord::new(
        ep,
        InstanceId(id),
        Transport::Tcp(format!("127.0.0.1:{port}/{route}")),
    );
    if mux {
        record.dynrt = Some(DynrtCapabilities::with_mux(MUX_PROTOCOL_VERSION));
    }
    let record = DiscoveryRecord::from(record);
    (record.key(), record.to_json())
}

#[test]
fn etcd_entries_of_other_endpoints_are_ignored_and_instances_come_sorted() {
    let ours = endpoint("dyn://demo.backend.generate");
    let other = endpoint("dyn://demo.backend.generate2");
    let entries = vec![
        entry(&ours, 0x30, 9003, true),
        entry(&other, 0x10, 9001, true),
        entry(&ours, 0x20, 9002, false),
    ];
    let listing = endpoint_instances(&ours, entries);
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    let ids: Vec<u64> = listing.instances.iter().map(|i| i.id.0).collect();
    assert_eq!(ids, [0x20, 0x30]);
    // Only the one that announces the mux is callable by a mux client.
    let mux: Vec<_> = listing.mux_instances().collect();
    assert_eq!(mux.len(), 1);
    assert_eq!(mux[0].1.addr.port(), 9003);
    assert_eq!(mux[0].1.route_str(), Some("30/demo/backend/generate"));
}

#[test]
fn file_store_names_map_back_to_keys_and_temporary_files_are_skipped() {
    let ours = endpoint("dyn://demo.backend.generate");
    let (key, value) = entry(&ours, 0x2a, 9000, true);
    let name = file_name(key.strip_prefix("v1/instances/").unwrap());
    assert_eq!(name, "demo%2Fbackend%2Fgenerate%2F2a");
    assert_eq!(file_store_dir(Bucket::Instances), "v1/instances");
    assert_eq!(
        file_store_key(Bucket::Instances, &name).as_deref(),
        Some(key.as_str())
    );
    assert_eq!(
        file_store_key(Bucket::Instances, &format!("{TEMP_FILE_PREFIX}123")),
        None
    );
    let listing = endpoint_instances(
        &ours,
        [(file_store_key(Bucket::Instances, &name).unwrap(), value)],
    );
    assert_eq!(listing.instances.len(), 1);
    assert_eq!(listing.instances[0].id, InstanceId(0x2a));
}

#[test]
fn unreadable_entries_of_the_endpoint_are_reported_with_their_key() {
    let ours = endpoint("dyn://demo.backend.generate");
    let (good_key, good) = entry(&ours, 0x1, 9000, true);
    // A record stored under another instance's key, one that is not JSON, one bad key.
    let (_, wrong_id) = entry(&ours, 0x2, 9000, true);
    let entries: Vec<(String, Vec<u8>)> = vec![
        (good_key, good),
        ("v1/instances/demo/backend/generate/3".into(), wrong_id),
        (
            "v1/instances/demo/backend/generate/4".into(),
            b"{not json".to_vec(),
        ),
        (
            "v1/instances/demo/backend/generate/zz".into(),
            b"{}".to_vec(),
        ),
    ];
    let listing = endpoint_instances(&ours, entries);
    assert_eq!(listing.instances.len(), 1);
    assert_eq!(listing.skipped.len(), 3, "{:?}", listing.skipped);
    let texts: Vec<String> = listing.skipped.iter().map(ToString::to_string).collect();
    assert!(texts[0].contains("generate/3"), "{texts:?}");
    assert!(texts[1].contains("generate/4"), "{texts:?}");
    assert!(
        matches!(listing.skipped[2], ListingError::Key(_)),
        "{texts:?}"
    );
    assert!(texts[2].contains("zz"), "{texts:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever the mix of endpoints, ids and garbage values, each endpoint gets exactly its
    /// own parseable instances, sorted, and every unreadable entry of it is reported once.
    #[test]
    fn each_endpoint_gets_exactly_its_own_instances(
        entries in proptest::collection::vec(
            (0usize..3, 1u64..50, proptest::prelude::any::<bool>(),
             proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40))),
            0..30,
        ),
    ) {
        let endpoints = [
            endpoint("dyn://a.b.c"),
            endpoint("dyn://a.b.c2"),
            endpoint("dyn://a.bb.c"),
        ];
        // One entry per key, as a store holds them: the last write wins.
        let mut store = std::collections::BTreeMap::new();
        for (which, id, mux, garbage) in &entries {
            let (key, value) = entry(&endpoints[*which], *id, 9000, *mux);
            store.insert(key, (garbage.clone().unwrap_or(value), *which, *id, *mux, garbage.is_some()));
        }
        for (which, ep) in endpoints.iter().enumerate() {
            let listing = endpoint_instances(ep, store.iter().map(|(k, v)| (k, &v.0)));
            let mut good: Vec<u64> = store.values()
                .filter(|v| v.1 == which && !v.4).map(|v| v.2).collect();
            good.sort_unstable();
            let got: Vec<u64> = listing.instances.iter().map(|i| i.id.0).collect();
            let bad = store.values().filter(|v| v.1 == which && v.4).count();
            // Random bytes could, in principle, be a valid record of that instance.
            proptest::prop_assert!(got.len() + listing.skipped.len() == good.len() + bad);
            proptest::prop_assert!(good.iter().all(|id| got.contains(id)));
            proptest::prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            let mux: Vec<u64> = listing.mux_instances().map(|(i, _)| i.id.0).collect();
            let want_mux: Vec<u64> = store.values()
                .filter(|v| v.1 == which && !v.4 && v.3).map(|v| v.2).collect();
            proptest::prop_assert!(want_mux.iter().all(|id| mux.contains(id)));
        }
    }
}
