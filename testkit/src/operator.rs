//! nkey users and NATS's decentralised ("operator mode") authentication, made from scratch for
//! a test: an operator, an account it signs and a user the account signs, as JWTs signed with
//! nkeys (ed25519), and the user's `.creds` file — what `nsc` would generate, without `nsc`.
//!
//! A NATS JWT is `base64url(header).base64url(claims).base64url(signature)`, the signature an
//! nkey signature of the first two parts by the issuer. The server checks the signature chain
//! (user ← account ← the operator it was configured with), the claim types and the limits;
//! it does not recompute `jti`, which here is only a unique id.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use serde_json::{Value, json};

/// A fresh nkey user: the nats-server configuration that admits it and its seed
/// (`NATS_AUTH_NKEY`).
pub fn nkey_user() -> (String, String) {
    let user = KeyPair::new_user();
    let config = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    (config, user.seed().expect("a new key pair has its seed"))
}

/// `nats` claims of an account without limits (the server reads an absent limit as 0).
fn account_claims() -> Value {
    json!({
        "type": "account",
        "version": 2,
        "limits": {
            "subs": -1, "data": -1, "payload": -1,
            "imports": -1, "exports": -1, "wildcards": true,
            "conn": -1, "leaf": -1
        }
    })
}

/// `nats` claims of a user allowed everything.
fn user_claims() -> Value {
    json!({
        "type": "user",
        "version": 2,
        "pub": {}, "sub": {},
        "subs": -1, "data": -1, "payload": -1
    })
}

/// A JWT about `subject` with `nats` claims, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let header = json!({ "typ": "JWT", "alg": "ed25519-nkey" });
    let claims = json!({
        "jti": format!("dynrt-{subject}"),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    );
    let signature = issuer
        .sign(signed.as_bytes())
        .expect("an nkey with its seed signs");
    format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// A user's `.creds` file: its JWT and its seed, in the decorated format the clients read.
fn creds(user_jwt: &str, user: &KeyPair) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().expect("a new key pair has its seed")
    )
}

/// An operator with one account and one user of it: the server configuration that trusts the
/// operator and knows the account (memory resolver), and the user's credentials file. Also a
/// stranger: a user of an account this operator never signed.
pub struct OperatorMode {
    dir: tempfile::TempDir,
}

impl OperatorMode {
    /// Makes the keys, the JWTs and the files.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dynrt-nats-operator-")
            .tempdir()
            .expect("creating a temp dir for operator-mode files");
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "dynrt-test-operator",
            json!({ "type": "operator", "version": 2 }),
        );
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "dynrt-test-account",
            account_claims(),
        );
        let user_jwt = jwt(
            &account,
            &user.public_key(),
            "dynrt-test-user",
            user_claims(),
        );
        // JetStream (on in every testkit server) needs the server's system account.
        let system = KeyPair::new_account();
        let system_jwt = jwt(&operator, &system.public_key(), "SYS", account_claims());

        // A user signed by an account of another operator.
        let (other_operator, other_account, stranger) = (
            KeyPair::new_operator(),
            KeyPair::new_account(),
            KeyPair::new_user(),
        );
        let _ = jwt(
            &other_operator,
            &other_account.public_key(),
            "stranger-account",
            account_claims(),
        );
        let stranger_jwt = jwt(
            &other_account,
            &stranger.public_key(),
            "stranger",
            user_claims(),
        );

        let write = |name: &str, contents: String| {
            std::fs::write(dir.path().join(name), contents)
                .unwrap_or_else(|e| panic!("writing {name}: {e}"));
        };
        write("operator.jwt", operator_jwt);
        write(
            "server.conf",
            format!(
                "operator: {:?}\nsystem_account: {}\nresolver: MEMORY\n\
                 resolver_preload: {{\n  {}: {:?}\n  {}: {:?}\n}}\n",
                dir.path().join("operator.jwt").display().to_string(),
                system.public_key(),
                account.public_key(),
                account_jwt,
                system.public_key(),
                system_jwt,
            ),
        );
        write("user.creds", creds(&user_jwt, &user));
        write("stranger.creds", creds(&stranger_jwt, &stranger));
        Self { dir }
    }

    /// The nats-server configuration file (`-c`).
    pub fn server_config(&self) -> PathBuf {
        self.dir.path().join("server.conf")
    }

    /// The user's credentials file (`NATS_AUTH_CREDENTIALS_FILE`).
    pub fn user_creds(&self) -> PathBuf {
        self.dir.path().join("user.creds")
    }

    /// Credentials of a user whose account the server does not trust.
    pub fn stranger_creds(&self) -> PathBuf {
        self.dir.path().join("stranger.creds")
    }
}
