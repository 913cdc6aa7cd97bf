//! A certificate authority made for one test Redis, and the server certificate it signed.

use std::path::PathBuf;

/// A test certificate authority and the server certificate it signed (for 127.0.0.1 and
/// localhost), as PEM files in the server's directory.
#[derive(Debug)]
pub struct Tls {
    /// The CA certificate, for `redis.tls_ca_file`.
    pub ca_file: PathBuf,
    /// The same certificate, for clients built in the test.
    pub ca_pem: Vec<u8>,
}

impl Tls {
    /// Makes the CA and the server certificate, writes them as PEM files into `dir`, and
    /// returns them with the `redis-server` arguments that serve them.
    #[cfg(feature = "client")]
    pub(crate) fn issue(dir: &std::path::Path) -> (Self, [String; 8]) {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "errand test CA");
        let ca = ca_params.self_signed(&ca_key).expect("self-signed ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).expect("write pem");
            p.to_string_lossy().into_owned()
        };
        let ca_file = write("ca.pem", ca.pem());
        let cert_file = write("server.pem", cert.pem());
        let key_file = write("server.key", key.serialize_pem());
        let args = [
            "--tls-cert-file",
            &cert_file,
            "--tls-key-file",
            &key_file,
            "--tls-ca-cert-file",
            &ca_file,
            "--tls-auth-clients",
            "no",
        ]
        .map(String::from);
        let tls = Self {
            ca_pem: ca.pem().into_bytes(),
            ca_file: ca_file.into(),
        };
        (tls, args)
    }
}
