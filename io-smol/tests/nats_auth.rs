//! NATS credentials and TLS on smol (async-nats on the adapter's tokio bridge), each against a real nats-server set up for it by
//! dynrt-testkit. The scenarios are shared with dynrt-tokio: `dynrt_io::testing::nats_auth`.

#![cfg(feature = "nats")]

use dynrt_io::testing::nats_auth as scenario;
use dynrt_smol::SmolRuntime;
use dynrt_testkit::{NatsServer, OperatorMode, TlsFiles};

#[test]
fn user_and_password_from_the_settings() {
    let nats = NatsServer::start_with_user("alice", "s3cret");
    smol::block_on(scenario::user_and_password_from_the_settings(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}

#[test]
fn token_from_the_settings() {
    let nats = NatsServer::start_with_token("t0ken");
    smol::block_on(scenario::token_from_the_settings(
        &SmolRuntime::new(),
        &nats.url(),
        "t0ken",
    ));
}

#[test]
fn nkey_from_the_settings() {
    let (nats, seed) = NatsServer::start_with_nkey();
    smol::block_on(scenario::nkey_from_the_settings(
        &SmolRuntime::new(),
        &nats.url(),
        &seed,
    ));
}

#[test]
fn credentials_file_from_the_settings() {
    let operator = OperatorMode::generate();
    let nats = NatsServer::start_in_operator_mode(&operator);
    smol::block_on(scenario::credentials_file_from_the_settings(
        &SmolRuntime::new(),
        &nats.url(),
        &operator.user_creds(),
        &operator.stranger_creds(),
    ));
}

#[test]
fn tls_from_the_settings() {
    let (files, other) = (TlsFiles::generate(), TlsFiles::generate());
    let nats = NatsServer::start_with_tls(&files, false);
    smol::block_on(scenario::tls_from_the_settings(
        &SmolRuntime::new(),
        &nats.tls_url(),
        &files.ca(),
        &other.ca(),
    ));
}

#[test]
fn mutual_tls_from_the_settings() {
    let files = TlsFiles::generate();
    let nats = NatsServer::start_with_tls(&files, true);
    smol::block_on(scenario::mutual_tls_from_the_settings(
        &SmolRuntime::new(),
        &nats.tls_url(),
        &files.ca(),
        &files.client_cert(),
        &files.client_key(),
    ));
}

#[test]
fn unreadable_files_are_named() {
    let nats = NatsServer::start();
    smol::block_on(scenario::unreadable_files_are_named(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}
