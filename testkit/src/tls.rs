//! A throwaway certificate authority for a TLS nats-server: a CA, a server certificate for
//! `127.0.0.1`/`localhost` and a client certificate (mutual TLS), made by the `openssl` CLI in a
//! temporary directory that lives as long as the [`TlsFiles`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// What each certificate may be used for (x509v3 extensions, one per line).
const SERVER_EXTENSIONS: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
     basicConstraints=CA:FALSE\n\
     keyUsage=critical,digitalSignature\n\
     extendedKeyUsage=serverAuth\n";
const CLIENT_EXTENSIONS: &str = "basicConstraints=CA:FALSE\n\
     keyUsage=critical,digitalSignature\n\
     extendedKeyUsage=clientAuth\n";

/// A CA and the server and client certificates it signed (PEM files, P-256 keys, valid for
/// two days). Each call to [`Self::generate`] makes an unrelated CA: a second one is the
/// "wrong CA" of a test.
pub struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    /// Makes the CA and both certificates. Panics, saying what failed, when `openssl` is
    /// missing or refuses.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dynrt-tls-")
            .tempdir()
            .expect("creating a temp dir for TLS files");
        let files = Self { dir };
        files.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            // Unrelated CAs must differ by name too: a verifier that finds the issuer by name
            // would otherwise report a bad signature rather than an unknown issuer.
            &format!(
                "/CN=dynrt test CA {}",
                files
                    .dir
                    .path()
                    .file_name()
                    .map_or_else(|| "?".into(), |name| name.to_string_lossy().into_owned())
            ),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        files.issue("server", "/CN=127.0.0.1", SERVER_EXTENSIONS);
        files.issue("client", "/CN=dynrt test client", CLIENT_EXTENSIONS);
        files
    }

    /// A key and a certificate `{name}.key`, `{name}.pem` signed by the CA.
    fn issue(&self, name: &str, subject: &str, extensions: &str) {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(self.dir.path().join(&ext), extensions).expect("writing an extensions file");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            // Serials only need to differ between the certificates of one CA.
            if name == "server" { "2" } else { "3" },
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("running `openssl` to make test certificates: {e} (install the openssl CLI)")
            });
        assert!(
            output.status.success(),
            "openssl {} failed with {}:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The CA certificate (`NATS_TLS_CA_CERT_PATH`).
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server's certificate, for `127.0.0.1` and `localhost`.
    pub fn server_cert(&self) -> PathBuf {
        self.path("server.pem")
    }

    /// The server's private key.
    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// The client's certificate (`NATS_TLS_CLIENT_CERT_PATH`).
    pub fn client_cert(&self) -> PathBuf {
        self.path("client.pem")
    }

    /// The client's private key (`NATS_TLS_CLIENT_KEY_PATH`).
    pub fn client_key(&self) -> PathBuf {
        self.path("client.key")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory holding them.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
