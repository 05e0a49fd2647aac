//! Layer 2, the infrastructure: how the suite reaches the world. Configuration (read once), the
//! only code that waits ([`poll`]), the HTTPS client, the only code that runs programs ([`exec`],
//! and the `./dive` builder on top of it), the Prometheus and AlertManager clients, and small
//! services of the operating system, and the open-model load generator. Imports only the
//! vocabulary.

pub mod alertmanager;
pub mod config;
pub mod crypto;
pub mod dive;
pub mod exec;
pub mod http;
pub mod keys;
pub mod load;
pub mod os;
pub mod poll;
pub mod prometheus;
pub mod throwaway;
