//! The coalition: the hub (USA) and every spoke code DIVE knows, with the host ports DIVE's
//! compose files bind for each (contract section 1), the clashes between them, and the labels DIVE
//! gives instances.
//!
//! DIVE gives every instance a port offset from the first of four tables that holds its code
//! (the same rules at v15a and HEAD):
//! - NATO: USA is the hub (0), then the other 31 members in alphabetical order of their English
//!   names, 1..=31;
//! - partners: AUS, NZL, JPN, KOR, ISR, UKR, 32..=37;
//! - test codes: TST, DEV, QAA, ... SEC, 200..=214;
//! - the other ISO 3166 alpha-3 codes DIVE lists (156): the sum of the three upper-case letters'
//!   ASCII values, modulo 160, plus 40. Nothing keeps these apart, so different codes can share an
//!   offset and with it every host port (see [`clashes`]).
//!
//! DIVE gives any other string hash-based ports with a warning; the suite refuses such a code
//! instead, because what it would test is not a deployment DIVE describes.

/// The hub's instance code.
pub const HUB: &str = "USA";

/// DIVE's default password of its seeded test users (contract section 6).
pub const DEFAULT_TEST_PASSWORD: &str = "TestUser2025!Pilot";

/// Which of DIVE's tables a code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Hub,
    Nato,
    Partner,
    Test,
    Iso,
}

/// NATO members other than the hub, in DIVE's order: by English name, so HRV follows CAN, DEU
/// follows FRA and GBR comes last. A code's offset is its place in this list, from 1.
const NATO_SPOKES: [&str; 31] = [
    "ALB", "BEL", "BGR", "CAN", "HRV", "CZE", "DNK", "EST", "FIN", "FRA", "DEU", "GRC", "HUN", "ISL", "ITA", "LVA",
    "LTU", "LUX", "MNE", "NLD", "MKD", "NOR", "POL", "PRT", "ROU", "SVK", "SVN", "ESP", "SWE", "TUR", "GBR",
];

/// Partner nations, from offset 32.
const PARTNERS: [&str; 6] = ["AUS", "NZL", "JPN", "KOR", "ISR", "UKR"];
const FIRST_PARTNER_OFFSET: u16 = 32;

/// DIVE's reserved codes for test instances, from offset 200.
const TEST_CODES: [&str; 15] = [
    "TST", "DEV", "QAA", "QAB", "STG", "DMO", "TRN", "SND", "ORF", "TMP", "LOC", "INT", "UAT", "PRF", "SEC",
];
const FIRST_TEST_OFFSET: u16 = 200;

/// The ISO 3166 alpha-3 codes DIVE lists besides its NATO and partner codes (156; not every
/// country: DIVE's list is incomplete), in alphabetical order.
const ISO_CODES: [&str; 156] = [
    "AFG", "AGO", "AND", "ARE", "ARG", "ARM", "ATG", "AUT", "AZE", "BDI", "BEN", "BFA", "BGD", "BHR", "BHS", "BIH",
    "BLR", "BLZ", "BOL", "BRA", "BRB", "BRN", "BTN", "BWA", "CAF", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG",
    "COL", "COM", "CPV", "CRI", "CUB", "CYP", "DJI", "DMA", "DOM", "DZA", "ECU", "EGY", "ERI", "ETH", "FJI", "FSM",
    "GAB", "GEO", "GHA", "GIN", "GMB", "GNB", "GNQ", "GRD", "GTM", "GUY", "HND", "HTI", "IDN", "IND", "IRL", "IRN",
    "IRQ", "JAM", "JOR", "KAZ", "KEN", "KGZ", "KHM", "KIR", "KNA", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE",
    "LKA", "LSO", "MAR", "MCO", "MDA", "MDG", "MDV", "MEX", "MHL", "MLI", "MMR", "MNG", "MOZ", "MRT", "MUS", "MWI",
    "MYS", "NAM", "NER", "NGA", "NIC", "NPL", "NRU", "OMN", "PAK", "PAN", "PER", "PHL", "PLW", "PNG", "PRK", "PRY",
    "PSE", "QAT", "RWA", "SAU", "SDN", "SEN", "SGP", "SLB", "SLE", "SLV", "SMR", "SOM", "SRB", "SSD", "STP", "SUR",
    "SWZ", "SYC", "SYR", "TCD", "TGO", "THA", "TJK", "TKM", "TLS", "TON", "TTO", "TUN", "TUV", "TWN", "TZA", "UGA",
    "URY", "UZB", "VAT", "VCT", "VEN", "VNM", "VUT", "WSM", "YEM", "ZAF", "ZMB", "ZWE",
];

/// An ISO code's offset: its letters' sum, modulo 160, plus 40 (75..=150 for three letters A-Z).
fn iso_offset(code: &str) -> u16 {
    let sum: u16 = code.bytes().map(u16::from).sum();
    sum % 160 + 40
}

/// A code's canonical (upper-case) spelling, its table and its offset.
fn lookup(code: &str) -> Option<(&'static str, Kind, u16)> {
    let place = |table: &'static [&'static str]| {
        table
            .iter()
            .position(|c| c.eq_ignore_ascii_case(code))
            .map(|i| (table[i], i as u16))
    };
    if HUB.eq_ignore_ascii_case(code) {
        return Some((HUB, Kind::Hub, 0));
    }
    if let Some((c, i)) = place(&NATO_SPOKES) {
        return Some((c, Kind::Nato, i + 1));
    }
    if let Some((c, i)) = place(&PARTNERS) {
        return Some((c, Kind::Partner, FIRST_PARTNER_OFFSET + i));
    }
    if let Some((c, i)) = place(&TEST_CODES) {
        return Some((c, Kind::Test, FIRST_TEST_OFFSET + i));
    }
    place(&ISO_CODES).map(|(c, _)| (c, Kind::Iso, iso_offset(c)))
}

/// The table a code comes from and its port offset, in any letter case; `None` for a code DIVE
/// does not list.
pub fn offset(code: &str) -> Option<(Kind, u16)> {
    lookup(code).map(|(_, kind, offset)| (kind, offset))
}

/// A known code in its canonical upper-case spelling (`fra` -> `FRA`).
pub fn canonical(code: &str) -> Option<&'static str> {
    lookup(code).map(|(c, _, _)| c)
}

/// The host ports of one instance's services, as its compose file publishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub frontend: u16,
    pub backend: u16,
    pub keycloak_https: u16,
    pub keycloak_http: u16,
    pub opa: u16,
    pub kas: u16,
}

impl Ports {
    /// The hub's: fixed defaults of its compose file, not derived from the offset (its KAS is
    /// 8085, where the formula would give 9000).
    pub const HUB: Ports = Ports {
        frontend: 3000,
        backend: 4000,
        keycloak_https: 8443,
        keycloak_http: 8080,
        opa: 8181,
        kas: 8085,
    };

    /// A spoke's, as DIVE's compose generator writes them at both commits.
    //
    // v15a's `get_instance_ports` helper prints other numbers for Keycloak http (8100 + o), OPA
    // (9100 + o) and KAS (10000 + o), and both commits' helper gives the hub KAS 9000: the
    // generator does not use those, so the suite follows what is deployed.
    pub fn of_spoke(offset: u16) -> Ports {
        Ports {
            frontend: 3000 + offset,
            backend: 4000 + offset,
            keycloak_https: 8443 + offset,
            keycloak_http: 8080 + offset,
            opa: 8181 + 10 * offset,
            kas: 9000 + offset,
        }
    }

    /// Every port with the name of its service.
    pub fn named(&self) -> [(&'static str, u16); 6] {
        [
            ("frontend", self.frontend),
            ("backend", self.backend),
            ("keycloak https", self.keycloak_https),
            ("keycloak http", self.keycloak_http),
            ("opa", self.opa),
            ("kas", self.kas),
        ]
    }
}

/// The host ports DIVE binds for an instance, in any letter case; `None` for an unknown code.
pub fn ports(code: &str) -> Option<Ports> {
    match offset(code)? {
        (Kind::Hub, _) => Some(Ports::HUB),
        (_, o) => Some(Ports::of_spoke(o)),
    }
}

/// Other host ports bound wherever the hub runs, at both commits: more of the hub's services, and
/// the shared monitoring stack that comes with it.
const HUB_SITE_PORTS: [(&str, u16); 8] = [
    ("keycloak management", 9000),
    ("opa metrics", 8182),
    ("opal server", 7002),
    ("prometheus", 9090),
    ("alertmanager", 9093),
    ("grafana", 3333),
    ("redis exporter", 9121),
    ("second redis exporter", 9122),
];

/// The 31 NATO spokes, in DIVE's order.
pub fn nato_spokes() -> impl Iterator<Item = &'static str> {
    NATO_SPOKES.iter().copied()
}

/// Every spoke code DIVE knows (208): NATO, partners, test codes, then ISO codes.
pub fn known_spokes() -> impl Iterator<Item = &'static str> {
    NATO_SPOKES
        .iter()
        .chain(&PARTNERS)
        .chain(&TEST_CODES)
        .chain(&ISO_CODES)
        .copied()
}

/// Host ports that the instances of `codes` would bind more than once, one line per instance or
/// pair of instances, e.g. `EST and SVN both bind host port 8451 (EST keycloak https, SVN opa)`.
/// The hub stands for its whole site (its other services and the monitoring stack). Unknown codes
/// and repeats of a code are ignored.
pub fn clashes(codes: &[&str]) -> Vec<String> {
    let mut instances: Vec<(&str, Vec<(&str, u16)>)> = Vec::new();
    for code in codes.iter().filter_map(|c| canonical(c)) {
        if instances.iter().any(|(c, _)| *c == code) {
            continue;
        }
        let mut bound = ports(code).map(|p| p.named().to_vec()).unwrap_or_default();
        if code == HUB {
            bound.extend(HUB_SITE_PORTS);
        }
        instances.push((code, bound));
    }
    let mut lines = Vec::new();
    for (i, (a, a_ports)) in instances.iter().enumerate() {
        let twice: Vec<String> = a_ports
            .iter()
            .enumerate()
            .flat_map(|(j, (x, p))| {
                a_ports[j + 1..]
                    .iter()
                    .filter(move |(_, q)| q == p)
                    .map(move |(y, _)| format!("{p} ({x}, {y})"))
            })
            .collect();
        if !twice.is_empty() {
            lines.push(format!("{a} binds host port {} twice", twice.join(", ")));
        }
        for (b, b_ports) in &instances[i + 1..] {
            let shared: Vec<String> = a_ports
                .iter()
                .flat_map(|(x, p)| {
                    b_ports.iter().filter(move |(_, q)| q == p).map(move |(y, _)| {
                        if x == y {
                            format!("{p} ({x})")
                        } else {
                            format!("{p} ({a} {x}, {b} {y})")
                        }
                    })
                })
                .collect();
            if !shared.is_empty() {
                let noun = if shared.len() == 1 { "port" } else { "ports" };
                lines.push(format!("{a} and {b} both bind host {noun} {}", shared.join(", ")));
            }
        }
    }
    lines
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

#[cfg(test)]
mod tests {
    use super::Kind::*;
    use super::*;

    /// Kind, code, offset, frontend, backend, keycloak https, keycloak http, OPA, KAS.
    type Row = (Kind, &'static str, u16, u16, u16, u16, u16, u16, u16);

    /// The ports DIVE's compose generator wrote for each code, taken once by running DIVE's own
    /// generator at d85d9ec4 and at 15a319e6: the numbers are the same at both commits. The hub's
    /// row is its compose file's fixed defaults.
    #[rustfmt::skip]
    const DIVE_COMPOSE: &[Row] = &[
        (Hub, "USA", 0, 3000, 4000, 8443, 8080, 8181, 8085),
        (Nato, "ALB", 1, 3001, 4001, 8444, 8081, 8191, 9001),
        (Nato, "BEL", 2, 3002, 4002, 8445, 8082, 8201, 9002),
        (Nato, "BGR", 3, 3003, 4003, 8446, 8083, 8211, 9003),
        (Nato, "CAN", 4, 3004, 4004, 8447, 8084, 8221, 9004),
        (Nato, "HRV", 5, 3005, 4005, 8448, 8085, 8231, 9005),
        (Nato, "CZE", 6, 3006, 4006, 8449, 8086, 8241, 9006),
        (Nato, "DNK", 7, 3007, 4007, 8450, 8087, 8251, 9007),
        (Nato, "EST", 8, 3008, 4008, 8451, 8088, 8261, 9008),
        (Nato, "FIN", 9, 3009, 4009, 8452, 8089, 8271, 9009),
        (Nato, "FRA", 10, 3010, 4010, 8453, 8090, 8281, 9010),
        (Nato, "DEU", 11, 3011, 4011, 8454, 8091, 8291, 9011),
        (Nato, "GRC", 12, 3012, 4012, 8455, 8092, 8301, 9012),
        (Nato, "HUN", 13, 3013, 4013, 8456, 8093, 8311, 9013),
        (Nato, "ISL", 14, 3014, 4014, 8457, 8094, 8321, 9014),
        (Nato, "ITA", 15, 3015, 4015, 8458, 8095, 8331, 9015),
        (Nato, "LVA", 16, 3016, 4016, 8459, 8096, 8341, 9016),
        (Nato, "LTU", 17, 3017, 4017, 8460, 8097, 8351, 9017),
        (Nato, "LUX", 18, 3018, 4018, 8461, 8098, 8361, 9018),
        (Nato, "MNE", 19, 3019, 4019, 8462, 8099, 8371, 9019),
        (Nato, "NLD", 20, 3020, 4020, 8463, 8100, 8381, 9020),
        (Nato, "MKD", 21, 3021, 4021, 8464, 8101, 8391, 9021),
        (Nato, "NOR", 22, 3022, 4022, 8465, 8102, 8401, 9022),
        (Nato, "POL", 23, 3023, 4023, 8466, 8103, 8411, 9023),
        (Nato, "PRT", 24, 3024, 4024, 8467, 8104, 8421, 9024),
        (Nato, "ROU", 25, 3025, 4025, 8468, 8105, 8431, 9025),
        (Nato, "SVK", 26, 3026, 4026, 8469, 8106, 8441, 9026),
        (Nato, "SVN", 27, 3027, 4027, 8470, 8107, 8451, 9027),
        (Nato, "ESP", 28, 3028, 4028, 8471, 8108, 8461, 9028),
        (Nato, "SWE", 29, 3029, 4029, 8472, 8109, 8471, 9029),
        (Nato, "TUR", 30, 3030, 4030, 8473, 8110, 8481, 9030),
        (Nato, "GBR", 31, 3031, 4031, 8474, 8111, 8491, 9031),
        (Partner, "AUS", 32, 3032, 4032, 8475, 8112, 8501, 9032),
        (Partner, "NZL", 33, 3033, 4033, 8476, 8113, 8511, 9033),
        (Partner, "JPN", 34, 3034, 4034, 8477, 8114, 8521, 9034),
        (Partner, "KOR", 35, 3035, 4035, 8478, 8115, 8531, 9035),
        (Partner, "ISR", 36, 3036, 4036, 8479, 8116, 8541, 9036),
        (Partner, "UKR", 37, 3037, 4037, 8480, 8117, 8551, 9037),
        (Test, "TST", 200, 3200, 4200, 8643, 8280, 10181, 9200),
        (Test, "DEV", 201, 3201, 4201, 8644, 8281, 10191, 9201),
        (Test, "QAA", 202, 3202, 4202, 8645, 8282, 10201, 9202),
        (Test, "QAB", 203, 3203, 4203, 8646, 8283, 10211, 9203),
        (Test, "STG", 204, 3204, 4204, 8647, 8284, 10221, 9204),
        (Test, "DMO", 205, 3205, 4205, 8648, 8285, 10231, 9205),
        (Test, "TRN", 206, 3206, 4206, 8649, 8286, 10241, 9206),
        (Test, "SND", 207, 3207, 4207, 8650, 8287, 10251, 9207),
        (Test, "ORF", 208, 3208, 4208, 8651, 8288, 10261, 9208),
        (Test, "TMP", 209, 3209, 4209, 8652, 8289, 10271, 9209),
        (Test, "LOC", 210, 3210, 4210, 8653, 8290, 10281, 9210),
        (Test, "INT", 211, 3211, 4211, 8654, 8291, 10291, 9211),
        (Test, "UAT", 212, 3212, 4212, 8655, 8292, 10301, 9212),
        (Test, "PRF", 213, 3213, 4213, 8656, 8293, 10311, 9213),
        (Test, "SEC", 214, 3214, 4214, 8657, 8294, 10321, 9214),
        (Iso, "BRA", 93, 3093, 4093, 8536, 8173, 9111, 9093),
        (Iso, "ZAF", 105, 3105, 4105, 8548, 8185, 9231, 9105),
        (Iso, "IND", 99, 3099, 4099, 8542, 8179, 9171, 9099),
        (Iso, "MEX", 114, 3114, 4114, 8557, 8194, 9321, 9114),
        (Iso, "ARG", 98, 3098, 4098, 8541, 8178, 9161, 9098),
        (Iso, "EGY", 109, 3109, 4109, 8552, 8189, 9271, 9109),
        (Iso, "NGA", 94, 3094, 4094, 8537, 8174, 9121, 9094),
        (Iso, "KEN", 102, 3102, 4102, 8545, 8182, 9201, 9102),
        (Iso, "AUT", 114, 3114, 4114, 8557, 8194, 9321, 9114),
        (Iso, "CHE", 88, 3088, 4088, 8531, 8168, 9061, 9088),
        (Iso, "IRL", 111, 3111, 4111, 8554, 8191, 9291, 9111),
        (Iso, "SGP", 114, 3114, 4114, 8557, 8194, 9321, 9114),
        (Iso, "PHL", 108, 3108, 4108, 8551, 8188, 9261, 9108),
        (Iso, "IDN", 99, 3099, 4099, 8542, 8179, 9171, 9099),
        (Iso, "THA", 101, 3101, 4101, 8544, 8181, 9191, 9101),
        (Iso, "VNM", 121, 3121, 4121, 8564, 8201, 9391, 9121),
        (Iso, "CHL", 95, 3095, 4095, 8538, 8175, 9131, 9095),
        (Iso, "COL", 102, 3102, 4102, 8545, 8182, 9201, 9102),
        (Iso, "PER", 111, 3111, 4111, 8554, 8191, 9291, 9111),
        (Iso, "CHN", 97, 3097, 4097, 8540, 8177, 9151, 9097),
        (Iso, "SAU", 113, 3113, 4113, 8556, 8193, 9311, 9113),
        (Iso, "ARE", 96, 3096, 4096, 8539, 8176, 9141, 9096),
        (Iso, "SRB", 111, 3111, 4111, 8554, 8191, 9291, 9111),
        (Iso, "BIH", 91, 3091, 4091, 8534, 8171, 9091, 9091),
        (Iso, "TWN", 129, 3129, 4129, 8572, 8209, 9471, 9129),
    ];

    #[test]
    fn every_code_gets_the_ports_dive_deploys() {
        for &(kind, code, o, frontend, backend, keycloak_https, keycloak_http, opa, kas) in DIVE_COMPOSE {
            assert_eq!(offset(code), Some((kind, o)), "{code}");
            let expected = Ports {
                frontend,
                backend,
                keycloak_https,
                keycloak_http,
                opa,
                kas,
            };
            assert_eq!(ports(code), Some(expected), "{code}");
        }
    }

    #[test]
    fn the_tables_cover_every_nato_partner_and_test_code_of_dive() {
        let covered = |kind| DIVE_COMPOSE.iter().filter(|row| row.0 == kind).count();
        assert_eq!(
            (
                covered(Hub),
                covered(Nato),
                covered(Partner),
                covered(Test),
                covered(Iso)
            ),
            (1, 31, 6, 15, 25)
        );
        assert_eq!(nato_spokes().count(), 31);
        assert_eq!(known_spokes().count(), 31 + 6 + 15 + 156);
        let mut all: Vec<_> = known_spokes().chain([HUB]).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 209, "no code is in two tables");
        assert!(known_spokes().all(|c| offset(c).is_some_and(|(kind, _)| kind != Hub)));
    }

    #[test]
    fn iso_offsets_stay_between_the_nato_and_test_ranges() {
        for code in ISO_CODES {
            let (kind, o) = offset(code).expect("known");
            assert_eq!(kind, Iso);
            assert!((40..200).contains(&o), "{code}: {o}");
        }
    }

    #[test]
    fn codes_are_read_in_any_case_and_spelled_in_upper_case() {
        assert_eq!(offset("fra"), Some((Nato, 10)));
        assert_eq!(offset("Mex"), Some((Iso, 114)));
        assert_eq!(canonical("tSt"), Some("TST"));
        assert_eq!(canonical("usa"), Some(HUB));
        assert_eq!(ports("deu").map(|p| p.backend), Some(4011));
    }

    /// DIVE would give these hash-based ports with a warning (XYZ 59, EUR 48, ...); the suite
    /// does not know them.
    #[rstest::rstest]
    #[case("XYZ")]
    #[case("ZZZ")]
    #[case("AAA")]
    #[case("HUB")]
    #[case("EUR")]
    #[case("")]
    #[case("FR")]
    #[case("FRAN")]
    #[case(" FRA")]
    fn codes_dive_does_not_list_are_unknown(#[case] code: &str) {
        assert_eq!(offset(code), None);
        assert_eq!(ports(code), None);
        assert_eq!(canonical(code), None);
    }

    #[test]
    fn spokes_on_different_ports_do_not_clash() {
        assert_eq!(clashes(&["USA", "TST", "FRA", "DEU"]), Vec::<String>::new());
        assert_eq!(
            clashes(&["FRA", "fra", "XYZ"]),
            Vec::<String>::new(),
            "repeats and unknown codes are ignored"
        );
    }

    #[test]
    fn clashing_spokes_are_named_with_the_port() {
        assert_eq!(
            clashes(&["EST", "FRA", "SVN"]),
            ["EST and SVN both bind host port 8451 (EST keycloak https, SVN opa)"]
        );
        assert_eq!(
            clashes(&["MEX", "AUT"]),
            [
                "MEX and AUT both bind host ports 3114 (frontend), 4114 (backend), 8557 (keycloak https), \
              8194 (keycloak http), 9321 (opa), 9114 (kas)"
            ]
        );
        assert_eq!(
            clashes(&["USA", "HRV", "BRA"]),
            [
                "USA and HRV both bind host port 8085 (USA kas, HRV keycloak http)",
                "USA and BRA both bind host port 9093 (USA alertmanager, BRA kas)",
            ]
        );
        assert_eq!(clashes(&["BIH"]), ["BIH binds host port 9091 (opa, kas) twice"]);
    }
}
