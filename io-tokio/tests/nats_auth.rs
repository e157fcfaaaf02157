//! NATS credentials and TLS on tokio, each against a real nats-server set up for it by
//! dynrt-testkit. The scenarios are shared with dynrt-smol: `dynrt_io::testing::nats_auth`.

#![cfg(feature = "nats")]

use dynrt_io::testing::nats_auth as scenario;
use dynrt_testkit::{NatsServer, OperatorMode, TlsFiles};
use dynrt_tokio::TokioRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_from_the_settings() {
    let nats = NatsServer::start_with_user("alice", "s3cret");
    scenario::user_and_password_from_the_settings(&TokioRuntime::current(), &nats.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_from_the_settings() {
    let nats = NatsServer::start_with_token("t0ken");
    scenario::token_from_the_settings(&TokioRuntime::current(), &nats.url(), "t0ken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_from_the_settings() {
    let (nats, seed) = NatsServer::start_with_nkey();
    scenario::nkey_from_the_settings(&TokioRuntime::current(), &nats.url(), &seed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_file_from_the_settings() {
    let operator = OperatorMode::generate();
    let nats = NatsServer::start_in_operator_mode(&operator);
    scenario::credentials_file_from_the_settings(
        &TokioRuntime::current(),
        &nats.url(),
        &operator.user_creds(),
        &operator.stranger_creds(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_the_settings() {
    let (files, other) = (TlsFiles::generate(), TlsFiles::generate());
    let nats = NatsServer::start_with_tls(&files, false);
    scenario::tls_from_the_settings(
        &TokioRuntime::current(),
        &nats.tls_url(),
        &files.ca(),
        &other.ca(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_from_the_settings() {
    let files = TlsFiles::generate();
    let nats = NatsServer::start_with_tls(&files, true);
    scenario::mutual_tls_from_the_settings(
        &TokioRuntime::current(),
        &nats.tls_url(),
        &files.ca(),
        &files.client_cert(),
        &files.client_key(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_files_are_named() {
    let nats = NatsServer::start();
    scenario::unreadable_files_are_named(&TokioRuntime::current(), &nats.url()).await;
}
