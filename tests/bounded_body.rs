//! Every response body is read through a byte cap that counts bytes as they
//! arrive. A raw HTTP/1.1 server on 127.0.0.1 floods each provider's client
//! (and the `paytokens` binary) with bodies that never end, chunked or
//! undeclared until the connection closes, on success and error statuses,
//! and counts what it managed to write: the fetch must fail at once as an
//! unusable response naming the limit, without a retry, having taken in less
//! than twice the limit. Also: the limit itself is exact, a gzip bomb is
//! never inflated, and a trickling body ends at the request timeout.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{CANARY_SECRET, assert_no_canary, assert_result_leaks_nothing, good};
use common::{example_headers, example_scopes, ok, quick, source};
use paytokens::{Provider, TokenError, TokenSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How a body is framed.
#[derive(Clone, Copy, Debug)]
enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No length at all: the body runs until the connection closes.
    UntilClose,
}

/// What the server sends as the body.
#[derive(Clone)]
enum Body {
    /// 4 KiB pieces of a JSON string, forever.
    Endless,
    /// These bytes in one piece, then the end of the body.
    Bytes(Vec<u8>),
    /// These bytes one at a time, a second apart.
    Trickle(Vec<u8>),
}

/// One server's answer.
#[derive(Clone)]
struct Answer {
    status: u16,
    framing: Framing,
    headers: &'static str,
    body: Body,
}

/// What a server saw: connections accepted, and body bytes the kernel took
/// from it (an upper bound on what the client read).
#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    body_bytes: AtomicU64,
}

impl Counts {
    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
}

/// Serves `answer` on every connection. The listening socket's send buffer
/// is small (accepted sockets inherit it), so what the server counts as
/// written is close to what the peer received.
async fn serve(answer: Answer) -> (String, Arc<Counts>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(8 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let seen = counts.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer_one(socket, answer.clone(), seen.clone()));
        }
    });
    (format!("http://{addr}"), counts)
}

async fn answer_one(mut socket: TcpStream, answer: Answer, seen: Arc<Counts>) {
    if !read_request_head(&mut socket).await {
        return;
    }
    let framing = match answer.framing {
        Framing::Chunked => "transfer-encoding: chunked\r\n",
        Framing::UntilClose => "connection: close\r\n",
    };
    let head = format!(
        "HTTP/1.1 {} Test\r\ncontent-type: application/json\r\n{}{framing}\r\n",
        answer.status, answer.headers
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let frame = |piece: &[u8]| match answer.framing {
        Framing::Chunked => [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat(),
        Framing::UntilClose => piece.to_vec(),
    };
    let end: &[u8] = match answer.framing {
        Framing::Chunked => b"0\r\n\r\n",
        Framing::UntilClose => b"",
    };
    let mut send = async |piece: &[u8]| {
        let sent = socket.write_all(&frame(piece)).await.is_ok();
        if sent {
            seen.body_bytes
                .fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        sent
    };
    match answer.body {
        Body::Endless => {
            let piece = format!("{{\"access_token\":\"{}", "x".repeat(4096 - 17));
            while send(piece.as_bytes()).await {
                // Let the client read what it was sent before more is
                // written, so the count is what it took in rather than what
                // the kernel buffered for it.
                tokio::task::yield_now().await;
            }
            return;
        }
        Body::Bytes(bytes) => {
            if !send(&bytes).await {
                return;
            }
        }
        Body::Trickle(bytes) => {
            for byte in bytes {
                if !send(&[byte]).await {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let _ = socket.write_all(end).await;
}

/// Reads up to the end of the request head; the token requests' small
/// bodies arrive with it or are left unread.
async fn read_request_head(socket: &mut TcpStream) -> bool {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// The `problem` of an `InvalidResponse` from `provider` with `status`.
fn invalid_problem(
    case: &str,
    provider: Provider,
    status: u16,
    result: &Result<paytokens::AccessToken, TokenError>,
) -> String {
    match result {
        Err(TokenError::InvalidResponse {
            provider: p,
            status: s,
            problem,
        }) if (*p, *s) == (provider, status) => problem.clone(),
        other => panic!("{case}: {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit_for_every_provider_and_status() {
    let http = quick(3);
    let limit = http.max_body_bytes;
    for provider in Provider::all() {
        for status in [ok(provider), 401, 503] {
            for framing in [Framing::Chunked, Framing::UntilClose] {
                let case = format!("{provider} HTTP {status} {framing:?}");
                let (base_url, counts) = serve(Answer {
                    status,
                    framing,
                    headers: "",
                    body: Body::Endless,
                })
                .await;
                let result = source(provider, &base_url, http.clone()).fetch().await;
                assert_result_leaks_nothing(&result);
                let problem = invalid_problem(&case, provider, status, &result);
                assert!(
                    problem.contains(&format!("exceeds the limit of {limit} bytes")),
                    "{case}: {problem}"
                );
                assert_eq!(counts.connections(), 1, "{case}: retried");
                let written = counts.body_bytes();
                assert!(
                    written < 2 * limit,
                    "{case}: the client took in {written} bytes (limit {limit})"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not() {
    for provider in Provider::all() {
        for framing in [Framing::Chunked, Framing::UntilClose] {
            let body = good(provider).to_string().into_bytes();
            let mut http = quick(1);
            http.max_body_bytes = 1024;
            let mut exact = body.clone();
            exact.resize(1024, b' ');
            let case = format!("{provider} {framing:?}");
            let answer = |body: Vec<u8>| Answer {
                status: ok(provider),
                framing,
                headers: "",
                body: Body::Bytes(body),
            };
            let (base_url, _) = serve(answer(exact.clone())).await;
            let result = source(provider, &base_url, http.clone()).fetch().await;
            assert!(result.is_ok(), "{case}: {result:?}");
            exact.push(b' ');
            let (base_url, _) = serve(answer(exact)).await;
            let result = source(provider, &base_url, http).fetch().await;
            let problem = invalid_problem(&case, provider, ok(provider), &result);
            assert!(
                problem.contains("exceeds the limit of 1024 bytes (stopped reading after 1025"),
                "{case}: {problem}"
            );
        }
    }
}

#[tokio::test]
async fn a_gzip_bomb_is_never_inflated() {
    // 10 MiB of token JSON, gzipped to 10 KiB. No decompression is enabled:
    // the client sees the compressed bytes, which are not JSON.
    let bomb = include_bytes!("fixtures/gzip-bomb-10mib.json.gz").to_vec();
    for provider in Provider::all() {
        let (base_url, counts) = serve(Answer {
            status: ok(provider),
            framing: Framing::Chunked,
            headers: "content-encoding: gzip\r\n",
            body: Body::Bytes(bomb.clone()),
        })
        .await;
        let result = source(provider, &base_url, quick(3)).fetch().await;
        let problem = invalid_problem(provider.id(), provider, ok(provider), &result);
        assert_eq!(problem, "body is not JSON", "{provider}");
        assert_eq!(counts.body_bytes(), bomb.len() as u64);
        assert_eq!(counts.connections(), 1, "{provider}: retried");
    }
}

#[tokio::test]
async fn a_trickling_body_ends_at_the_request_timeout_and_retries_stay_bounded() {
    let mut http = quick(2);
    http.request_timeout = Duration::from_millis(300);
    for provider in Provider::all() {
        let (base_url, counts) = serve(Answer {
            status: ok(provider),
            framing: Framing::UntilClose,
            headers: "",
            body: Body::Trickle(good(provider).to_string().into_bytes()),
        })
        .await;
        let result = source(provider, &base_url, http.clone()).fetch().await;
        assert!(
            matches!(&result, Err(TokenError::Transient { .. })),
            "{provider}: {result:?}"
        );
        assert_result_leaks_nothing(&result);
        assert_eq!(counts.connections(), 2, "{provider}: attempts");
    }
}

/// The `token` arguments of the binary for `provider` at `base_url`: the
/// spec's example scopes (`--scope`) and header values (`X-PARTNER-ID` as
/// `--partner-id`).
fn cli_args(provider: Provider, base_url: &str) -> Vec<String> {
    let mut args = [
        "token",
        provider.id(),
        "--base-url",
        base_url,
        "--client-id",
        "id",
    ]
    .map(str::to_owned)
    .to_vec();
    for scope in example_scopes(provider) {
        args.extend(["--scope".to_owned(), scope]);
    }
    for (name, value) in example_headers(provider) {
        let flag = name.to_ascii_lowercase();
        let flag = flag.strip_prefix("x-").unwrap_or(&flag);
        args.extend([format!("--{flag}"), value]);
    }
    args
}

/// What one run of the `paytokens` binary did: its exit code, output, and
/// its peak resident set in bytes: `wait4` reaps it and reports its own
/// `ru_maxrss`, not the largest of every child's. Linux counts in it the
/// resident memory of this test process when it spawned the child (the
/// child starts as a copy of it), which is why these tests are a binary of
/// their own, apart from `tests/it`: the figure is an upper bound of the
/// CLI's own peak, kept tight by a small parent.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    peak_rss: u64,
}

// The child is reaped by `wait4` below, not by std's `wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(mut command: Command) -> Run {
    use std::io::Read as _;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let stderr = errors.join().unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 writes the status and a whole rusage into the pointers
    // it is given; `child` is never waited for through std afterwards.
    let usage = unsafe {
        assert_eq!(libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()), pid);
        usage.assume_init()
    };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stdout,
        stderr,
        peak_rss: usage.ru_maxrss as u64 * 1024,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_5_on_an_endless_body_in_bounded_memory() {
    for provider in Provider::all() {
        let (base_url, counts) = serve(Answer {
            status: ok(provider),
            framing: Framing::Chunked,
            headers: "",
            body: Body::Endless,
        })
        .await;
        let args = cli_args(provider, &base_url);
        let output = tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_paytokens"));
            command
                .args(&args)
                .env("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)
                // No token store: nothing is written to the user's cache
                // directory, and every run asks the server.
                .env("PAYTOKENS_CACHE", "none")
                .env_remove("PAYTOKENS_BASE_URL");
            run_measured(command)
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.code, Some(5), "{provider}: {stderr}");
        assert!(
            stderr.contains("exceeds the limit of 65536 bytes"),
            "{provider}: {stderr}"
        );
        assert_no_canary(&stderr);
        assert!(output.stdout.is_empty(), "{provider}: printed a token");
        assert_eq!(counts.connections(), 1, "{provider}: retried");
        let written = counts.body_bytes();
        assert!(
            written < 4 << 20,
            "{provider}: {written} bytes off the wire"
        );
        eprintln!("{provider}: the CLI exited 5 after {written} body bytes");
        let peak = output.peak_rss;
        eprintln!("{provider}: peak RSS of the CLI: {} KiB", peak / 1024);
        assert!(
            peak < 64 << 20,
            "{provider}: peak RSS of the CLI: {peak} bytes"
        );
    }
}
