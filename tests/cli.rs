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
    for provider in Provider::ALL {
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
    match provider {
        Provider::PyngBilling => args.extend(["--scope".into(), "billing:batches:read".into()]),
        Provider::PyngCheckout => args.extend(["--scope".into(), "pyng_defined_scope".into()]),
        Provider::Singapay => args.extend([
            "--partner-id".into(),
            SandboxClient::demo(Provider::Singapay).partner_id.unwrap(),
        ]),
        Provider::Autopay => {}
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_the_access_token_alone_for_every_provider() {
    let sandbox = sandbox_with_canary().await;
    for provider in Provider::ALL {
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
    let mut args = token_args(&sandbox, Provider::PyngBilling);
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
    let base = sandbox.base_url(Provider::Autopay);
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
    let args = token_args(&sandbox, Provider::Autopay);
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
    sandbox.inject(Provider::Singapay, Fault::Status(503), 10);
    let args = token_args(&sandbox, Provider::Singapay);
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
    sandbox.inject(Provider::PyngCheckout, Fault::MalformedBody, 10);
    let args = token_args(&sandbox, Provider::PyngCheckout);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[("PAYTOKENS_CLIENT_SECRET", CANARY_SECRET)], None).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("truncated JSON"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_configuration_errors_exit_2_without_sending_anything() {
    let sandbox = sandbox_with_canary().await;
    let base = sandbox.base_url(Provider::PyngBilling);
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
    assert_eq!(sandbox.mints(Provider::PyngBilling), 0);
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
    for provider in Provider::ALL {
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
