//! The parent's side of the children: spawning them, talking to them, and
//! killing every one of them when a scenario ends or panics.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use paytokens::Provider;

use crate::{CHILD_FLAG, Reply, env};

/// The longest the parent waits for one reply. Not an assertion on speed:
/// a child that hangs fails the scenario instead of hanging it.
const REPLY_WAIT: Duration = Duration::from_secs(90);

/// How the children of a scenario are configured.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The store URL.
    pub store: String,
    /// The provider's base URL at the sandbox.
    pub base_url: String,
    /// The provider.
    pub provider: Provider,
    /// The client id (unique to the scenario).
    pub client_id: String,
    /// The client secret.
    pub secret: String,
    /// The mint lock's lease, when not the default.
    pub lease: Option<Duration>,
    /// The mint budget per hour, when not the default.
    pub max_mints: Option<u32>,
    /// Callers per `go`.
    pub tasks: usize,
}

impl Spec {
    /// What no child output may hold: the secret, the client id, and the two
    /// in HTTP Basic form.
    pub fn forbidden(&self) -> Vec<(&'static str, String)> {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.client_id, self.secret));
        vec![
            ("the client secret", self.secret.clone()),
            ("the client id", self.client_id.clone()),
            ("the HTTP Basic credentials", basic),
        ]
    }

    /// `text` with the secret and client id masked, for failure messages.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (what, value) in self.forbidden() {
            text = text.replace(&value, &format!("<{what}>"));
        }
        text
    }
}

/// One child process. Dropping it kills it (SIGKILL) and reaps it.
pub struct Proc {
    /// Its name in messages (`child 3`).
    pub name: String,
    /// The process.
    child: Child,
    /// Its commands; `None` once closed.
    stdin: Option<ChildStdin>,
    /// Its stdout lines, read by a thread.
    lines: Receiver<String>,
    /// Its stderr so far, read by a thread.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The two reader threads.
    readers: Vec<JoinHandle<()>>,
    /// How it was configured (for leak checks and redaction).
    spec: Spec,
}

impl Proc {
    /// Starts a child of `spec`, named `name`.
    pub fn spawn(spec: &Spec, name: &str) -> Self {
        let exe = std::env::current_exe().expect("the path of this test binary");
        let mut command = Command::new(exe);
        command
            .arg(CHILD_FLAG)
            .env(env::STORE, &spec.store)
            .env(env::BASE_URL, &spec.base_url)
            .env(env::PROVIDER, spec.provider.id())
            .env(env::CLIENT_ID, &spec.client_id)
            .env(env::SECRET, &spec.secret)
            .env(env::TASKS, spec.tasks.to_string())
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(lease) = spec.lease {
            command.env(env::LEASE_MS, lease.as_millis().to_string());
        }
        if let Some(max) = spec.max_mints {
            command.env(env::MAX_MINTS, max.to_string());
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (send, lines) = mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                match stderr_pipe.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&buffer[..n]),
                }
            }
        });
        Self {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
            spec: spec.clone(),
        }
    }

    /// Waits for the child's `ready`.
    pub fn ready(&mut self) {
        let reply = self.reply("ready");
        assert!(reply.ready, "{} did not say ready: {reply:?}", self.name);
    }

    /// Sends one command line.
    pub fn send(&mut self, command: &str) {
        let name = &self.name;
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{name}: stdin already closed"));
        if let Err(err) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
            let tail = self.stderr_tail();
            panic!("{name}: cannot send {command:?}: {err}; its stderr ends with:\n{tail}");
        }
    }

    /// The next reply, checked for leaks; panics on a `fatal` reply, on a
    /// child that exited, or after [`REPLY_WAIT`].
    pub fn reply(&mut self, what: &str) -> Reply {
        let line = match self.lines.recv_timeout(REPLY_WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no reply to {what} in {} s; its stderr ends with:\n{}",
                self.name,
                REPLY_WAIT.as_secs(),
                self.stderr_tail()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string());
                panic!(
                    "{}: exited ({status:?}) before replying to {what}; its stderr ends with:\n{}",
                    self.name,
                    self.stderr_tail()
                )
            }
        };
        for (leaked, value) in self.spec.forbidden() {
            assert!(
                !line.contains(&value),
                "{}: its reply to {what} holds {leaked}",
                self.name
            );
        }
        let reply: Reply = serde_json::from_str(&line).unwrap_or_else(|err| {
            panic!("{}: a reply that is not JSON ({err}): {line}", self.name)
        });
        if let Some(problem) = &reply.fatal {
            panic!(
                "{}: could not run: {problem}; its stderr ends with:\n{}",
                self.name,
                self.stderr_tail()
            );
        }
        assert!(
            reply.ready || reply.traced > 0,
            "{}: traced nothing by {what}: its leak scan would be vacuous",
            self.name
        );
        assert!(
            reply.leaks.is_empty(),
            "{}: leaked in its own trace: {:?}",
            self.name,
            reply.leaks
        );
        reply
    }

    /// Sends `command` and returns the reply.
    pub fn ask(&mut self, command: &str) -> Reply {
        self.send(command);
        self.reply(command)
    }

    /// Whether the child's stderr (its trace) holds `text` so far.
    pub fn traced(&self, text: &str) -> bool {
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&stderr).contains(text)
    }

    /// SIGKILL, now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }

    /// `quit`, then waits for the exit and the end of its output; the
    /// stderr (its whole trace), checked for the secret and the client id.
    pub fn quit(mut self) -> String {
        self.send("quit");
        self.stdin = None;
        let deadline = Instant::now() + REPLY_WAIT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => panic!("{}: did not exit after quit", self.name),
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let stderr =
            String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned();
        self.keep_trace(&stderr);
        assert!(
            status.success(),
            "{}: exited with {status}; its stderr ends with:\n{}",
            self.name,
            self.stderr_tail()
        );
        self.assert_clean(&stderr);
        stderr
    }

    /// With `FLEET_TRACE_DIR` set (a debugging aid), writes the child's
    /// trace there, redacted, as `<pid>-<name>.log`.
    fn keep_trace(&self, trace: &str) {
        let Some(dir) = std::env::var_os("FLEET_TRACE_DIR") else {
            return;
        };
        let file = PathBuf::from(dir).join(format!(
            "{}-{}.log",
            self.child.id(),
            self.name.replace(' ', "-")
        ));
        if let Err(err) = std::fs::write(&file, self.spec.redact(trace)) {
            eprintln!("cannot keep the trace in {}: {err}", file.display());
        }
    }

    /// Fails when `text` (this child's output) holds the secret or the
    /// client id.
    fn assert_clean(&self, text: &str) {
        for (leaked, value) in self.spec.forbidden() {
            assert!(
                !text.contains(&value),
                "{}: its stderr holds {leaked} (at TRACE)",
                self.name
            );
        }
    }

    /// SIGKILL, now; then its stderr (its whole trace, once its pipes
    /// closed) is checked for the secret and the client id.
    pub fn kill_and_check(mut self) {
        self.kill();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let stderr =
            String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned();
        self.assert_clean(&stderr);
    }

    /// The last lines of its stderr, redacted, for failure messages.
    fn stderr_tail(&self) -> String {
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&stderr);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        self.spec.redact(&tail)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` children of `spec` (`child 1` … `child n`) and waits until
/// each is ready.
pub fn fleet(spec: &Spec, n: usize) -> Vec<Proc> {
    let mut procs: Vec<Proc> = (1..=n)
        .map(|i| Proc::spawn(spec, &format!("child {i}")))
        .collect();
    for proc in &mut procs {
        proc.ready();
    }
    procs
}

/// Sends `go` to every child first, then collects every reply: the
/// children's callers start together.
pub fn go_all(procs: &mut [Proc]) -> Vec<Reply> {
    for proc in procs.iter_mut() {
        proc.send("go");
    }
    procs.iter_mut().map(|proc| proc.reply("go")).collect()
}

/// Quits every child and checks each one's stderr.
pub fn quit_all(procs: Vec<Proc>) {
    for proc in procs {
        proc.quit();
    }
}

/// A fresh directory, 0700, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `<tmp>/paytokens-fleet-<pid>-<name>`, created 0700.
    pub fn new(name: &str) -> Self {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let path =
            std::env::temp_dir().join(format!("paytokens-fleet-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
        // The umask may have taken bits away; never added any.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|err| panic!("chmod 0700 {}: {err}", path.display()));
        Self(path)
    }

    /// `file:<dir>`.
    pub fn url(&self) -> String {
        format!("file:{}", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
