//! The NATS client on smol (async-nats driven on the adapter's tokio bridge), against a real
//! nats-server (started per test on free ports). The scenarios are shared with dynrt-tokio:
//! `dynrt_io::testing::nats`.

#![cfg(feature = "nats")]

use std::sync::{Arc, Mutex};

use dynrt_io::testing::nats as scenario;
use dynrt_smol::SmolRuntime;
use dynrt_testkit::{NatsServer, free_port};

#[test]
fn the_client_follows_the_configuration() {
    let nats = NatsServer::start();
    smol::block_on(scenario::the_client_follows_the_configuration(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}

#[test]
fn kv_router_calls_reach_a_peer() {
    let nats = NatsServer::start();
    smol::block_on(scenario::kv_router_calls_reach_a_peer(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}

#[test]
fn without_nats_the_calls_say_so() {
    smol::block_on(scenario::without_nats_the_calls_say_so(&SmolRuntime::new()));
}

#[test]
fn unreachable_nats_stops_the_start() {
    let dead = format!("nats://127.0.0.1:{}", free_port());
    smol::block_on(scenario::unreachable_nats_stops_the_start(
        &SmolRuntime::new(),
        &dead,
    ));
}

#[test]
fn component_service_shows_in_srv() {
    let nats = NatsServer::start();
    smol::block_on(scenario::component_service_shows_in_srv(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}

#[test]
fn a_restarted_server_is_survived() {
    let nats = Arc::new(Mutex::new(NatsServer::start()));
    let url = nats.lock().unwrap().url();
    let (a, b) = (nats.clone(), nats.clone());
    smol::block_on(scenario::a_restarted_server_is_survived(
        &SmolRuntime::new(),
        &url,
        move || a.lock().unwrap().stop(),
        move || b.lock().unwrap().restart(),
    ));
}

#[test]
fn what_is_sent_right_after_subscribing_arrives() {
    let nats = NatsServer::start();
    smol::block_on(scenario::what_is_sent_right_after_subscribing_arrives(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}
