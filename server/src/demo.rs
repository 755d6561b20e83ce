//! `switchyard demo`: the router in front of in-process test backends for each pool of the
//! design brief's path table, no config file and no Redis needed. Every route answers as soon
//! as [`Demo::start`] returns.

use std::fmt::Write as _;
use std::net::SocketAddr;

use switchyard_load::TestBackend;

use crate::config::Config;
use crate::server::{self, RouterHandle};
use crate::startup::StartupError;

/// The demo's pools: (route prefix, pool id, balancer, backends, timeouts).
const POOLS: &[(&str, &str, &str, usize, &str)] = &[
    (
        "/api",
        "api",
        "round_robin",
        3,
        r#"{ connect = "250ms", response = "1s", idle = "60s" }"#,
    ),
    (
        "/stream",
        "stream",
        "least_connections",
        2,
        r#"{ connect = "500ms", response = "10s", idle = "2h" }"#,
    ),
    (
        "/browse",
        "browse",
        "round_robin",
        2,
        r#"{ connect = "250ms", response = "5s", idle = "60s" }"#,
    ),
    (
        "/search",
        "search",
        "random",
        2,
        r#"{ connect = "250ms", response = "2s", idle = "60s" }"#,
    ),
    (
        "/ws",
        "ws",
        "least_connections",
        2,
        r#"{ connect = "250ms", response = "2s", idle = "1h" }"#,
    ),
];

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// With `--regions N`: this demo is region `k` of these, each `(name, listen)`.
    pub region: Option<(usize, Vec<(&'static str, SocketAddr)>)>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            region: None,
        }
    }
}

/// Regions of `switchyard demo --regions N`, at real data-centre locations, in order.
pub const DEMO_REGIONS: &[(&str, f64, f64)] = &[
    ("us-east", 39.0438, -77.4874),      // Ashburn
    ("eu-west", 53.3498, -6.2603),       // Dublin
    ("ap-southeast", 1.3521, 103.8198),  // Singapore
    ("sa-east", -23.5505, -46.6333),     // São Paulo
    ("ap-northeast", 35.6762, 139.6503), // Tokyo
    ("us-west", 45.5946, -121.1787),     // The Dalles, Oregon
    ("eu-central", 50.1109, 8.6821),     // Frankfurt
    ("ap-south", 19.0760, 72.8777),      // Mumbai
];

/// `switchyard demo --regions N`: N demos, region k listening on `listen[k]` and
/// `admin[k]`, each knowing all the others (routes overflow to the nearest healthy region).
pub fn start_regions(
    listen: &[SocketAddr],
    admin: &[SocketAddr],
) -> Result<Vec<Demo>, StartupError> {
    let n = listen.len().min(admin.len()).min(DEMO_REGIONS.len());
    let members: Vec<(&'static str, SocketAddr)> =
        (0..n).map(|k| (DEMO_REGIONS[k].0, listen[k])).collect();
    (0..n)
        .map(|k| {
            Demo::start(&DemoOptions {
                listen: listen[k],
                admin_listen: admin[k],
                region: Some((k, members.clone())),
            })
        })
        .collect()
}

/// What to print for a multi-region demo.
pub fn regions_banner(demos: &[Demo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Switchyard demo: {} regions, each a router in front of its own test backends, all on this machine.",
        demos.len()
    );
    for demo in demos {
        let router = demo.router();
        let _ = writeln!(
            out,
            "  {:<13} router http://{}   admin http://{}",
            demo.config.node.region,
            router.addr(),
            router.admin_addr()
        );
    }
    if let Some(first) = demos.first() {
        let token = first.config.node.admin_token.as_deref().unwrap_or("-");
        let _ = writeln!(out, "admin token: {token}   (the same for every region)");
        let base = format!("http://{}", first.router().addr());
        let admin = format!("http://{}", first.router().admin_addr());
        let _ = writeln!(
            out,
            "console {admin}/console#token={token}   (each region's admin listener has one)"
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Try:");
        let _ = writeln!(
            out,
            "  curl -s '{base}/v1/regions?lat=48.86&lon=2.35'    # the directory for a client in Paris: nearest healthy region first"
        );
        let _ = writeln!(
            out,
            "  curl -s '{base}/v1/regions?lat=1.29&lon=103.85'   # ... and in Singapore"
        );
        let _ = writeln!(
            out,
            "  curl -s -X POST -H 'Authorization: Bearer {token}' {admin}/admin/v1/regions/{}/evacuate",
            first.config.node.region
        );
        let _ = writeln!(
            out,
            "                                                  # its sessions move (close 4003), /api and /stream requests are forwarded to the nearest region"
        );
        let _ = writeln!(
            out,
            "  curl -i {base}/api/hello                          # X-Backend-Id names the region that answered"
        );
    }
    let _ = writeln!(out, "Ctrl-C stops.");
    out
}

/// A running demo: backends on their own runtime, the router in front.
pub struct Demo {
    router: Option<RouterHandle>,
    backends: Vec<TestBackend>,
    runtime: Option<tokio::runtime::Runtime>,
    config: Config,
}

impl Demo {
    pub fn start(options: &DemoOptions) -> Result<Demo, StartupError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("demo-backends")
            .enable_all()
            .build()
            .map_err(|source| StartupError::Demo {
                what: "cannot start the demo backends' runtime".to_string(),
                source,
            })?;
        let mut backends = Vec::new();
        let suffix = match &options.region {
            Some((k, _)) => format!("-{}", DEMO_REGIONS[*k].0),
            None => String::new(),
        };
        for (_, pool, _, count, _) in POOLS {
            for n in 1..=*count {
                let id = format!("{pool}-{n}{suffix}");
                let local = SocketAddr::from(([127, 0, 0, 1], 0));
                let backend =
                    runtime
                        .block_on(TestBackend::start(&id, local))
                        .map_err(|source| StartupError::Demo {
                            what: format!("cannot start demo backend {id}"),
                            source,
                        })?;
                backends.push(backend);
            }
        }
        let mut config =
            Config::from_toml_str(&config_text(options, &backends)).map_err(|source| {
                StartupError::Config {
                    file: "(the demo's own configuration)".into(),
                    source,
                }
            })?;
        // A fresh admin token each run, printed in the banner, so a new user can drain; all
        // regions of one run share it.
        config.node.admin_token = Some(demo_token());
        let router = server::start(config.clone())?;
        Ok(Demo {
            router: Some(router),
            backends,
            runtime: Some(runtime),
            config,
        })
    }

    pub fn router(&self) -> &RouterHandle {
        self.router.as_ref().expect("present until drop")
    }

    /// What to print: where it listens, its routes, and what to curl.
    pub fn banner(&self) -> String {
        let router = self.router();
        let base = format!("http://{}", router.addr());
        let admin = format!("http://{}", router.admin_addr());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Switchyard demo: a router in front of {} test backends, all on this machine.",
            self.backends.len()
        );
        let _ = writeln!(out, "  router  {base}");
        let _ = writeln!(
            out,
            "  admin   {admin}   (/admin/v1/..., /metrics, /healthz, /readyz)"
        );
        let token = self.config.node.admin_token.as_deref().unwrap_or("-");
        let _ = writeln!(out, "admin token: {token}");
        let _ = writeln!(
            out,
            "console {admin}/console#token={token}   (open it in a browser: watch and drain backends)"
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Routes (path prefix -> pool, balancer: backends):");
        for route in &self.config.routes {
            let pool = &self.config.pools[route.pool];
            let ids: Vec<_> = pool.backends.iter().map(|b| b.id.as_str()).collect();
            let _ = writeln!(
                out,
                "  {:<8} -> {:<7} {:<18} {}",
                route.path_prefix,
                pool.id,
                pool.algorithm.name(),
                ids.join(" ")
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Try:");
        let _ = writeln!(
            out,
            "  curl -i {base}/api/hello                  # X-Backend-Id names the backend; repeat to see round robin"
        );
        let _ = writeln!(
            out,
            "  curl -sN -o /dev/null -w '%{{size_download}} bytes in %{{time_total}} s\\n' '{base}/stream/movie?bytes=200000&chunk_bytes=20000&chunk_ms=200'   # 10 chunks, 200 ms apart, streamed as produced"
        );
        let _ = writeln!(
            out,
            "  curl -i '{base}/search/x?status=503'      # a backend's own 503 passes through unchanged"
        );
        let _ = writeln!(
            out,
            "  curl -i {base}/nowhere                    # the router's own 404: X-Switchyard-Error: no_route"
        );
        let ws = base.replacen("http://", "ws://", 1);
        let _ = writeln!(
            out,
            "  {ws}/ws/echo                              # a WebSocket echo: each message comes back as '<backend>: <message>' (demo --viewers N holds sessions there)"
        );
        let _ = writeln!(
            out,
            "  curl -s {admin}/metrics | grep switchyard_requests_total"
        );
        let _ = writeln!(
            out,
            "  curl -s {admin}/admin/v1/backends         # every backend: state, weight, in-flight, sessions"
        );
        let _ = writeln!(
            out,
            "  curl -s -X POST -H 'Authorization: Bearer {token}' -d '{{\"deadline_s\": 30, \"spread_s\": 5}}' {admin}/admin/v1/backends/ws-1/drain"
        );
        let _ = writeln!(
            out,
            "                                            # its WebSocket sessions move (close 4001), new work goes elsewhere; .../undrain reverses it"
        );
        let _ = writeln!(out, "Ctrl-C stops.");
        out
    }

    /// Stops the router, then the backends.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(router) = self.router.take() {
            router.stop();
        }
        self.backends.clear();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One token per process run.
fn demo_token() -> String {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
        .clone()
}

fn config_text(options: &DemoOptions, backends: &[TestBackend]) -> String {
    let region = options
        .region
        .as_ref()
        .map_or("local", |(k, _)| DEMO_REGIONS[*k].0);
    let mut text = format!(
        "[node]\nregion = \"{region}\"\nlisten = \"{}\"\nadmin_listen = \"{}\"\nshutdown_timeout = \"2s\"\nshutdown_delay = \"0s\"\n\n",
        options.listen, options.admin_listen
    );
    if let Some((_, members)) = &options.region {
        let _ = write!(
            text,
            "[directory]\nprobe_interval = \"500ms\"\nfall = 2\nrise = 2\n\n"
        );
        for (name, addr) in members {
            let (_, lat, lon) = DEMO_REGIONS
                .iter()
                .find(|(n, _, _)| n == name)
                .copied()
                .unwrap_or((name, 0.0, 0.0));
            let _ = write!(
                text,
                "[[regions]]\nname = \"{name}\"\nlocation = {{ lat = {lat}, lon = {lon} }}\nendpoint = \"http://{addr}\"\n\n"
            );
        }
    }
    let overflow = |pool: &str| match (&options.region, pool) {
        (None, _) => "off",
        (Some(_), "ws") => "redirect",
        (Some(_), _) => "forward",
    };
    for (prefix, pool, algorithm, _, timeouts) in POOLS {
        let _ = write!(
            text,
            "[[routes]]\nid = \"{pool}\"\npath_prefix = \"{prefix}\"\npool = \"{pool}\"\ntimeouts = {timeouts}\nretries = 2\nsticky = {}\noverflow = \"{}\"\n\n",
            matches!(*pool, "stream" | "ws"),
            overflow(pool)
        );
        let members: Vec<String> = backends
            .iter()
            .filter(|b| b.id().starts_with(&format!("{pool}-")))
            .map(|b| format!("  {{ id = \"{}\", address = \"{}\" }},", b.id(), b.addr()))
            .collect();
        let _ = write!(
            text,
            "[[pools]]\nid = \"{pool}\"\nalgorithm = \"{algorithm}\"\nbackends = [\n{}\n]\n\n",
            members.join("\n")
        );
    }
    text
}
