//! The NATS client on tokio, against a real nats-server (started per test on free ports).
//! The scenarios are shared with dynrt-smol: `dynrt_io::testing::nats`.

#![cfg(feature = "nats")]

use std::sync::{Arc, Mutex};

use dynrt_io::testing::nats as scenario;
use dynrt_testkit::{NatsServer, free_port};
use dynrt_tokio::TokioRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_the_configuration() {
    let nats = NatsServer::start();
    scenario::the_client_follows_the_configuration(&TokioRuntime::current(), &nats.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_router_calls_reach_a_peer() {
    let nats = NatsServer::start();
    scenario::kv_router_calls_reach_a_peer(&TokioRuntime::current(), &nats.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_the_calls_say_so() {
    scenario::without_nats_the_calls_say_so(&TokioRuntime::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_nats_stops_the_start() {
    let dead = format!("nats://127.0.0.1:{}", free_port());
    scenario::unreachable_nats_stops_the_start(&TokioRuntime::current(), &dead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_service_shows_in_srv() {
    let nats = NatsServer::start();
    scenario::component_service_shows_in_srv(&TokioRuntime::current(), &nats.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_survived() {
    let nats = Arc::new(Mutex::new(NatsServer::start()));
    let url = nats.lock().unwrap().url();
    let (a, b) = (nats.clone(), nats.clone());
    scenario::a_restarted_server_is_survived(
        &TokioRuntime::current(),
        &url,
        // Blocking calls (they wait for the process): on a blocking thread.
        move || tokio::task::block_in_place(|| a.lock().unwrap().stop()),
        move || tokio::task::block_in_place(|| b.lock().unwrap().restart()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_sent_right_after_subscribing_arrives() {
    let nats = NatsServer::start();
    scenario::what_is_sent_right_after_subscribing_arrives(&TokioRuntime::current(), &nats.url())
        .await;
}
