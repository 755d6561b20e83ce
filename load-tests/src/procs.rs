//! Child processes for comparisons and scenarios: the router, test backends and peer proxies,
//! each killed when its guard drops so an interrupted run leaves nothing behind. Also the
//! small helpers they share: free loopback ports, waiting for a port, finding binaries.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started process may take to open its port.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// A child process, killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Proc, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot start {name} ({:?}): {err}", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crashed machine would; waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as an orchestrator stopping it would.
    pub fn terminate(&self) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|err| format!("cannot run kill: {err}"))?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("kill -TERM {} failed", self.pid())),
        }
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails if the process has already exited (a bad config, a taken port).
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited early with {status}", self.name)),
            _ => Ok(()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago, for a process that must be told its port before
/// it starts. It is picked below the kernel's ephemeral range, so the port cannot be handed to
/// another socket's `bind(0)` or outgoing connection in the moment between this check and the
/// caller's bind (a freed ephemeral port is often the very next one the kernel gives out).
pub fn free_port() -> Result<u16, String> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        for _ in 0..200 {
            let port = fastrand::u16(10_000..low);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|err| format!("no free port on 127.0.0.1: {err}"))
}

/// Waits until `addr` accepts connections, or fails naming `what`.
pub fn wait_for_port(proc: &mut Proc, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        proc.check_running()?;
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not open {addr} within {START_DEADLINE:?}",
                proc.name
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A binary of this workspace: next to the running executable (or one folder up, for test
/// binaries in `deps/`), or named by the environment variable `env`.
pub fn workspace_binary(name: &str, env: &str) -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|err| format!("cannot find myself: {err}"))?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        if let Some(d) = dir {
            let candidate = d.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
            dir = d.parent();
        }
    }
    Err(format!(
        "cannot find the {name} binary next to {}; build it with `cargo build --release -p switchyard -p switchyard-load`, or set {env}",
        exe.display()
    ))
}

/// [`workspace_binary`] for a test that cannot run without it: fails with what is missing
/// and how to build it (`cargo test --workspace` does) instead of passing unrun.
pub fn required_binary(name: &str, env: &str) -> PathBuf {
    workspace_binary(name, env)
        .unwrap_or_else(|err| panic!("{err} (`cargo test --workspace` builds it)"))
}

/// The path of a program on `PATH`, if installed.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A scratch folder removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> Result<ScratchDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("switchyard-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        Ok(ScratchDir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.0.join(name);
        std::fs::write(&path, text)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a `switchyard-backend` process on a free port.
pub fn start_backend(id: &str) -> Result<(Proc, SocketAddr), String> {
    let bin = workspace_binary("switchyard-backend", "SWITCHYARD_BACKEND_BIN")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut proc = Proc::spawn(
        &format!("backend {id}"),
        Command::new(bin).args(["--listen", &addr.to_string(), "--id", id, "--threads", "1"]),
    )?;
    wait_for_port(&mut proc, addr)?;
    Ok((proc, addr))
}

/// Starts a private, empty `redis-server` on `127.0.0.1:port` that keeps nothing on disk.
pub fn start_redis(port: u16) -> Result<Proc, String> {
    start_redis_with(port, &[])
}

/// [`start_redis`] with more `redis-server` arguments (e.g. `--replicaof 127.0.0.1 PORT`).
pub fn start_redis_with(port: u16, extra: &[&str]) -> Result<Proc, String> {
    let mut proc = Proc::spawn(
        "redis-server",
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                // A replica's full sync may still write an RDB file: not into the checkout.
                "--dir",
                &std::env::temp_dir().to_string_lossy(),
            ])
            .args(extra),
    )
    .map_err(|err| format!("{err} (apt-get install -y redis-server)"))?;
    wait_for_port(&mut proc, SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(proc)
}

/// Starts a Redis Sentinel on `127.0.0.1:port` watching the master `name` at
/// `127.0.0.1:master_port` alone (quorum 1), quick to fail over: down after 500 ms. Its
/// config file (a sentinel rewrites it) lives in `scratch`.
pub fn start_sentinel(
    scratch: &ScratchDir,
    port: u16,
    name: &str,
    master_port: u16,
) -> Result<Proc, String> {
    let config = scratch.write(
        &format!("sentinel-{port}.conf"),
        &format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {name} 500\nsentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n"
        ),
    )?;
    let mut proc = Proc::spawn(
        "redis-sentinel",
        Command::new("redis-server").arg(&config).arg("--sentinel"),
    )
    .map_err(|err| format!("{err} (apt-get install -y redis-server)"))?;
    wait_for_port(&mut proc, SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(proc)
}

/// Backends as `(id, address)` pairs, the shape router configs are written from.
pub type Members = Vec<(String, SocketAddr)>;

/// Starts one `switchyard-backend` per id: the processes and `(id, address)` pairs.
pub fn start_backends(ids: &[&str]) -> Result<(Vec<Proc>, Members), String> {
    let mut procs = Vec::new();
    let mut members = Vec::new();
    for id in ids {
        let (proc, addr) = start_backend(id)?;
        procs.push(proc);
        members.push((id.to_string(), addr));
    }
    Ok((procs, members))
}

/// Starts a `switchyard serve` process with one route `/` over `backends` (round robin).
pub fn start_switchyard(
    scratch: &ScratchDir,
    backends: &[(String, SocketAddr)],
    workers: usize,
    retries: u32,
) -> Result<(Proc, SocketAddr, SocketAddr), String> {
    start_switchyard_with(scratch, "switchyard", backends, workers, retries, "", false)
}

/// Like [`start_switchyard`], with `extra` config text before the routes, a config file named
/// after `name`, and a sticky route when `sticky`.
pub fn start_switchyard_with(
    scratch: &ScratchDir,
    name: &str,
    backends: &[(String, SocketAddr)],
    workers: usize,
    retries: u32,
    extra: &str,
    sticky: bool,
) -> Result<(Proc, SocketAddr, SocketAddr), String> {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let members: Vec<String> = backends
        .iter()
        .map(|(id, addr)| format!("{{ id = \"{id}\", address = \"{addr}\" }}"))
        .collect();
    let config = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = {workers}\nshutdown_timeout = \"1s\"\n[log]\naccess = false\n{LOAD_GENERATOR_LIMITS}{extra}\
         [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"all\"\nretries = {retries}\nsticky = {sticky}\n\
         [[pools]]\nid = \"all\"\nalgorithm = \"round_robin\"\nbackends = [{}]\n",
        members.join(", ")
    );
    let proc = start_switchyard_config(scratch, name, &config, listen)?;
    Ok((proc, listen, admin))
}

/// `[limits]` for a router measured or exercised by the load generator: it is one client
/// address sending what thousands of viewers would, so the per-address caps (on by default)
/// are turned off — explicitly, as the config reference asks.
pub const LOAD_GENERATOR_LIMITS: &str = "[limits]\nmax_connections_per_ip = 0\nrate_per_ip = 0\n";

/// Starts `switchyard serve` with a whole config text (written to `name.toml` in `scratch`)
/// and waits until it listens on `listen`.
pub fn start_switchyard_config(
    scratch: &ScratchDir,
    name: &str,
    config: &str,
    listen: SocketAddr,
) -> Result<Proc, String> {
    let path = scratch.write(&format!("{name}.toml"), config)?;
    serve(name, &path, listen)
}

/// Starts `switchyard serve --config path` (a file the caller may rewrite, e.g. to test a
/// reload) and waits until it listens on `listen`.
pub fn serve(name: &str, path: &Path, listen: SocketAddr) -> Result<Proc, String> {
    let bin = workspace_binary("switchyard", "SWITCHYARD_BIN")?;
    let mut proc = Proc::spawn(
        name,
        Command::new(bin).arg("serve").arg("--config").arg(path),
    )?;
    wait_for_port(&mut proc, listen)?;
    Ok(proc)
}

/// A Redis Cluster of `masters` masters with one replica each, on free ports, made with
/// `redis-cli --cluster create`; a master that stops answering for `node_timeout` is failed
/// over to its replica. Node configs live in `scratch`.
pub struct RedisCluster {
    /// Every node, masters first as created (`redis-cli` makes the first `masters` ports the
    /// masters and the rest their replicas).
    pub nodes: Vec<(u16, Proc)>,
}

impl RedisCluster {
    pub fn start(
        scratch: &ScratchDir,
        masters: usize,
        node_timeout: std::time::Duration,
    ) -> Result<RedisCluster, String> {
        let mut nodes = Vec::new();
        for _ in 0..masters * 2 {
            // The cluster bus gets a free port of its own (by default it is port + 10000,
            // which may be taken or past 65535).
            let (port, bus) = (free_port()?, free_port()?);
            let conf = scratch.path().join(format!("cluster-{port}.conf"));
            let proc = start_redis_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf.to_string_lossy(),
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-node-timeout",
                    &node_timeout.as_millis().to_string(),
                    "--dir",
                    &scratch.path().to_string_lossy(),
                ],
            )?;
            nodes.push((port, proc));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .map_err(|err| format!("redis-cli: {err} (apt-get install -y redis-tools)"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(RedisCluster { nodes })
    }

    /// `host:port` of every node.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect()
    }
}
