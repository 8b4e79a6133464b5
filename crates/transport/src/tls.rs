//! TLS material: the server's certificate (operator PEM files or generated with rcgen), its
//! SHA-256 fingerprint, and the client's trust (a pinned fingerprint or a CA bundle).
//!
//! Only rustls' `ring` provider is used, and it is passed explicitly to every builder, so the
//! process-wide default provider is never consulted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wire::ALPN;

/// Why TLS material could not be loaded or built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("reading PEM file {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A PEM file held no certificate.
    #[error("{path}: no certificate found")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// Writing a PEM file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// rcgen could not generate a certificate.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration (e.g. key does not match certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The rustls configuration has no cipher suite QUIC can use.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(String),
    /// A fingerprint string was not 64 hex digits.
    #[error("fingerprint {input:?}: {reason}")]
    BadFingerprint {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The ring crypto provider, the only one this crate uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 over a certificate's DER bytes, as agents pin it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        Self(Sha256::digest(cert.as_ref()).into())
    }

    fn matches(&self, other: &Fingerprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = TlsError;

    /// Parses 64 hex digits; `:` separators (as `openssl x509 -fingerprint` prints) are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| TlsError::BadFingerprint {
            input: s.to_owned(),
            reason,
        };
        let digits: Vec<u8> = s.bytes().filter(|&c| c != b':').collect();
        if digits.len() != 64 {
            return Err(bad("expected 64 hex digits (SHA-256)"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| bad("not ASCII"))?;
            out[i] = u8::from_str_radix(hex, 16).map_err(|_| bad("not a hex digit"))?;
        }
        Ok(Self(out))
    }
}

/// The server's certificate chain and private key.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: Option<String>,
    key_pem: Option<String>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain_len", &self.chain.len())
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Generates a self-signed certificate for `names` (DNS names or IP addresses).
    pub fn generate(names: &[&str]) -> Result<Self, TlsError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names)?;
        let key_der = certified.key_pair.serialize_der();
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key_der.into()),
            cert_pem: Some(certified.cert.pem()),
            key_pem: Some(certified.key_pair.serialize_pem()),
        })
    }

    /// Loads the operator's certificate chain and private key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = load_certs(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
            path: key.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            chain,
            key: key_der,
            cert_pem: None,
            key_pem: None,
        })
    }

    /// Loads the identity from `cert` and `key` when both exist; otherwise generates one for
    /// `names` and writes it there (so the fingerprint agents pin survives restarts).
    pub fn load_or_generate(cert: &Path, key: &Path, names: &[&str]) -> Result<Self, TlsError> {
        if cert.exists() && key.exists() {
            return Self::from_pem_files(cert, key);
        }
        let identity = Self::generate(names)?;
        identity.write_pem_files(cert, key)?;
        Ok(identity)
    }

    /// Writes a generated certificate and key as PEM files (so agents can pin them later).
    /// Does nothing for identities loaded from files.
    pub fn write_pem_files(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let write = |path: &Path, text: &str, private: bool| {
            write_file(path, text.as_bytes(), private).map_err(|source| TlsError::Write {
                path: path.to_owned(),
                source,
            })
        };
        if let (Some(c), Some(k)) = (&self.cert_pem, &self.key_pem) {
            write(cert, c, false)?;
            write(key, k, true)?;
        }
        Ok(())
    }

    /// SHA-256 fingerprint of the end-entity certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        // A chain is never empty: both constructors check it.
        Fingerprint::of(&self.chain[0])
    }

    /// The end-entity certificate, for clients that trust it as a CA root.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The quinn server configuration for this identity (TLS 1.3, ALPN `offload/1`, ring).
    pub fn quic_server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(quic)))
    }
}

/// Writes a file; a private one is readable by its owner only (on Unix).
fn write_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path)?.write_all(bytes)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// How the agent decides to trust the server.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Accept exactly the certificate with this SHA-256 fingerprint (self-signed servers).
    Pinned(Fingerprint),
    /// Accept certificates that chain to these roots and match the server name.
    Roots(Vec<CertificateDer<'static>>),
}

impl ServerTrust {
    /// Trusts the CA certificates in a PEM file.
    pub fn ca_pem_file(path: &Path) -> Result<Self, TlsError> {
        Ok(Self::Roots(load_certs(path)?))
    }
}

/// Remembers the fingerprint the server presented when it did not match, so the client can
/// report a precise error instead of a generic handshake failure.
#[derive(Debug, Default)]
pub(crate) struct MismatchLog {
    last: Mutex<Option<Fingerprint>>,
}

impl MismatchLog {
    pub(crate) fn take(&self) -> Option<Fingerprint> {
        self.last.lock().ok().and_then(|mut g| g.take())
    }

    fn record(&self, fp: Fingerprint) {
        if let Ok(mut g) = self.last.lock() {
            *g = Some(fp);
        }
    }
}

/// Accepts exactly one certificate, by SHA-256 fingerprint; signatures are still verified.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
    mismatches: Arc<MismatchLog>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The pin is the identity: the name and validity period of a self-signed certificate
        // add nothing once its exact bytes are fixed.
        let actual = Fingerprint::of(end_entity);
        if actual.matches(&self.expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            self.mismatches.record(actual);
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds the rustls part of the agent's QUIC configuration.
pub(crate) fn quic_client_crypto(
    trust: &ServerTrust,
    mismatches: Arc<MismatchLog>,
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut tls = match trust {
        ServerTrust::Pinned(expected) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                expected: *expected,
                provider,
                mismatches,
            }))
            .with_no_client_auth(),
        ServerTrust::Roots(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for cert in roots {
                store.add(cert.clone())?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parses_its_own_display_and_colon_form() {
        let id = ServerIdentity::generate(&["localhost"]).expect("rcgen");
        let fp = id.fingerprint();
        let text = fp.to_string();
        assert_eq!(text.parse::<Fingerprint>().expect("hex"), fp);
        let colons: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(colons.join(":").parse::<Fingerprint>().expect("colons"), fp);
        assert!("abc".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn pem_files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let id = ServerIdentity::generate(&["localhost", "127.0.0.1"]).expect("rcgen");
        id.write_pem_files(&cert, &key).expect("write");
        let loaded = ServerIdentity::from_pem_files(&cert, &key).expect("load");
        assert_eq!(loaded.fingerprint(), id.fingerprint());
        loaded.quic_server_config().expect("server config");
        let (cert2, key2) = (dir.path().join("c2.pem"), dir.path().join("k2.pem"));
        let first =
            ServerIdentity::load_or_generate(&cert2, &key2, &["localhost"]).expect("generated");
        let second =
            ServerIdentity::load_or_generate(&cert2, &key2, &["localhost"]).expect("loaded");
        assert_eq!(first.fingerprint(), second.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key2).expect("key").permissions().mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
        }
        let missing = ServerIdentity::from_pem_files(&dir.path().join("none"), &key);
        assert!(matches!(missing, Err(TlsError::Pem { .. })));
    }
}
