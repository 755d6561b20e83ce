//! `ClientConfig` as data, the form the C and Python bindings pass: JSON and TOML read and
//! written back the same, field names as the builder's methods, durations as strings; a bad
//! duration, an unknown field or an unusable value is refused with a message naming it; and
//! a client built from a file works against a real router.

mod transport_kit;

use std::time::Duration;

use switchyard_client::{ClientBuilder, ClientConfig, ErrorKind, Roots};
use transport_kit::*;

/// The full example of docs/SDK.md ("Configuration from JSON or TOML").
const FULL_JSON: &str = r#"{
  "regions": [
    { "name": "eu-west", "endpoints": ["https://eu-west-1.example.net", "https://eu-west-2.example.net"] },
    { "name": "us-east", "endpoints": ["https://us-east.example.net"] }
  ],
  "directory": "https://eu-west-1.example.net/v1/regions",
  "directory_refresh": "30s",
  "connect_timeout": "1s",
  "attempt_timeout": "5s",
  "deadline": "15s",
  "max_attempts": 3,
  "backoff": { "base": "50ms", "cap": "2s" },
  "budget": { "capacity": 500, "retry_cost": 5, "timeout_cost": 10, "success_refund": 1 },
  "breaker": { "failures": 5, "cool_off": "5s" },
  "retry_after_cap": "10s",
  "user_agent": "my-player/2.1",
  "max_response_bytes": 8388608,
  "body_idle_timeout": "30s",
  "tls": { "roots": "webpki", "ca_pem": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n" },
  "ping_interval": "10s",
  "ping_timeout": "5s",
  "send_queue": 256,
  "reconnect_on_backend_close": false
}"#;

const FULL_TOML: &str = r#"
directory = "https://eu-west-1.example.net/v1/regions"
deadline = "10s"
attempt_timeout = "2500ms"
max_attempts = 4
user_agent = "my-player/2.1"

regions = [
  { name = "eu-west", endpoints = ["https://eu-west-1.example.net", "https://eu-west-2.example.net"] },
  { name = "us-east", endpoints = ["https://us-east.example.net"] },
]

[backoff]
base = "100ms"
cap = "3s"

[breaker]
failures = 3
cool_off = "10s"

[tls]
roots = "system"
ca_file = "/etc/my-player/ca.pem"
"#;

/// The first fenced block of `lang` in docs/SDK.md's "Configuration from JSON or TOML".
fn documented(lang: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SDK.md"))
        .expect("docs/SDK.md");
    let section = doc
        .split("## Configuration from JSON or TOML")
        .nth(1)
        .expect("the section exists");
    let fence = format!("```{lang}\n");
    let start = section.find(&fence).expect("a block") + fence.len();
    let len = section[start..].find("```").expect("the block ends");
    section[start..start + len].to_string()
}

#[test]
fn the_examples_in_the_docs_read() {
    let json = ClientConfig::from_json(&documented("json")).expect("the documented JSON reads");
    let ours = ClientConfig::from_json(FULL_JSON).unwrap();
    assert_eq!(
        json.to_json().unwrap(),
        ours.to_json().unwrap(),
        "FULL_JSON is the doc's"
    );
    let toml = ClientConfig::from_toml(&documented("toml")).expect("the documented TOML reads");
    assert_eq!(toml.regions.len(), 2);
    assert_eq!(toml.tls.roots, Roots::System);
}

#[test]
fn the_documented_json_reads_and_round_trips() {
    let config = ClientConfig::from_json(FULL_JSON).expect("the documented example reads");
    assert_eq!(config.regions.len(), 2);
    assert_eq!(config.regions[0].name, "eu-west");
    assert_eq!(config.regions[0].endpoints.len(), 2);
    assert_eq!(config.deadline, Duration::from_secs(15));
    assert_eq!(config.backoff.base, Duration::from_millis(50));
    assert_eq!(config.breaker.cool_off, Duration::from_secs(5));
    assert_eq!(config.user_agent, "my-player/2.1");
    assert!(config.tls.ca_pem.is_some());

    let again = ClientConfig::from_json(&config.to_json().unwrap()).unwrap();
    assert_eq!(again.to_json().unwrap(), config.to_json().unwrap());
    let via_toml = ClientConfig::from_toml(&config.to_toml().unwrap()).unwrap();
    assert_eq!(via_toml.to_json().unwrap(), config.to_json().unwrap());
}

#[test]
fn toml_reads_and_round_trips_and_missing_fields_keep_their_defaults() {
    let config = ClientConfig::from_toml(FULL_TOML).expect("reads");
    assert_eq!(config.deadline, Duration::from_secs(10));
    assert_eq!(config.attempt_timeout, Duration::from_millis(2500));
    assert_eq!(config.max_attempts, 4);
    assert_eq!(config.backoff.cap, Duration::from_secs(3));
    assert_eq!(config.breaker.failures, 3);
    assert_eq!(config.tls.roots, Roots::System);
    let defaults = ClientConfig::default();
    assert_eq!(config.connect_timeout, defaults.connect_timeout);
    assert_eq!(config.budget, defaults.budget);
    assert_eq!(config.max_response_bytes, 8 << 20);
    let text = config.to_toml().unwrap();
    assert!(text.contains("deadline = \"10s\""), "{text}");
    let again = ClientConfig::from_toml(&text).unwrap();
    assert_eq!(again.to_json().unwrap(), config.to_json().unwrap());
    // An empty document is the defaults.
    let empty = ClientConfig::from_toml("").unwrap();
    assert_eq!(empty.to_json().unwrap(), defaults.to_json().unwrap());
}

fn config_error(result: Result<ClientConfig, switchyard_client::Error>) -> String {
    let err = result.expect_err("refused");
    assert!(matches!(err.kind, ErrorKind::Config(_)), "{err}");
    assert!(!err.retryable);
    err.to_string()
}

#[test]
fn bad_durations_and_unknown_fields_are_refused_by_name() {
    let text = config_error(ClientConfig::from_json(r#"{"deadline": "fast"}"#));
    assert!(
        text.contains("deadline") && text.contains("\"fast\""),
        "{text}"
    );
    let text = config_error(ClientConfig::from_json(r#"{"deadline": 15}"#));
    assert!(text.contains("deadline"), "{text}");
    let text = config_error(ClientConfig::from_json(r#"{"dedline": "1s"}"#));
    assert!(text.contains("unknown field `dedline`"), "{text}");
    let text = config_error(ClientConfig::from_json(
        r#"{"regions": [{"name": "eu", "endpoints": [], "weight": 2}]}"#,
    ));
    assert!(
        text.contains("regions[0]") && text.contains("weight"),
        "{text}"
    );
    let text = config_error(ClientConfig::from_json(r#"{"tls": {"roots": "mozilla"}}"#));
    assert!(
        text.contains("tls.roots") && text.contains("mozilla"),
        "{text}"
    );
    let text = config_error(ClientConfig::from_toml(
        "[breaker]\ncool_off = \"5 parsecs\"\n",
    ));
    assert!(
        text.contains("cool_off") && text.contains("5 parsecs"),
        "{text}"
    );
    let text = config_error(ClientConfig::from_toml("persistence = \"file\"\n"));
    assert!(text.contains("persistence"), "{text}");
    let text = config_error(ClientConfig::from_json("{not json"));
    assert!(text.contains("JSON"), "{text}");
}

#[test]
fn values_that_cannot_work_are_refused_when_the_client_is_built() {
    let build = |json: &str| {
        let config = ClientConfig::from_json(json).expect("reads");
        let err = ClientBuilder::from_config(config)
            .build()
            .err()
            .expect("refused");
        assert!(matches!(err.kind, ErrorKind::Config(_)), "{err}");
        err.to_string()
    };
    let text = build("{}");
    assert!(text.contains("no region and no directory"), "{text}");
    let text = build(r#"{"regions": [{"name": "eu", "endpoints": []}]}"#);
    assert!(
        text.contains("regions[0]") && text.contains("no endpoint"),
        "{text}"
    );
    let text = build(r#"{"regions": [{"name": "eu", "endpoints": ["ftp://x"]}]}"#);
    assert!(
        text.contains("regions[0].endpoints[0]") && text.contains("ftp"),
        "{text}"
    );
    let text = build(r#"{"regions": [{"name": "eu", "endpoints": ["http://x/api"]}]}"#);
    assert!(text.contains("no path"), "{text}");
    let text = build(r#"{"directory": "http://x/v1/regions", "deadline": "0s"}"#);
    assert!(text.contains("deadline must be more than 0"), "{text}");
    let text = build(r#"{"directory": "http://x/v1/regions", "max_attempts": 0}"#);
    assert!(text.contains("max_attempts"), "{text}");
    let text = build(r#"{"directory": "http://x/v1/regions", "tls": {"roots": "none"}}"#);
    assert!(text.contains("nothing would be trusted"), "{text}");
    // Session timers: a zero interval or a duration that would overflow a clock.
    let text = build(r#"{"directory": "http://x/v1/regions", "ping_interval": "0s"}"#);
    assert!(text.contains("ping_interval must be more than 0"), "{text}");
    let text = build(r#"{"directory": "http://x/v1/regions", "send_timeout": "400000y"}"#);
    assert!(
        text.contains("send_timeout") && text.contains("at most 30 days"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_toml_serves_requests() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let text = format!(
        "deadline = \"3s\"\nregions = [{{ name = \"local\", endpoints = [\"{}\", \"{}\"] }}]\n",
        dead_endpoint(),
        http_url(&r)
    );
    let client = ClientBuilder::from_config(ClientConfig::from_toml(&text).unwrap())
        .build()
        .unwrap();
    let resp = client
        .get("/")
        .await
        .expect("served by the second endpoint");
    assert_eq!((resp.region.as_str(), resp.backend()), ("local", Some("b")));
}
