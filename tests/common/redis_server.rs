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
        let mut server = Self {
            port: free_port(),
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
