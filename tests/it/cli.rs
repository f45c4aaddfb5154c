//! The `paytokens` binary, run as a user would, against the sandbox (and
//! wiremock for a broken provider) on 127.0.0.1: output formats, exit codes,
//! stderr wording, and no client secret in any output. Also: tokens kept
//! between runs in the file store (the user's cache directory) and in a real
//! `redis-server`, and `cache status|clear`.

use crate::common;
use crate::redis_server;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{CANARY_SECRET, assert_no_canary};
use paytokens::Provider;
use paytokens::sandbox::{Fault, Sandbox, SandboxClient};
use serde_json::Value;

/// Runs the binary with `args`, env vars and optional stdin, off the runtime.
/// `PAYTOKENS_CACHE` is `none` unless `env` sets it: no test writes to the
/// user's cache directory.
async fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    run_unset(args, env, &[], stdin).await
}

/// [`run`], with the variables `unset` removed after the defaults are set
/// (`PAYTOKENS_CACHE`, to use the default store).
async fn run_unset(
    args: &[&str],
    env: &[(&str, &str)],
    unset: &[&str],
    stdin: Option<&str>,
) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let unset: Vec<String> = unset.iter().map(|s| s.to_string()).collect();
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
        command.env("PAYTOKENS_CACHE", "none");
        command.envs(env);
        for key in unset {
            command.env_remove(key);
        }
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
async fn demo_fetches_from_every_provider_and_the_second_round_mints_nothing() {
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
        stdout.contains(&format!(
            "{} tokens served from the cache",
            Provider::all().len()
        )) && stdout.contains(", 0 new mints."),
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
    let ids: Vec<&str> = Provider::all().map(Provider::id).collect();
    let unknown_provider = format!(
        "the provider (first argument of `paytokens token`) is not one of {}",
        ids.join(", ")
    );
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
            &unknown_provider,
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
        // The cache commands, and --cache.
        (token(&["--cache"]), "--cache needs a value"),
        (
            words(&["cache", "clear", "--cache"]),
            "--cache needs a value",
        ),
        (
            words(&["cache", TYPED]),
            "the command (first argument of `paytokens cache`) is not one of status, clear",
        ),
        (
            words(&["cache", "status", &format!("--{TYPED}")]),
            "`paytokens cache status` has no such option",
        ),
        (
            words(&["cache", "clear", TYPED]),
            "unexpected argument to `paytokens cache clear`",
        ),
        (
            words(&["cache", "status", "--cache", "none", "--cache", TYPED]),
            "--cache can be given only once",
        ),
        (
            token(&["--cache", "none", "--cache", TYPED]),
            "--cache can be given only once",
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
    let out = run(&["cache", "status", "--nope"], &[], None).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("\nUsage: paytokens cache status [OPTIONS]\n"),
        "{stderr}"
    );
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
async fn token_help_says_which_providers_need_a_scope_and_lists_declared_ones() {
    let out = run(&["token", "--help"], &[], None).await;
    let help = text(&out.stdout);
    // Clap wraps the help: compare it with its whitespace collapsed.
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let required: Vec<&str> = Provider::all()
        .filter(|p| p.spec().scope.as_ref().is_some_and(|s| s.required))
        .map(Provider::id)
        .collect();
    assert!(!required.is_empty());
    let (last, rest) = required.split_last().unwrap();
    let listed = match rest {
        [] => (*last).to_owned(),
        rest => format!("{} and {last}", rest.join(", ")),
    };
    assert!(
        help.contains(&format!("{listed} require at least one")),
        "{help}"
    );
    for provider in Provider::all() {
        for scope in provider
            .spec()
            .scope
            .iter()
            .flat_map(|s| s.declared)
            .flatten()
        {
            assert!(help.contains(scope), "{provider} {scope}: {help}");
        }
        for env in provider.spec().environments() {
            assert!(
                help.contains(&format!("{provider}: ")),
                "{provider} {env}: {help}"
            );
        }
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

/// A directory under the system's temp dir, removed (with its contents)
/// when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("paytokens-cli-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every file directly in `dir`, with its bytes.
fn files_in(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Whether `haystack` contains `needle`.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Runs `token` for autopay against `sandbox` with `env` (the secret added),
/// `PAYTOKENS_CACHE` removed when `default_store`; returns the token printed.
async fn autopay_token(sandbox: &Sandbox, env: &[(&str, &str)], default_store: bool) -> String {
    let args = token_args(sandbox, common::provider("autopay"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET));
    let unset: &[&str] = if default_store {
        &["PAYTOKENS_CACHE"]
    } else {
        &[]
    };
    let out = run_unset(&args, &env, unset, None).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        stdout.starts_with("sbx_") && stdout.ends_with('\n'),
        "{stdout:?}"
    );
    assert_no_canary(&stdout);
    stdout.trim_end().to_owned()
}

/// `paytokens token autopay` with `env`, against a store that cannot be
/// used: the token on stdout, exit 0, and exactly one warning line on
/// stderr, returned, saying that it was minted without the shared store.
async fn autopay_token_without_store(sandbox: &Sandbox, env: &[(&str, &str)]) -> String {
    let args = token_args(sandbox, common::provider("autopay"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET));
    let out = run_unset(&args, &env, &[], None).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("sbx_"), "{stdout:?}");
    assert_eq!(stderr.lines().count(), 1, "one warning: {stderr}");
    assert!(
        stderr.starts_with("warning: token store unavailable")
            && stderr.contains("minted without the shared store"),
        "{stderr}"
    );
    assert_no_canary(&stdout);
    assert_no_canary(&stderr);
    stderr
}

/// Runs `cache <action>` (no client secret given) with `env`, `PAYTOKENS_CACHE`
/// removed when `default_store`; checks it succeeded without secrets and
/// returns stdout.
async fn cache_command(action: &str, env: &[(&str, &str)], default_store: bool) -> String {
    let unset: &[&str] = if default_store {
        &["PAYTOKENS_CACHE"]
    } else {
        &[]
    };
    let out = run_unset(&["cache", action], env, unset, None).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "cache {action}: {stderr}");
    assert!(stderr.is_empty(), "cache {action}: {stderr}");
    assert_no_canary(&stdout);
    assert!(!stdout.contains("cli-client"), "the client id: {stdout}");
    stdout
}

/// The `credential …` lines of `cache status`.
fn credential_lines(status: &str) -> Vec<&str> {
    status
        .lines()
        .filter(|l| l.starts_with("credential "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_reuses_its_token_across_runs_through_the_user_cache_directory() {
    let sandbox = sandbox_with_canary().await;
    let autopay = common::provider("autopay");
    let temp = TempDir::new("xdg");
    let (xdg, home) = (temp.path("xdg"), temp.path("home"));
    let env = [("XDG_CACHE_HOME", xdg.as_str()), ("HOME", home.as_str())];

    let first = autopay_token(&sandbox, &env, true).await;
    let second = autopay_token(&sandbox, &env, true).await;
    assert_eq!(first, second, "the second run printed a new token");
    assert_eq!(sandbox.mints_for(autopay, "cli-client"), 1);

    // `$XDG_CACHE_HOME/paytokens`, private, with private files that hold
    // neither the token, the client id nor the secret.
    let dir = temp.0.join("xdg/paytokens");
    assert_eq!(mode(&temp.0.join("xdg")), 0o700, "the XDG cache directory");
    assert_eq!(mode(&dir), 0o700, "the store directory");
    let files = files_in(&dir);
    assert!(!files.is_empty(), "nothing stored in {}", dir.display());
    for (path, bytes) in &files {
        assert_eq!(mode(path), 0o600, "{}", path.display());
        for needle in [first.as_str(), CANARY_SECRET, "cli-client", "autopay"] {
            assert!(!holds(bytes, needle), "{} holds {needle:?}", path.display());
        }
    }
    assert!(
        !temp.0.join("home/.cache").exists(),
        "XDG_CACHE_HOME comes first"
    );

    // --json gives the same token, with the time it has left.
    let mut args = token_args(&sandbox, autopay);
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let secret = ("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET);
    let out = run_unset(&args, &[env[0], env[1], secret], &["PAYTOKENS_CACHE"], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["access_token"], first.as_str());
    let lifetime = SandboxClient::demo(autopay).lifetime.as_secs();
    let left = json["expires_in"].as_u64().unwrap();
    assert!(left > 0 && left <= lifetime, "{json}");
    assert_eq!(sandbox.mints_for(autopay, "cli-client"), 1);

    // `cache status` needs no secret and shows none.
    let status = cache_command("status", &env, true).await;
    assert!(
        status.starts_with(&format!("token store: file:{}\n", dir.display())),
        "{status}"
    );
    let lines = credential_lines(&status);
    assert_eq!(lines.len(), 1, "{status}");
    assert!(lines[0].contains(": 1 token (expires in "), "{status}");
    assert!(lines[0].contains("; mints 1/30 per 3600 s;"), "{status}");
    assert!(lines[0].ends_with("; last error: none"), "{status}");
    assert!(!status.contains(&first), "{status}");

    // `cache clear`: everything goes, and the next run mints again.
    let cleared = cache_command("clear", &env, true).await;
    let count: usize = cleared
        .strip_prefix("cleared ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{cleared}"));
    assert!(count >= 1, "{cleared}");
    assert!(
        cleared
            .trim_end()
            .ends_with(&format!("from file:{}", dir.display())),
        "{cleared}"
    );
    assert!(
        files_in(&dir).is_empty(),
        "left after clear: {:?}",
        files_in(&dir)
    );
    let status = cache_command("status", &env, true).await;
    assert!(status.ends_with("\nempty\n"), "{status}");
    let third = autopay_token(&sandbox, &env, true).await;
    assert_ne!(third, first);
    assert_eq!(sandbox.mints_for(autopay, "cli-client"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_xdg_cache_home_the_store_is_under_home() {
    let sandbox = sandbox_with_canary().await;
    let temp = TempDir::new("home");
    let home = temp.path("home");
    std::fs::create_dir(&home).unwrap();
    let env = [("HOME", home.as_str())];
    let unset = ["PAYTOKENS_CACHE", "XDG_CACHE_HOME"];
    let args = token_args(&sandbox, common::provider("autopay"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let secret = ("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let out = run_unset(&args, &[env[0], secret], &unset, None).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        tokens.push(text(&out.stdout));
    }
    assert_eq!(tokens[0], tokens[1]);
    assert_eq!(sandbox.mints(common::provider("autopay")), 1);
    let cache = temp.0.join("home/.cache");
    assert_eq!(mode(&cache), 0o700, "~/.cache, created as XDG asks");
    assert_eq!(mode(&cache.join("paytokens")), 0o700);
    let out = run_unset(&["cache", "status"], &env, &unset, None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(
        status.starts_with(&format!("token store: file:{}/.cache/paytokens\n", home)),
        "{status}"
    );
    assert_eq!(credential_lines(&status).len(), 1, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_none_mints_on_every_run_and_writes_nothing() {
    let sandbox = sandbox_with_canary().await;
    let temp = TempDir::new("none");
    let xdg = temp.path("xdg");
    let env = [("XDG_CACHE_HOME", xdg.as_str())];
    let mut args = token_args(&sandbox, common::provider("autopay"));
    args.extend(["--cache".into(), "none".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let secret = ("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        // The flag wins over the environment.
        let cache = ("PAYTOKENS_CACHE", xdg.as_str());
        let out = run(&args, &[env[0], secret, cache], None).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        tokens.push(text(&out.stdout));
    }
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(sandbox.mints(common::provider("autopay")), 2);
    assert!(!temp.0.join("xdg").exists(), "--cache none wrote a store");
    let out = run(&["cache", "status", "--cache", "none"], &[], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("token store: none"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_store_is_shared_across_runs_and_cache_status_and_clear_work() {
    let server = redis_server::RedisServer::start();
    let url = server.url();
    let sandbox = sandbox_with_canary().await;
    let autopay = common::provider("autopay");
    // Through the flag, then through the environment.
    let env = [("PAYTOKENS_CACHE", url.as_str())];
    let first = {
        let mut args = token_args(&sandbox, autopay);
        args.extend(["--cache".into(), url.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim_end().to_owned()
    };
    let second = autopay_token(&sandbox, &env, false).await;
    assert_eq!(first, second);
    assert_eq!(sandbox.mints_for(autopay, "cli-client"), 1);

    // What Redis holds names no token, secret or client id.
    let keys = server.cli(&["--scan"]);
    assert!(!keys.is_empty(), "nothing stored in Redis");
    for key in &keys {
        let value = server.cli(&["GET", key]).join("\n");
        for needle in [key.as_str(), value.as_str()] {
            for secret in [first.as_str(), CANARY_SECRET, "cli-client"] {
                assert!(!needle.contains(secret), "{key}: holds {secret:?}");
            }
        }
    }

    let status = cache_command("status", &env, false).await;
    assert!(
        status.starts_with(&format!("token store: {url}")),
        "{status}"
    );
    let lines = credential_lines(&status);
    assert_eq!(lines.len(), 1, "{status}");
    assert!(lines[0].contains(": 1 token (expires in "), "{status}");
    assert!(lines[0].contains("; mints 1/30 per 3600 s;"), "{status}");

    let cleared = cache_command("clear", &env, false).await;
    assert!(cleared.starts_with("cleared "), "{cleared}");
    assert!(!cleared.starts_with("cleared 0 "), "{cleared}");
    assert!(
        server.cli(&["--scan"]).is_empty(),
        "left in Redis after clear"
    );
    let status = cache_command("status", &env, false).await;
    assert!(status.ends_with("\nempty\n"), "{status}");
    let third = autopay_token(&sandbox, &env, false).await;
    assert_ne!(third, first);
    assert_eq!(sandbox.mints_for(autopay, "cli-client"), 2);
}

/// A Redis password that `assert_no_canary` looks for.
const REDIS_PASSWORD: &str = "CANARY-redis-pw-9d2c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_works_and_is_never_shown() {
    let server = redis_server::RedisServer::start_with(&["--requirepass", REDIS_PASSWORD]);
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", server.port());
    let sandbox = sandbox_with_canary().await;
    let env = [("PAYTOKENS_CACHE", url.as_str())];
    let first = autopay_token(&sandbox, &env, false).await;
    let second = autopay_token(&sandbox, &env, false).await;
    assert_eq!(first, second);
    assert_eq!(sandbox.mints(common::provider("autopay")), 1);
    let status = cache_command("status", &env, false).await;
    assert_eq!(credential_lines(&status).len(), 1, "{status}");
    // Help shows where the store comes from, never the value.
    let out = run(&["token", "--help"], &env, None).await;
    let help = text(&out.stdout);
    assert!(help.contains("PAYTOKENS_CACHE"), "{help}");
    assert_no_canary(&help);
    // A wrong password: `token` still works (mints alone), `cache` exits 4;
    // neither shows the password.
    let wrong = format!("redis://:CANARY-wrong@127.0.0.1:{}", server.port());
    let env = [("PAYTOKENS_CACHE", wrong.as_str())];
    let warning = autopay_token_without_store(&sandbox, &env).await;
    assert!(
        warning.contains(&format!("127.0.0.1:{}", server.port())),
        "{warning}"
    );
    let out = run(&["cache", "status"], &env, None).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_no_canary(&text(&out.stderr));
    assert_no_canary(&text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_store_url_is_a_usage_error_that_never_echoes_it() {
    let sandbox = sandbox_with_canary().await;
    let autopay = common::provider("autopay");
    let port = redis_server::free_port();
    let urls = [
        format!("redis://u:CANARY-pw@127.0.0.1:{port}x"),
        "redis://u:CANARY-pw@".to_owned(),
        format!("redis://u:CANARY-pw@127.0.0.1:{port}#frag"),
        format!("redis:/u:CANARY-pw@127.0.0.1:{port}"),
        format!("redis//u:CANARY-pw@127.0.0.1:{port}"),
        format!("redis:u:CANARY-pw@127.0.0.1:{port}"),
        format!("http://u:CANARY-pw@127.0.0.1:{port}"),
        format!("rediss//:CANARY-pw@127.0.0.1:{port}"),
        "CANARY-pasted-secret".to_owned(),
        "file:".to_owned(),
        "".to_owned(),
    ];
    let args = token_args(&sandbox, autopay);
    for url in &urls {
        let mut with_flag: Vec<&str> = args.iter().map(String::as_str).collect();
        with_flag.extend(["--cache", url]);
        let plain: Vec<&str> = args.iter().map(String::as_str).collect();
        let secret = ("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET);
        let runs = [
            run(&with_flag, &[secret], None).await,
            run(&plain, &[secret, ("PAYTOKENS_CACHE", url)], None).await,
            run(&["cache", "status", "--cache", url], &[], None).await,
            run(&["cache", "clear"], &[("PAYTOKENS_CACHE", url)], None).await,
        ];
        for out in runs {
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(2), "{url:?}: {stderr}");
            assert!(stdout.is_empty(), "{url:?}: {stdout}");
            assert_eq!(stderr.lines().count(), 1, "{url:?}: {stderr}");
            assert!(stderr.contains("--cache"), "{url:?}: {stderr}");
            assert_no_canary(&stderr);
            assert!(!stderr.contains("u:"), "{url:?}: {stderr}");
        }
    }
    assert_eq!(sandbox.mints(autopay), 0, "a usage error sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_directory_open_to_others_is_refused_naming_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = sandbox_with_canary().await;
    let autopay = common::provider("autopay");
    let temp = TempDir::new("loose");
    let dir = temp.path("store");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let url = format!("file:{dir}");
    let mut args = token_args(&sandbox, autopay);
    args.extend(["--cache".into(), url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let runs = [
        run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await,
        run(&["cache", "status", "--cache", &url], &[], None).await,
        run(&["cache", "clear", "--cache", &url], &[], None).await,
    ];
    for out in runs {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&dir) && stderr.contains("0755"), "{stderr}");
        assert!(out.stdout.is_empty());
        assert_no_canary(&stderr);
    }
    assert_eq!(sandbox.mints(autopay), 0);
    assert_eq!(mode(&temp.0.join("store")), 0o755, "left as it was");
    // The default location is checked alike: `cache` fails, `token` warns
    // (naming it) and mints without a store.
    let xdg = temp.path("xdg");
    std::fs::create_dir_all(format!("{xdg}/paytokens")).unwrap();
    let store = format!("{xdg}/paytokens");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o750)).unwrap();
    let out = run_unset(
        &["cache", "status"],
        &[("XDG_CACHE_HOME", xdg.as_str())],
        &["PAYTOKENS_CACHE"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&store), "{}", text(&out.stderr));
    let args = token_args(&sandbox, autopay);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("XDG_CACHE_HOME", xdg.as_str()),
        ("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET),
    ];
    for run_number in 1..=2 {
        let out = run_unset(&args, &env, &["PAYTOKENS_CACHE"], None).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.starts_with("sbx_"), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("warning: ")
                && stderr.contains(&store)
                && stderr.contains("not kept for later runs"),
            "{stderr}"
        );
        assert_no_canary(&stderr);
        assert_eq!(sandbox.mints(autopay), run_number);
    }
    assert!(files_in(std::path::Path::new(&store)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_cache_commands_with_4_but_not_token() {
    let sandbox = sandbox_with_canary().await;
    let autopay = common::provider("autopay");
    let refused = format!("redis://127.0.0.1:{}", redis_server::free_port());
    let mut paused = redis_server::RedisServer::start();
    paused.pause();
    let hung = paused.url();
    for url in [&refused, &hung] {
        let env = [("PAYTOKENS_CACHE", url.as_str())];
        for action in ["status", "clear"] {
            // Bounded by the CLI itself: the test only guards against a hang.
            let out =
                tokio::time::timeout(Duration::from_secs(60), run(&["cache", action], &env, None))
                    .await
                    .unwrap_or_else(|_| panic!("cache {action} against {url} did not return"));
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(4), "{url} {action}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(
                stderr.starts_with("error: token store unavailable") && stderr.contains(url),
                "{url} {action}: {stderr}"
            );
            assert!(out.stdout.is_empty());
        }
        // `token` mints without the store, succeeds, and says so once,
        // naming the store.
        let mints = sandbox.mints(autopay);
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            autopay_token_without_store(&sandbox, &env),
        )
        .await;
        let warning = out.unwrap_or_else(|_| panic!("token against {url} did not return"));
        assert!(warning.contains(url.as_str()), "{warning}");
        assert_eq!(sandbox.mints(autopay), mints + 1, "{url}");
    }
    paused.resume();
}

/// A mistyped store address (nothing listens there) with a password in
/// it: the token on stdout, exit 0, one warning naming the address and
/// never the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_store_address_warns_once_naming_it_without_the_password() {
    let sandbox = sandbox_with_canary().await;
    let port = redis_server::free_port();
    let url = format!("redis://paytokens:CANARY-store-password@127.0.0.1:{port}");
    let warning = autopay_token_without_store(&sandbox, &[("PAYTOKENS_CACHE", url.as_str())]).await;
    assert!(
        warning.contains(&format!("redis://paytokens:***@127.0.0.1:{port}")),
        "{warning}"
    );
    assert!(!warning.contains("store-password"), "{warning}");
}

/// Starts `n` runs of the binary with `args` and `env` (`PAYTOKENS_CACHE`
/// removed when `default_store`) all at once, then waits for each.
async fn run_together(
    n: usize,
    args: Vec<String>,
    env: Vec<(String, String)>,
    default_store: bool,
) -> Vec<Output> {
    tokio::task::spawn_blocking(move || {
        let children: Vec<_> = (0..n)
            .map(|_| {
                let mut command = Command::new(env!("CARGO_BIN_EXE_paytokens"));
                command
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .env_remove("PAYTOKENS_BASE_URL")
                    .env_remove("PAYTOKENS_CLIENT_ID")
                    .env_remove("PAYTOKENS_PARTNER_ID")
                    .env("PAYTOKENS_CACHE", "none")
                    .envs(env.iter().map(|(k, v)| (k, v)));
                if default_store {
                    command.env_remove("PAYTOKENS_CACHE");
                }
                command.spawn().unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_started_together_mint_once_through_either_store() {
    const RUNS: usize = 20;
    let server = redis_server::RedisServer::start();
    let temp = TempDir::new("together");
    let xdg = temp.path("xdg");
    let autopay = common::provider("autopay");
    for (store, default_store) in [("file", true), ("redis", false)] {
        let sandbox = sandbox_with_canary().await;
        // A slow token endpoint: every run starts before the mint ends.
        sandbox.inject(autopay, Fault::Latency(Duration::from_millis(800)), RUNS);
        let mut env = vec![
            (
                "PAYTOKENS_CLIENT_SECRET".to_owned(),
                CANARY_SECRET.to_owned(),
            ),
            ("XDG_CACHE_HOME".to_owned(), xdg.clone()),
        ];
        if !default_store {
            env.push(("PAYTOKENS_CACHE".to_owned(), server.url()));
        }
        let outputs = run_together(RUNS, token_args(&sandbox, autopay), env, default_store).await;
        let tokens: Vec<String> = outputs
            .iter()
            .map(|out| {
                assert!(out.status.success(), "{store}: {}", text(&out.stderr));
                assert_no_canary(&text(&out.stderr));
                text(&out.stdout)
            })
            .collect();
        assert!(tokens[0].starts_with("sbx_"), "{store}: {:?}", tokens[0]);
        assert!(
            tokens.iter().all(|t| *t == tokens[0]),
            "{store}: different tokens: {tokens:?}"
        );
        assert_eq!(sandbox.mints(autopay), 1, "{store}: mints for {RUNS} runs");
    }
}

/// What a provider's spec does not take is a usage error, never dropped:
/// `--scope` for a provider without a scopes role, a header flag for a
/// provider that does not declare that header, an environment its spec does
/// not name, `--env` with `--base-url`. Nothing is fetched (no server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_spec_does_not_take_is_a_usage_error() {
    let scopeless = Provider::all().find(|p| p.spec().scope.is_none()).unwrap();
    let header = Provider::all()
        .flat_map(|p| p.spec().headers.iter().map(move |h| (p, h)))
        .next()
        .unwrap();
    let headerless = Provider::all()
        .find(|p| p.spec().headers.iter().all(|h| h.name != header.1.name))
        .unwrap();
    let flag = {
        let lower = header.1.name.to_ascii_lowercase();
        format!("--{}", lower.strip_prefix("x-").unwrap_or(&lower))
    };
    let base = ["--base-url", "http://127.0.0.1:9", "--client-id", "x"];
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            [&["token", scopeless.id()][..], &base, &["--scope", "read"]].concat(),
            format!("{scopeless} takes no scopes"),
        ),
        (
            [
                &["token", headerless.id()][..],
                &base,
                &[flag.as_str(), "v"],
            ]
            .concat(),
            format!("{flag} is not a flag of {headerless}"),
        ),
        (
            vec![
                "token",
                scopeless.id(),
                "--client-id",
                "x",
                "--env",
                "nowhere",
            ],
            format!("{scopeless} has no environment `nowhere`"),
        ),
        (
            [&["token", scopeless.id()][..], &base, &["--env", "sandbox"]].concat(),
            "pass --base-url or --env, not both".to_owned(),
        ),
    ];
    for (args, expected) in cases {
        let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert_no_canary(&stderr);
    }
}
