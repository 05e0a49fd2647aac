//! A throwaway certificate authority for one reference deployment: every HTTPS server of the
//! deployment presents a leaf for `localhost` / 127.0.0.1 signed by it, and the suite's client
//! trusts exactly this CA, as it trusts exactly DIVE's mkcert root on a live target.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

pub struct Pki {
    pub ca_pem: String,
    pub leaf_cert_pem: String,
    pub leaf_key_pem: String,
}

impl Pki {
    pub fn generate() -> Result<Pki, String> {
        let err = |e: rcgen::Error| format!("generating the reference CA: {e}");
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "DIVE resilience reference CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().map_err(err)?;
        let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(err)?;
        Ok(Pki {
            ca_pem: ca_cert.pem(),
            leaf_cert_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
        })
    }
}
