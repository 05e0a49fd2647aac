//! The instances of a DIVE coalition: the hub (USA) and its spokes, named by their codes, with the
//! port offsets DIVE derives for them (contract section 1) and the labels DIVE gives them.

/// The hub's instance code.
pub const HUB: &str = "USA";

/// DIVE's default password of its seeded test users (contract section 6).
pub const DEFAULT_TEST_PASSWORD: &str = "TestUser2025!Pilot";

/// Port offsets of the instance codes the suite knows (contract section 1).
pub const PORT_OFFSETS: &[(&str, u16)] = &[
    ("USA", 0),
    ("EST", 8),
    ("FRA", 10),
    ("DEU", 11),
    ("GBR", 31),
    ("TST", 200),
    ("DEV", 201),
    ("QAA", 202),
];

/// The port offset of a known instance code.
pub fn port_offset(code: &str) -> Option<u16> {
    PORT_OFFSETS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, o)| *o)
}

pub fn is_hub(code: &str) -> bool {
    code.eq_ignore_ascii_case(HUB)
}

/// The `instance` label of an instance's Prometheus target, and the word DIVE's container and job
/// names use for it: `hub` for the hub, else the lower-case code.
pub fn instance_label(code: &str) -> String {
    if is_hub(code) {
        "hub".to_string()
    } else {
        code.to_lowercase()
    }
}
