//! The `paytokens` binary, run as a user would, against the sandbox (and
//! wiremock for a broken provider) on 127.0.0.1: output formats, exit codes,
//! stderr wording, and no client secret in any output.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{CANARY_SECRET, assert_no_canary};
use paytokens::Provider;
use paytokens::sandbox::{Fault, Sandbox, SandboxClient};
use serde_json::Value;

/// Runs the binary with `args`, env vars and optional stdin, off the runtime.
async fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_paytokens"));
        command
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in [
            "PAYTOKENS_BASE_URL",
            "PAYTOKENS_CLIENT_ID",
            "PAYTOKENS_PARTNER_ID",
            "PAYTOKENS_CLIENT_SECRET",
        ] {
            command.env_remove(key);
        }
        command.envs(env);
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A sandbox with a client whose secret is the canary, for every provider.
async fn sandbox_with_canary() -> Sandbox {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let mut client = SandboxClient::demo(provider);
        client.client_id = "cli-client".into();
        client.client_secret = CANARY_SECRET.into();
        sandbox.add_client(provider, client);
    }
    sandbox
}

/// The `token` arguments for `provider` against `sandbox`.
fn token_args(sandbox: &Sandbox, provider: Provider) -> Vec<String> {
    let mut args = vec![
        "token".to_owned(),
        provider.id().to_owned(),
        "--base-url".to_owned(),
        sandbox.base_url(provider),
        "--client-id".to_owned(),
        "cli-client".to_owned(),
    ];
    // Where the request carries scopes, one: the last of the spec's request
    // example (pyng-billing `billing:batches:read`, pyng-checkout
    // `pyng_defined_scope`), which the demo client is granted.
    if let Some(scope) = common::example_scopes(provider).pop() {
        args.extend(["--scope".into(), scope]);
    }
    // Each header parameter through its flag (Singapay's X-PARTNER-ID as
    // `--partner-id`), with the demo client's value.
    for (name, value) in SandboxClient::demo(provider).headers {
        let name = name.to_ascii_lowercase();
        let flag = name.strip_prefix("x-").unwrap_or(&name);
        args.extend([format!("--{flag}"), value]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_the_access_token_alone_for_every_provider() {
    let sandbox = sandbox_with_canary().await;
    for provider in Provider::all() {
        let args = token_args(&sandbox, provider);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
        assert!(out.status.success(), "{provider}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("sbx_") && stdout.ends_with('\n'),
            "{stdout:?}"
        );
        assert_eq!(stdout.lines().count(), 1);
        assert_no_canary(&stdout);
        assert_no_canary(&text(&out.stderr));
        assert_eq!(sandbox.mints_for(provider, "cli-client"), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_json_has_the_documented_keys_in_order() {
    let sandbox = sandbox_with_canary().await;
    let mut args = token_args(&sandbox, common::provider("pyng-billing"));
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let keys: Vec<usize> = [
        "\"provider\"",
        "\"token_type\"",
        "\"access_token\"",
        "\"expires_in\"",
        "\"scope\"",
    ]
    .iter()
    .map(|k| {
        stdout
            .find(k)
            .unwrap_or_else(|| panic!("{k} missing: {stdout}"))
    })
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["provider"], "pyng-billing");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 900);
    assert_eq!(json["scope"], serde_json::json!(["billing:batches:read"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_come_from_stdin_and_env_vars_configure_the_rest() {
    let sandbox = sandbox_with_canary().await;
    let base = sandbox.base_url(common::provider("autopay"));
    let env = [
        ("PAYTOKENS_BASE_URL", base.as_str()),
        ("PAYTOKENS_CLIENT_ID", "cli-client"),
    ];
    let out = run(
        &["token", "autopay", "--client-secret-stdin"],
        &env,
        Some(&format!("{CANARY_SECRET}\n")),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("sbx_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_exits_3_with_the_providers_code() {
    let sandbox = sandbox_with_canary().await;
    let args = token_args(&sandbox, common::provider("autopay"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(
        &args,
        &[("PAYTOKENS_CLIENT_SECRET", "not-the-secret")],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("rejected") && stderr.contains("access_denied"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_provider_exits_4() {
    let sandbox = sandbox_with_canary().await;
    let singapay = common::provider("singapay");
    sandbox.inject(singapay, Fault::Status(503), 10);
    let args = token_args(&sandbox, singapay);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unavailable") && stderr.contains("try again later"),
        "{stderr}"
    );
    assert_no_canary(&stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_response_exits_5() {
    let sandbox = sandbox_with_canary().await;
    let checkout = common::provider("pyng-checkout");
    sandbox.inject(checkout, Fault::MalformedBody, 10);
    let args = token_args(&sandbox, checkout);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("truncated JSON"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_configuration_errors_exit_2_without_sending_anything() {
    let sandbox = sandbox_with_canary().await;
    let billing = common::provider("pyng-billing");
    let base = sandbox.base_url(billing);
    let secret = [("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)];
    type Case<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["token", "autopay", "--client-id", "x"],
            &[],
            "PAYTOKENS_CLIENT_SECRET",
        ),
        (
            vec!["token", "nopay", "--client-id", "x"],
            &secret,
            "unknown provider",
        ),
        (
            vec![
                "token",
                "pyng-billing",
                "--client-id",
                "x",
                "--base-url",
                &base,
                "--scope",
                "billing:nope",
            ],
            &secret,
            "unknown scope",
        ),
        (
            vec![
                "token",
                "pyng-billing",
                "--client-id",
                "x",
                "--base-url",
                &base,
            ],
            &secret,
            "at least one scope",
        ),
        (
            vec!["token", "pyng-checkout", "--client-id", "x", "--scope", "a"],
            &secret,
            "--base-url",
        ),
        (
            vec!["token", "singapay", "--client-id", "x", "--base-url", &base],
            &secret,
            "partner id",
        ),
        (
            vec![
                "token",
                "autopay",
                "--client-id",
                "x",
                "--base-url",
                "http://autopay.invalid",
            ],
            &secret,
            "plain http",
        ),
        (
            vec!["token", "autopay", "--client-secret", CANARY_SECRET],
            &secret,
            "unexpected argument",
        ),
        (
            vec!["token", "autopay", "--client-secret=CANARY-SECRET-5f1e9a27"],
            &secret,
            "unexpected argument",
        ),
        (
            vec!["token", "autopay", "--client-id", "x", CANARY_SECRET],
            &secret,
            "never from the command line",
        ),
    ];
    for (args, env, expected) in cases {
        let out = run(&args, env, None).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_no_canary(&stderr);
    }
    assert_eq!(sandbox.mints(billing), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_the_exit_codes() {
    let out = run(&["token", "--help"], &[], None).await;
    let help = text(&out.stdout);
    for line in [
        "2  usage",
        "3  rejected",
        "4  provider unavailable",
        "5  the provider's response",
    ] {
        assert!(help.contains(line), "{help}");
    }
    assert!(help.contains("PAYTOKENS_CLIENT_SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fetches_from_all_four_and_the_second_round_mints_nothing() {
    let out = run(&["demo"], &[], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for provider in Provider::all() {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(provider.id()))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(row.contains("Bearer"), "{row}");
    }
    assert!(
        stdout.contains("4 tokens served from the cache") && stdout.contains(", 0 new mints."),
        "{stdout}"
    );
    assert!(!stdout.contains("sbx_"), "the demo shows no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_each_protected_api_call_refreshing_once_after_a_revocation() {
    let out = run(&["demo"], &[], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // The new section comes after the existing output, which stays as it was.
    let (before, after) = stdout
        .split_once("\nProtected API through the middleware")
        .unwrap_or_else(|| panic!("no protected API section: {stdout}"));
    assert!(before.trim_end().ends_with(", 0 new mints."), "{stdout}");
    let lines: Vec<&str> = after.lines().skip(1).collect();
    assert_eq!(lines.len(), Provider::all().len(), "{stdout}");
    for (provider, line) in Provider::all().zip(&lines) {
        // The first call uses the demo's cached token (1 mint); after the
        // revocation the middleware gets a 401, refreshes once and retries.
        assert_eq!(
            *line,
            format!(
                "{:<14} 200 -> revoked -> 401 -> 1 refresh -> 200 (mints 1 -> 2)",
                provider.id()
            ),
            "{stdout}"
        );
    }
    assert!(!stdout.contains("sbx_"), "the demo shows no token");
    assert_no_canary(&stdout);
    assert_no_canary(&text(&out.stderr));
}

/// What a user typed in the wrong place: it may be a secret, so no output may
/// repeat it (`assert_no_canary` looks for `CANARY`).
const TYPED: &str = "S3CRET-CANARY-71c4e0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_never_echo_what_was_mistyped() {
    let words = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let token =
        |extra: &[&str]| words(&[&["token", "autopay", "--client-id", "x"], extra].concat());
    let scopes = paytokens::pyng_billing::Scope::ALL
        .map(|s| s.as_str())
        .join(", ");
    let unknown_scope = format!("a --scope for pyng-billing is not one of {scopes}");
    let no_such_option = "`paytokens token` has no such option";
    let port = "the value of --port is not a port number from 0 to 65535";
    // Each invocation, and what stderr must say about which argument was wrong.
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            token(&[&format!("--client-secret-stdin={TYPED}")]),
            "unexpected value for --client-secret-stdin",
        ),
        (
            token(&[&format!("--json={TYPED}")]),
            "unexpected value for --json",
        ),
        (
            token(&["--client-secret", TYPED]),
            "no option for the client secret",
        ),
        (
            token(&[&format!("--client-secret={TYPED}")]),
            "no option for the client secret",
        ),
        (
            words(&["token", TYPED, "--client-id", "x"]),
            "the provider (first argument of `paytokens token`) is not one of \
             pyng-billing, pyng-checkout, autopay, singapay",
        ),
        (token(&[TYPED]), "unexpected argument to `paytokens token`"),
        (
            words(&[
                "token",
                "pyng-billing",
                "--base-url",
                "http://127.0.0.1:9",
                "--client-id",
                "x",
                "--scope",
                "billing:batches:read",
                "--scope",
                TYPED,
            ]),
            &unknown_scope,
        ),
        (
            words(&[TYPED]),
            "the command (first argument of `paytokens`) is not one of token, sandbox, demo",
        ),
        (
            words(&["help", TYPED]),
            "the command (first argument of `paytokens help`)",
        ),
        (token(&[&format!("--{TYPED}")]), no_such_option),
        (token(&[&format!("--unknown={TYPED}")]), no_such_option),
        (token(&[&format!("-{TYPED}")]), no_such_option),
        (
            words(&[&format!("--{TYPED}")]),
            "`paytokens` has no such option",
        ),
        (words(&["sandbox", "--port", TYPED]), port),
        (words(&["sandbox", &format!("--port={TYPED}")]), port),
        (
            words(&["demo", TYPED]),
            "unexpected argument to `paytokens demo`",
        ),
        // A value-taking flag given twice.
        (
            token(&["--client-id", TYPED]),
            "--client-id can be given only once",
        ),
        (
            token(&["--partner-id", "p", "--partner-id", TYPED]),
            "--partner-id can be given only once",
        ),
        // Values the library refuses when the source is built.
        (token(&["--base-url", TYPED]), "base URL is not a URL"),
        (
            words(&[
                "token",
                "pyng-checkout",
                "--base-url",
                "http://127.0.0.1:9",
                "--client-id",
                "x",
                "--scope",
                &format!("{TYPED} pasted"),
            ]),
            "scope 1 of 1 is not a valid scope token",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_no_canary(&stdout);
        assert_no_canary(&stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_show_a_readable_usage_line() {
    for args in [
        vec!["token", "autopay"],
        vec!["token", "nopay", "--client-id", "x"],
        vec!["token", "autopay", "--client-id", "x", "--nope"],
    ] {
        let out = run(&args, &[], None).await;
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("\nUsage: paytokens token <PROVIDER> --client-id <ID> [OPTIONS]\n"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_flag_is_told_about_the_env_var_and_stdin() {
    for flag in [
        "--client-secret",
        "--secret",
        "--client-secert",
        "--client-secret-stdin=x",
    ] {
        let out = run(&["token", "autopay", "--client-id", "x", flag], &[], None).await;
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("PAYTOKENS_CLIENT_SECRET")
                && stderr.contains("--client-secret-stdin")
                && stderr.contains("never from the command line"),
            "{flag}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_version_keep_clap_output_and_exit_0() {
    for (args, expected) in [
        (vec!["--help"], "Usage: paytokens <COMMAND>"),
        (
            vec!["token", "--help"],
            "Usage: paytokens token <PROVIDER> --client-id <ID> [OPTIONS]",
        ),
        (
            vec!["help", "sandbox"],
            "Usage: paytokens sandbox [OPTIONS]",
        ),
        (vec!["--version"], "paytokens 0.1.0"),
    ] {
        let out = run(&args, &[], None).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains(expected), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_help_says_the_pyng_providers_need_a_scope_and_lists_billings() {
    let out = run(&["token", "--help"], &[], None).await;
    let help = text(&out.stdout);
    assert!(
        help.contains("pyng-billing and pyng-checkout require at least one"),
        "{help}"
    );
    for scope in paytokens::pyng_billing::Scope::ALL {
        assert!(help.contains(scope.as_str()), "{scope:?}: {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_base_url_exits_4_and_says_to_check_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let args = ["token", "autopay", "--base-url", &base, "--client-id", "x"];
    let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("connection refused")
            && stderr.contains("check the base URL (host and port)"),
        "{stderr}"
    );
    assert_no_canary(&stderr);
}

/// Kills the child process when the test ends, passing or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_prints_one_line_per_request_without_secrets() {
    use std::io::{BufRead, BufReader, Read};
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_paytokens"))
            .args(["sandbox", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    // The banner lists each provider, then its base URL.
    let (mut stdout, base) = tokio::task::spawn_blocking(move || {
        let (mut line, mut autopay) = (String::new(), false);
        loop {
            line.clear();
            assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "sandbox exited");
            autopay |= line.starts_with("autopay ");
            if let Some(url) = line.trim().strip_prefix("base URL:").filter(|_| autopay) {
                return (stdout, url.trim().to_owned());
            }
        }
    })
    .await
    .unwrap();
    let demo = SandboxClient::demo(common::provider("autopay"));
    let secret = paytokens::ExposeSecret::expose_secret(&demo.client_secret).to_owned();
    let args = [
        "token",
        "autopay",
        "--base-url",
        &base,
        "--client-id",
        &demo.client_id,
    ];
    let good = run(&args, &[("PAYTOKENS_CLIENT_SECRET", &secret)], None).await;
    assert!(good.status.success(), "{}", text(&good.stderr));
    let refused = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    // Each line is written before its answer is sent: all are out by now.
    drop(child);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let requests: Vec<&str> = rest.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(requests.len(), 2, "{rest}");
    assert!(
        requests[0].starts_with("autopay POST /autopay/oauth/token -> 200 minted"),
        "{rest}"
    );
    assert!(
        requests[1].starts_with("autopay POST /autopay/oauth/token -> 401 refused"),
        "{rest}"
    );
    let token = text(&good.stdout).trim().to_owned();
    for line in requests {
        assert!(!line.contains(&secret) && !line.contains(&token), "{line}");
    }
    assert_no_canary(&rest);
}
