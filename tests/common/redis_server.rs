//! A real `redis-server` process on a free 127.0.0.1 port, started by the
//! test that uses it, so that the test can kill it (SIGKILL), pause it
//! (SIGSTOP), resume it (SIGCONT) and restart it on the same port. It keeps
//! nothing on disk. A machine without `redis-server` fails the test saying
//! what to install: no test is skipped.
#![allow(dead_code)] // each test file uses part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    /// A configuration file given first (a sentinel's, which it rewrites).
    config: Option<std::path::PathBuf>,
    extra: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

impl RedisServer {
    /// A server with no password.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra arguments (`--requirepass`, ...).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(free_port(), None, extra)
    }

    fn start_on(port: u16, config: Option<std::path::PathBuf>, extra: &[&str]) -> Self {
        let mut server = Self {
            port,
            config,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
            paused: false,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config {
            command.arg(config);
        }
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: these tests start their own Redis. \
                 Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: \
                 brew install redis)"
            ),
            Err(err) => panic!("cannot start redis-server: {err}"),
        };
        self.child = Some(child);
        self.paused = false;
        self.wait_ready();
    }

    /// Waits until the server answers PING (it may need a password: any
    /// answer counts).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut answer = [0u8; 64];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read(&mut answer).is_ok_and(|n| n > 0)
                {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server exited at start ({status}) on port {}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else { return };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} redis-server");
    }

    /// SIGKILL: the server is gone, with everything it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    /// Kills the server if it runs, and starts a new, empty one on the same
    /// port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the server runs (neither killed nor exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    /// Runs one command through `redis-cli` and returns its output lines
    /// (raw mode: one line per reply element).
    pub fn cli(&self, args: &[&str]) -> Vec<String> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning", "--raw"])
            .args(args)
            .output()
            .expect("redis-cli is installed with redis-server (apt-get install -y redis-server)");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.paused {
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// A file under the temporary directory, named for `what` and `port`,
/// removed when the value is dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(what: &str, port: u16) -> Self {
        let path = std::env::temp_dir().join(format!(
            "paytokens-{what}-{}-{port}.conf",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits up to 30 s for `done`, failing with `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free port whose cluster bus port (the port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// A Redis Cluster of real `redis-server` processes on free 127.0.0.1
/// ports: `primaries` primaries with `replicas` replicas each, made with
/// `redis-cli --cluster create`. A node that stops answering is failed
/// over after 1 s (`cluster-node-timeout 1000`).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _configs: Vec<TempFile>,
}

impl RedisCluster {
    /// 3 primaries, 1 replica each.
    pub fn start() -> Self {
        Self::start_with(3, 1, &[])
    }

    /// `primaries` x (1 + `replicas`) nodes, each with `extra` arguments.
    pub fn start_with(primaries: usize, replicas: usize, extra: &[&str]) -> Self {
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            let port = cluster_port();
            let config = TempFile::new("cluster-nodes", port);
            let file = config.0.to_string_lossy().into_owned();
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &file,
                "--cluster-node-timeout",
                "1000",
                // A replica fails over however old its data: in a test the
                // cluster is seconds old.
                "--cluster-replica-validity-factor",
                "0",
            ];
            args.extend_from_slice(extra);
            nodes.push(RedisServer::start_on(port, None, &args));
            configs.push(config);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let auth: Vec<&str> = extra
            .windows(2)
            .find(|pair| pair[0] == "--requirepass")
            .map(|pair| vec!["-a", pair[1]])
            .unwrap_or_default();
        let output = Command::new("redis-cli")
            .args(&auth)
            .arg("--no-auth-warning")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is installed with redis-server (apt-get install -y redis-server)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Self {
            nodes,
            _configs: configs,
        };
        let auth: Vec<String> = auth.iter().map(|s| (*s).to_owned()).collect();
        wait_for(
            "the cluster did not reach cluster_state:ok on every node",
            || {
                cluster.nodes.iter().all(|node| {
                    let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
                    args.extend(["CLUSTER", "INFO"]);
                    node.cli(&args)
                        .iter()
                        .any(|l| l.trim() == "cluster_state:ok")
                })
            },
        );
        // Ready for a failover: every replica is linked to its primary.
        wait_for("a cluster replica did not link to its primary", || {
            cluster.nodes.iter().all(|node| {
                let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
                args.extend(["INFO", "replication"]);
                let info = node.cli(&args);
                info.iter().any(|l| l.trim() == "role:master")
                    || info.iter().any(|l| l.trim() == "master_link_status:up")
            })
        });
        cluster
    }

    /// `redis-cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// The nodes that run and answer `ROLE` as a primary.
    pub fn primaries(&mut self, auth: &[&str]) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].is_running() && {
                    let args: Vec<&str> = auth.iter().copied().chain(["ROLE"]).collect();
                    self.nodes[i].cli(&args).first().map(String::as_str) == Some("master")
                }
            })
            .collect()
    }

    /// The running primary that holds a name matching `pattern`, if one does.
    pub fn primary_holding(&mut self, auth: &[&str], pattern: &str) -> Option<usize> {
        self.primaries(auth).into_iter().find(|&i| {
            let args: Vec<&str> = auth
                .iter()
                .copied()
                .chain(["--scan", "--pattern", pattern])
                .collect();
            !self.nodes[i].cli(&args).is_empty()
        })
    }

    /// Kills (SIGKILL) primary `node`, which holds a name matching
    /// `pattern`, and waits until another primary (its replica, promoted)
    /// holds it and the cluster is ok again; returns how long that took.
    pub fn kill_primary_holding(&mut self, auth: &[&str], pattern: &str) -> Duration {
        let holder = self
            .primary_holding(auth, pattern)
            .expect("a primary holds a matching name");
        let killed = Instant::now();
        self.nodes[holder].kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self
                .primary_holding(auth, pattern)
                .is_some_and(|now| now != holder)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over from the killed primary"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_ok(auth);
        killed.elapsed()
    }

    /// Empties every running primary (`FLUSHALL`).
    pub fn flush(&mut self, auth: &[&str]) {
        for i in self.primaries(auth) {
            let args: Vec<&str> = auth.iter().copied().chain(["FLUSHALL"]).collect();
            self.nodes[i].cli(&args);
        }
    }

    /// Waits until every running node reports `cluster_state:ok` again.
    pub fn wait_ok(&mut self, auth: &[&str]) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        let nodes = &self.nodes;
        wait_for("the cluster did not recover cluster_state:ok", || {
            running.iter().all(|&i| {
                let args: Vec<&str> = auth.iter().copied().chain(["CLUSTER", "INFO"]).collect();
                nodes[i]
                    .cli(&args)
                    .iter()
                    .any(|l| l.trim() == "cluster_state:ok")
            })
        });
    }
}

/// The name of the service [`RedisSentinels`] monitor.
pub const SENTINEL_SERVICE: &str = "paytokens";

/// A primary, its replica and three sentinels (quorum 2), real
/// `redis-server` processes on free 127.0.0.1 ports. With a password, the
/// data nodes and the sentinels all require it. A primary that stops
/// answering is failed over after 1 s (`down-after-milliseconds 1000`).
pub struct RedisSentinels {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
    _configs: Vec<TempFile>,
    password: Option<String>,
}

impl RedisSentinels {
    pub fn start(password: Option<&str>) -> Self {
        let auth: Vec<&str> = match password {
            Some(password) => vec!["--requirepass", password, "--masterauth", password],
            None => vec![],
        };
        let primary = RedisServer::start_with(&auth);
        let primary_port = primary.port().to_string();
        let mut replica_args = vec!["--replicaof", "127.0.0.1", &primary_port];
        replica_args.extend_from_slice(&auth);
        let replica = RedisServer::start_with(&replica_args);
        let mut sentinels = Vec::new();
        let mut configs = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let config = TempFile::new("sentinel", port);
            let mut text = format!(
                "sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                 sentinel failover-timeout {SENTINEL_SERVICE} 10000\n\
                 sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
            );
            if let Some(password) = password {
                text.push_str(&format!(
                    "sentinel auth-pass {SENTINEL_SERVICE} {password}\nrequirepass {password}\n"
                ));
            }
            std::fs::write(&config.0, text).expect("write a sentinel's configuration");
            sentinels.push(RedisServer::start_on(
                port,
                Some(config.0.clone()),
                &["--sentinel"],
            ));
            configs.push(config);
        }
        let set = Self {
            primary,
            replica,
            sentinels,
            _configs: configs,
            password: password.map(str::to_owned),
        };
        // Ready for a failover: every sentinel knows the replica and the
        // two other sentinels.
        wait_for(
            "the sentinels did not discover the replica and each other",
            || {
                set.sentinels.iter().all(|sentinel| {
                    set.sentinel_cli(sentinel, &["SENTINEL", "REPLICAS", SENTINEL_SERVICE])
                        .iter()
                        .any(|l| l == &set.replica.port().to_string())
                        && set
                            .sentinel_cli(sentinel, &["SENTINEL", "SENTINELS", SENTINEL_SERVICE])
                            .iter()
                            .filter(|l| l.as_str() == "name")
                            .count()
                            == 2
                })
            },
        );
        set
    }

    fn sentinel_cli(&self, sentinel: &RedisServer, args: &[&str]) -> Vec<String> {
        let mut all: Vec<&str> = match &self.password {
            Some(password) => vec!["-a", password],
            None => vec![],
        };
        all.extend_from_slice(args);
        sentinel.cli(&all)
    }

    /// `redis-sentinel://[:password@]127.0.0.1:p1,...#paytokens`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let auth = match &self.password {
            Some(password) => format!(":{password}@"),
            None => String::new(),
        };
        format!(
            "redis-sentinel://{auth}{}#{SENTINEL_SERVICE}",
            hosts.join(",")
        )
    }

    /// The port of the primary the sentinels name now.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = self.sentinel_cli(
            &self.sentinels[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE],
        );
        answer.get(1).and_then(|port| port.parse().ok())
    }

    /// Kills the primary (SIGKILL) and waits until the sentinels name the
    /// replica as the primary.
    pub fn fail_over(&mut self) {
        let old = self.primary.port();
        self.primary.kill();
        let replica = self.replica.port();
        wait_for("the sentinels did not fail over to the replica", || {
            self.primary_port() == Some(replica)
        });
        assert_ne!(old, replica);
    }
}
