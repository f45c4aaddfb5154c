//! The `paytokens` command: fetch a token from any registered provider, run
//! the offline sandbox, or run a demo of the whole stack against it. Every
//! provider-specific part (the provider ids, header flags such as
//! `--partner-id`, which providers take scopes) comes from the providers'
//! specs through the registry.
//!
//! `token` keeps its tokens between runs in a [`TokenStore`] (by default a
//! directory in the user's cache directory; `--cache` or `PAYTOKENS_CACHE`
//! names another, or `none`), so that a loop or a cron job of `paytokens
//! token` mints one token per lifetime; `cache status` and `cache clear`
//! show and empty that store.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use paytokens::sandbox::Sandbox;
use paytokens::{
    AccessToken, Bearer, CachePolicy, Config, CredentialStatus, Credentials, ExposeSecret,
    HeaderParam, Provider, SecretString, StoreError, TokenCache, TokenError, TokenSource,
    TokenStore,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  2  usage or configuration error (nothing was sent)
  3  rejected by the provider (bad credentials, scope or partner id)
  4  provider unavailable or unreachable (transient: try again later);
     `paytokens cache`: the token store unavailable or unreachable
  5  the provider's response was unusable";

/// Said instead of a value the user typed that the CLI did not recognise: it
/// may be a secret pasted in the wrong place.
const NOT_SHOWN: &str = "not shown: it may be a secret";

/// Where the client secret comes from, for anyone who tried to pass it as an
/// argument.
const SECRET_TIP: &str = "the client secret is read from PAYTOKENS_CLIENT_SECRET, or from \
    standard input with --client-secret-stdin; never from the command line";

/// `--cache`'s help: what it accepts, and the default.
const CACHE_HELP: &str = "Where tokens are kept between runs, so that each run reuses a fresh \
    one: redis://[USER:PASSWORD@]HOST:PORT[/DB], rediss://… (TLS), \
    redis-sentinel://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]…][/DB]#SERVICE, \
    redis-cluster://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]…] (rediss- for TLS), file:DIR, or \
    none (mint on every run). Default: file:$XDG_CACHE_HOME/paytokens, else file:$HOME/.cache/paytokens";

/// The bound on `cache status` and `cache clear`: one scan of the store.
const STORE_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: u8 = 2;
const REJECTED: u8 = 3;
const TRANSIENT: u8 = 4;
const INVALID_RESPONSE: u8 = 5;

#[derive(Parser)]
#[command(name = "paytokens", version, about = "OAuth2 client-credentials tokens from payment providers whose token endpoints do not follow the standard", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch an access token and print it (or, with --json, its details).
    ///
    /// The client secret is read from PAYTOKENS_CLIENT_SECRET, or from
    /// standard input with --client-secret-stdin; never from a flag. The
    /// token is kept (encrypted) in the store --cache names and printed
    /// again by later runs while it is fresh.
    #[command(
        after_help = EXIT_CODES,
        override_usage = "paytokens token <PROVIDER> --client-id <ID> [OPTIONS]"
    )]
    Token(TokenArgs),
    /// Run the sandbox of every provider on 127.0.0.1 until Ctrl-C; print its
    /// URLs and demo credentials, then one line per token request.
    Sandbox {
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 0, value_parser = parse_port)]
        port: u16,
    },
    /// Fetch a token from each provider through the real stack, against an
    /// in-process sandbox; needs no configuration.
    Demo,
    /// Show or empty the store where `token` keeps tokens between runs.
    ///
    /// Needs no client secret and shows none: credentials appear under their
    /// ids in the store (keyed hashes naming no provider or client).
    #[command(after_help = EXIT_CODES)]
    Cache {
        /// What to do with the store.
        #[command(subcommand)]
        action: CacheAction,
    },
}

/// `paytokens cache <ACTION>`.
#[derive(Subcommand)]
enum CacheAction {
    /// Where the store is, then per credential: its tokens' time left, mints
    /// used of the budget, and the last error.
    #[command(after_help = EXIT_CODES)]
    Status(StoreArgs),
    /// Delete everything paytokens stored there; print how many entries went.
    #[command(after_help = EXIT_CODES)]
    Clear(StoreArgs),
}

/// `--cache`: the token store of `token` and `cache`.
#[derive(Args)]
struct StoreArgs {
    // The value may hold a Redis password: clap never shows it (help hides
    // the env var's value; no parser can fail on it).
    #[arg(
        long = "cache",
        env = "PAYTOKENS_CACHE",
        value_name = "URL",
        hide_env_values = true,
        help = CACHE_HELP
    )]
    cache: Option<String>,
}

#[derive(Args)]
struct TokenArgs {
    /// The provider to ask.
    #[arg(value_parser = provider_parser())]
    provider: Provider,
    /// The provider's base URL (required unless its spec names a default host, as Autopay's does, or --env is given).
    #[arg(long, env = "PAYTOKENS_BASE_URL")]
    base_url: Option<String>,
    // The help lists each provider's environments, from the specs.
    #[arg(long = "env", env = "PAYTOKENS_ENV", value_name = "NAME", help = env_help())]
    env: Option<String>,
    /// The client id.
    #[arg(long, env = "PAYTOKENS_CLIENT_ID", value_name = "ID")]
    client_id: String,
    // Header parameter flags (`--partner-id`) are added from the specs by
    // `command()`. The help lists which providers take scopes, from the specs.
    #[arg(long = "scope", value_name = "SCOPE", help = scope_help())]
    scopes: Vec<String>,
    /// Print {"provider","token_type","access_token","expires_in","scope"} as JSON.
    #[arg(long)]
    json: bool,
    /// Read the client secret from standard input.
    #[arg(long)]
    client_secret_stdin: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `--json` output, in the documented key order.
#[derive(serde::Serialize)]
struct TokenJson<'a> {
    provider: &'a str,
    token_type: String,
    access_token: &'a str,
    expires_in: u64,
    scope: &'a [String],
}

/// A failure, with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
        }
    }
}

impl From<TokenError> for Failure {
    fn from(err: TokenError) -> Self {
        let code = match &err {
            TokenError::Config { .. } => USAGE,
            TokenError::Rejected { .. } => REJECTED,
            TokenError::InvalidResponse { .. } => INVALID_RESPONSE,
            // Transient, MintBudgetExhausted, and any kind added later.
            _ => TRANSIENT,
        };
        Self {
            code,
            message: format!("{err}; {}", err.advice()),
        }
    }
}

fn main() -> ExitCode {
    let parsed = command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return usage_error(err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Token(args) => {
                let headers = matches
                    .subcommand_matches("token")
                    .map(header_values)
                    .unwrap_or_default();
                token(args, headers).await
            }
            Command::Sandbox { port } => sandbox(port).await,
            Command::Demo => demo().await,
            Command::Cache { action } => match action {
                CacheAction::Status(args) => cache_status(args).await,
                CacheAction::Clear(args) => cache_clear(args).await,
            },
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Prints a clap error naming only what the CLI defines (arguments, flags,
/// accepted values), never what the user typed and clap did not recognise: a
/// mistaken value, flag or positional may be a secret pasted in the wrong
/// place. `--help` and `--version` keep clap's output.
fn usage_error(err: clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit()
    }
    let mut root = command();
    root.build();
    // The innermost (sub)command named by the leading words:
    // `paytokens cache status --nope` is about `paytokens cache status`.
    let mut command = root;
    for word in std::env::args_os().skip(1) {
        match command.find_subcommand(&word) {
            Some(sub) => command = sub.clone(),
            None => break,
        }
    }
    eprintln!(
        "error: {}\n\n{}\n\nFor more information, try '--help'.",
        clap_message(&err, &command),
        command.render_usage()
    );
    ExitCode::from(USAGE)
}

/// The message for a clap error in `command` (the root or a subcommand).
fn clap_message(err: &clap::Error, command: &clap::Command) -> String {
    let cmd = format!("`{}`", command.get_bin_name().unwrap_or("paytokens"));
    let invalid = context(err, ContextKind::InvalidArg);
    let arg = invalid.first().copied().unwrap_or_default();
    let flag = name(arg);
    let stray = err.kind() == ErrorKind::UnknownArgument && !arg.starts_with('-');
    // A flag named for the secret or like --client-secret-stdin, or a stray
    // value given to `token`, may carry the client secret; otherwise clap's
    // suggestion (a name it knows) helps.
    let secret_flag = arg.starts_with('-')
        && (flag.to_ascii_lowercase().contains("secret")
            || context(err, ContextKind::SuggestedArg) == ["--client-secret-stdin"]);
    let hint = if secret_flag || (stray && command.get_name() == "token") {
        format!("; {SECRET_TIP}")
    } else {
        [
            ContextKind::SuggestedArg,
            ContextKind::SuggestedSubcommand,
            ContextKind::SuggestedValue,
        ]
        .into_iter()
        .find_map(|kind| {
            context(err, kind)
                .first()
                .map(|known| name(known).to_owned())
        })
        .map(|known| format!("; did you mean {known}?"))
        .unwrap_or_default()
    };
    let message = match err.kind() {
        ErrorKind::UnknownArgument if stray => {
            format!("unexpected argument to {cmd} ({NOT_SHOWN})")
        }
        ErrorKind::UnknownArgument if secret_flag => {
            format!("unexpected argument: {cmd} has no option for the client secret ({NOT_SHOWN})")
        }
        ErrorKind::UnknownArgument => {
            format!("unexpected argument: {cmd} has no such option ({NOT_SHOWN})")
        }
        ErrorKind::TooManyValues => {
            format!("unexpected value for {flag} ({NOT_SHOWN}): {flag} takes no value")
        }
        // A value-taking flag given last, with no value (clap reports it as
        // an invalid empty value, with no valid values).
        ErrorKind::InvalidValue if context(err, ContextKind::ValidValue).is_empty() => {
            format!("{flag} needs a value")
        }
        ErrorKind::InvalidValue => {
            let (noun, subject) = subject(arg, command);
            let valid = context(err, ContextKind::ValidValue).join(", ");
            format!("unknown {noun}: {subject} is not one of {valid} ({NOT_SHOWN})")
        }
        ErrorKind::ValueValidation => {
            let (noun, subject) = subject(arg, command);
            let expected = std::error::Error::source(err)
                .and_then(|e| e.downcast_ref::<Expected>())
                .map_or("valid".to_owned(), ToString::to_string);
            format!("invalid {noun}: {subject} is not {expected} ({NOT_SHOWN})")
        }
        ErrorKind::InvalidSubcommand => {
            let valid: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
            format!(
                "unknown command: the command (first argument of {cmd}) is not one of {} \
                 ({NOT_SHOWN})",
                valid.join(", ")
            )
        }
        ErrorKind::ArgumentConflict => {
            let prior: Vec<&str> = context(err, ContextKind::PriorArg)
                .into_iter()
                .map(name)
                .collect();
            if prior == [flag] {
                format!("{flag} can be given only once")
            } else {
                format!("{flag} cannot be used with {}", prior.join(", "))
            }
        }
        ErrorKind::MissingRequiredArgument => {
            format!("missing required arguments: {}", invalid.join(", "))
        }
        _ => format!("invalid arguments to {cmd} ({NOT_SHOWN}); see {cmd} --help"),
    };
    format!("{message}{hint}")
}

/// The strings clap attached to `err` as `kind`.
fn context(err: &clap::Error, kind: ContextKind) -> Vec<&str> {
    match err.get(kind) {
        Some(ContextValue::String(value)) => vec![value],
        Some(ContextValue::Strings(values)) => values.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

/// An argument's name alone: `--port` of `--port <PORT>` or `--port=80`.
fn name(arg: &str) -> &str {
    arg.split(['=', ' ']).next().unwrap_or_default()
}

/// What a defined argument is called and how to find it, in words: "provider"
/// and "the provider (first argument of \`paytokens token\`)" for `<PROVIDER>`;
/// "value" and "the value of --port" for `--port <PORT>`.
fn subject(arg: &str, command: &clap::Command) -> (String, String) {
    let Some(position) = command.get_positionals().position(|a| a.to_string() == arg) else {
        return ("value".into(), format!("the value of {}", name(arg)));
    };
    let noun = arg.trim_matches(['<', '>', '.']).to_lowercase();
    let ordinal = ["first", "second", "third"]
        .get(position)
        .unwrap_or(&"a later");
    let cmd = command.get_bin_name().unwrap_or("paytokens");
    let subject = format!("the {noun} ({ordinal} argument of `{cmd}`)");
    (noun, subject)
}

/// What an argument accepts: the one value-parser error the CLI shows, as it
/// holds nothing the user typed.
#[derive(Debug)]
struct Expected(&'static str);

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Expected {}

/// `--port`'s parser.
fn parse_port(value: &str) -> Result<u16, Expected> {
    value
        .parse()
        .map_err(|_| Expected("a port number from 0 to 65535"))
}

/// The provider's parser: clap lists the ids in `--help` and in its error.
fn provider_parser() -> impl TypedValueParser<Value = Provider> {
    let ids: Vec<&'static str> = Provider::all().map(Provider::id).collect();
    PossibleValuesParser::new(ids).try_map(|id| id.parse::<Provider>())
}

/// The derived command: `token` gains one flag per header parameter the
/// specs declare (`X-PARTNER-ID` becomes `--partner-id`, read from
/// `PAYTOKENS_PARTNER_ID` too).
fn command() -> clap::Command {
    // mut_subcommands keeps the subcommands in their order (mut_subcommand
    // would move `token` last, and errors list them in that order).
    Cli::command().mut_subcommands(|mut token| {
        if token.get_name() != "token" {
            return token;
        }
        for (flag, params) in header_flags() {
            let owners: Vec<&str> = params.iter().map(|(p, _)| p.name()).collect();
            let (_, param) = params[0];
            let help = format!(
                "{}'s {} header: {}",
                owners.join(" and "),
                param.name,
                param.description.trim_end_matches('.')
            );
            let env = format!("PAYTOKENS_{}", flag.to_uppercase().replace('-', "_"));
            token = token.arg(
                clap::Arg::new(flag.clone())
                    .long(flag.clone())
                    .env(env)
                    .value_name(flag.to_uppercase().replace('-', "_"))
                    .help(help),
            );
        }
        token
    })
}

/// The header parameters of every provider, by flag name, in registry
/// order.
fn header_flags() -> Vec<(String, Vec<(Provider, &'static HeaderParam)>)> {
    let mut flags: Vec<(String, Vec<(Provider, &'static HeaderParam)>)> = Vec::new();
    for provider in Provider::all() {
        for param in provider.spec().headers {
            let flag = flag_name(param.name);
            match flags.iter_mut().find(|(f, _)| *f == flag) {
                Some((_, params)) => params.push((provider, param)),
                None => flags.push((flag, vec![(provider, param)])),
            }
        }
    }
    flags
}

/// `X-PARTNER-ID` -> `partner-id`.
fn flag_name(header: &str) -> String {
    let lower = header.to_ascii_lowercase();
    lower.strip_prefix("x-").unwrap_or(&lower).to_owned()
}

/// The header flags given, by flag name, and whether each came from the
/// command line (rather than the environment).
fn header_values(matches: &ArgMatches) -> Vec<(String, String, bool)> {
    header_flags()
        .into_iter()
        .filter_map(|(flag, _)| {
            let value = matches.get_one::<String>(&flag)?.clone();
            let typed = matches.value_source(&flag) == Some(clap::parser::ValueSource::CommandLine);
            Some((flag, value, typed))
        })
        .collect()
}

/// The ids of the providers for which `has` holds, as `a, b and c`.
fn ids_where(has: impl Fn(Provider) -> bool) -> String {
    let ids: Vec<&str> = Provider::all()
        .filter(|p| has(*p))
        .map(Provider::id)
        .collect();
    match ids.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "none".to_owned(),
    }
}

/// `--env`'s help: the environments each provider's spec names.
fn env_help() -> String {
    let mut help =
        "A host the provider's spec names, by environment, instead of --base-url".to_owned();
    for provider in Provider::all() {
        let names: Vec<&str> = provider.spec().environments().collect();
        if !names.is_empty() {
            help.push_str(&format!("; {provider}: {}", names.join(", ")));
        }
    }
    help
}

/// `--scope`'s help: which providers need scopes, take none, or accept only
/// the ones their spec declares.
fn scope_help() -> String {
    let required = ids_where(|p| p.spec().scope.as_ref().is_some_and(|f| f.required));
    let none = ids_where(|p| p.spec().scope.is_none());
    let mut help = format!(
        "A scope to request; repeat for several. {required} require at least one ({none} take \
         none)"
    );
    for provider in Provider::all() {
        if let Some(declared) = provider.spec().scope.as_ref().and_then(|f| f.declared) {
            help.push_str(&format!(
                "; {provider} accepts only {}",
                declared.join(", ")
            ));
        }
    }
    help
}

fn secret(from_stdin: bool) -> Result<SecretString, Failure> {
    let secret = if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::usage(format!("cannot read the client secret from stdin: {e}"))
        })?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        std::env::var("PAYTOKENS_CLIENT_SECRET").map_err(|_| {
            Failure::usage(
                "no client secret: set PAYTOKENS_CLIENT_SECRET or pass --client-secret-stdin",
            )
        })?
    };
    Ok(SecretString::from(secret))
}

async fn token(args: TokenArgs, flags: Vec<(String, String, bool)>) -> Result<(), Failure> {
    let provider = args.provider;
    let spec = provider.spec();
    // What this provider's spec does not take is refused before the secret
    // is read: never silently dropped.
    if spec.scope.is_none() && !args.scopes.is_empty() {
        return Err(Failure::usage(format!(
            "{provider} takes no scopes (its spec gives them no place): remove --scope"
        )));
    }
    if let Some((flag, _, _)) = flags.iter().find(|(flag, _, typed)| {
        *typed
            && !spec
                .headers
                .iter()
                .any(|param| flag_name(param.name) == *flag)
    }) {
        return Err(Failure::usage(format!(
            "--{flag} is not a flag of {provider} (its spec declares no such header): remove it"
        )));
    }
    let credentials = Credentials::new(args.client_id.clone(), secret(args.client_secret_stdin)?);
    let mut config = Config::new(credentials);
    let environments: Vec<&str> = spec.environments().collect();
    match (&args.base_url, &args.env, spec.default_base_url) {
        (Some(_), Some(_), _) => {
            return Err(Failure::usage("pass --base-url or --env, not both"));
        }
        (Some(base_url), None, _) => config.base_url = Some(base_url.clone()),
        (None, Some(name), _) if spec.environment(name).is_some() => {
            config.environment = Some(name.clone());
        }
        (None, Some(name), _) => {
            let names = if environments.is_empty() {
                "none".to_owned()
            } else {
                environments.join(", ")
            };
            return Err(Failure::usage(format!(
                "{provider} has no environment `{}`; its spec names: {names}",
                name.escape_debug()
            )));
        }
        (None, None, Some(_)) => {}
        (None, None, None) => {
            let env = if environments.is_empty() {
                String::new()
            } else {
                format!(" or --env ({})", environments.join(", "))
            };
            return Err(Failure::usage(format!(
                "{provider} has no default host: pass --base-url{env} or set PAYTOKENS_BASE_URL"
            )));
        }
    }
    if let Some(field) = &spec.scope {
        if let Some(declared) = field.declared
            && !args.scopes.iter().all(|s| declared.contains(&s.as_str()))
        {
            return Err(Failure::usage(format!(
                "unknown scope: a --scope for {provider} is not one of {} ({NOT_SHOWN})",
                declared.join(", ")
            )));
        }
        config.scopes.clone_from(&args.scopes);
    }
    for param in spec.headers {
        let flag = flag_name(param.name);
        match flags.iter().find(|(f, _, _)| *f == flag) {
            Some((_, value, _)) => config.headers.push((param.name.to_owned(), value.clone())),
            None if param.required => {
                let env = format!("PAYTOKENS_{}", flag.to_uppercase().replace('-', "_"));
                return Err(Failure::usage(format!(
                    "{provider} needs a {}: pass --{flag} or set {env}",
                    flag.replace('-', " ")
                )));
            }
            None => {}
        }
    }
    let source = provider.source(config)?;
    let cached;
    let fetched;
    let mut shared = None;
    let token: &AccessToken = match open_store(args.store.cache.as_deref(), false)? {
        Some(store) => {
            let at = store.describe();
            let cache = TokenCache::with_store(source, CachePolicy::default(), store)?;
            let result = cache.token().await;
            if let Some(err) = cache.store_error() {
                let what = if result.is_ok() {
                    "minted without the shared store: later runs cannot reuse this token"
                } else {
                    "asked the provider without the shared store"
                };
                eprintln!(
                    "warning: {err} (at {at}); {what}; check --cache (or PAYTOKENS_CACHE), or \
                     pass --cache none"
                );
            }
            cached = result?;
            shared = Some(cache);
            &cached
        }
        None => {
            fetched = source.fetch().await?;
            &fetched
        }
    };
    let output = if args.json {
        let json = TokenJson {
            provider: token.provider().id(),
            token_type: token.token_type().to_string(),
            access_token: token.secret().expose_secret(),
            expires_in: seconds_left(token),
            scope: token.scopes(),
        };
        serde_json::to_string(&json).map_err(|e| Failure::usage(format!("cannot encode: {e}")))?
    } else {
        token.secret().expose_secret().to_owned()
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{output}").map_err(|e| Failure::usage(format!("cannot write: {e}")))?;
        stdout
            .flush()
            .map_err(|e| Failure::usage(format!("cannot write: {e}")))?;
    }
    // A token minted while the store failed: one more try (bounded by the
    // store's op_timeout, 1 s) to leave it there for the next runs.
    if let Some(cache) = shared
        && cache.store_error().is_some()
    {
        let _ = cache.share_with_store().await;
    }
    Ok(())
}

/// The seconds `token` has left, rounded up: its lifetime when it was just
/// minted, less for one kept from an earlier run.
fn seconds_left(token: &AccessToken) -> u64 {
    let left = token.remaining(tokio::time::Instant::now());
    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    seconds.min(token.lifetime().as_secs().max(1))
}

/// The token store `--cache` (or `PAYTOKENS_CACHE`) names, the user's cache
/// directory when neither is given, or `None` for `none`.
///
/// A store URL that is wrong (or a directory it names that is open to
/// others) is a usage error, whose message never holds the URL's password.
/// The default store failing to open (no cache directory, one open to
/// others, a read-only home) fails `cache` (`strict`), but `token` only
/// warns and mints without a store, as it does when a store fails later.
fn open_store(cache: Option<&str>, strict: bool) -> Result<Option<TokenStore>, Failure> {
    if let Some(url) = cache {
        return TokenStore::from_url(url).map_err(|err| store_failure(&err, Some(url), None));
    }
    let opened = match default_store_dir() {
        Some(dir) => open_default(dir),
        None => Err(StoreError::Config(
            "no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute path".into(),
        )),
    };
    match opened {
        Ok(store) => Ok(Some(store)),
        Err(err) if strict => Err(store_failure(&err, None, None)),
        Err(err) => {
            eprintln!(
                "warning: {err}; the token is not kept for later runs (--cache names another \
                 store; --cache none keeps none, without this warning)"
            );
            Ok(None)
        }
    }
}

/// The default store: `dir`, with its parent (the XDG cache directory)
/// created 0700 when it is missing but its own parent is there, as the XDG
/// spec asks. The store creates anything else missing.
#[cfg(unix)]
fn open_default(dir: PathBuf) -> Result<TokenStore, StoreError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(parent) = dir.parent().filter(|p| !p.exists()) {
        // A failure shows up, with the path, when the store opens.
        let _ = std::fs::DirBuilder::new().mode(0o700).create(parent);
    }
    TokenStore::file(dir)
}

/// No file store here: `--cache` must name a Redis store.
#[cfg(not(unix))]
fn open_default(_dir: PathBuf) -> Result<TokenStore, StoreError> {
    Err(StoreError::Config(
        "no default token store on this platform: pass --cache redis://… or --cache none".into(),
    ))
}

/// `$XDG_CACHE_HOME/paytokens`, else `$HOME/.cache/paytokens`; only
/// absolute paths count (the XDG spec ignores relative ones).
fn default_store_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|cache| cache.join("paytokens"))
}

/// What a store error means for the command: a configuration error is a
/// usage error (exit 2), anything else an unavailable store (exit 4), named
/// by `store` when it is open. With the `url` the user gave, a message that
/// would show its user-info or password is replaced.
fn store_failure(err: &StoreError, url: Option<&str>, store: Option<&TokenStore>) -> Failure {
    let message = url.map_or_else(
        || err.to_string(),
        |url| hide_userinfo(url, err.to_string()),
    );
    match err {
        StoreError::Config(_) if url.is_some() => Failure::usage(format!(
            "{message}; fix --cache (or PAYTOKENS_CACHE), or pass --cache none to keep no tokens"
        )),
        StoreError::Config(_) => Failure::usage(format!(
            "{message}; or pass --cache (or set PAYTOKENS_CACHE) to name another store"
        )),
        _ => {
            let at = store.map_or_else(String::new, |s| format!(" (at {})", s.describe()));
            Failure {
                code: TRANSIENT,
                message: format!("{message}{at}; check that the store is up and reachable"),
            }
        }
    }
}

/// `message`, unless it holds the user-info of `url` (`user:password`) or
/// its password, raw or percent-decoded: then a message saying only that
/// the URL is wrong.
fn hide_userinfo(url: &str, message: String) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return message;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return message;
    };
    let password = userinfo.split_once(':').map_or("", |(_, p)| p);
    let decoded = url::form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .map(|(_, p)| p.into_owned())
        .unwrap_or_default();
    let leaks = [userinfo, password, decoded.as_str()]
        .iter()
        .any(|part| !part.is_empty() && message.contains(part));
    if leaks {
        format!("the token store URL is not valid ({NOT_SHOWN})")
    } else {
        message
    }
}

/// A store call of `cache status|clear`, bounded by
/// [`STORE_COMMAND_TIMEOUT`]; a failure or no answer exits 4.
async fn bounded<T>(
    store: &TokenStore,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(STORE_COMMAND_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(store_failure(&err, None, Some(store))),
        Err(_) => Err(Failure {
            code: TRANSIENT,
            message: format!(
                "token store unavailable: {} did not answer within {} s; check that it is up \
                 and reachable",
                store.describe(),
                STORE_COMMAND_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// `paytokens cache status`.
async fn cache_status(args: StoreArgs) -> Result<(), Failure> {
    let Some(store) = open_store(args.cache.as_deref(), true)? else {
        return print("token store: none (tokens are not kept between runs)");
    };
    let statuses = bounded(&store, store.status()).await?;
    let mut text = format!("token store: {}\n", store.describe());
    if statuses.is_empty() {
        text.push_str("empty\n");
    }
    for status in &statuses {
        text.push_str(&status_line(status));
        text.push('\n');
    }
    print(text.trim_end())
}

/// One credential of `cache status`: `credential <id>: 1 token (expires in
/// 3581 s); mints 2/30 per 3600 s; last error: none`.
fn status_line(status: &CredentialStatus) -> String {
    let lefts: Vec<String> = status
        .tokens
        .iter()
        .map(|token| format!("{} s", token.expires_in.as_secs()))
        .collect();
    let tokens = match lefts.as_slice() {
        [] => "no token".to_owned(),
        [left] => format!("1 token (expires in {left})"),
        lefts => format!("{} tokens (expire in {})", lefts.len(), lefts.join(", ")),
    };
    let mints = match status.budget {
        Some((max, window)) => format!(
            "mints {}/{max} per {} s",
            status.mints_used,
            window.as_secs()
        ),
        None => format!("mints {} (no budget recorded)", status.mints_used),
    };
    let last_error = match &status.last_error {
        Some((class, age)) => format!("{class}, {} s ago", age.as_secs()),
        None => "none".to_owned(),
    };
    let store_failure = match &status.last_store_failure {
        Some((what, age)) => format!("; last store failure: {what}, {} s ago", age.as_secs()),
        None => String::new(),
    };
    format!(
        "credential {}: {tokens}; {mints}; last error: {last_error}{store_failure}",
        status.id
    )
}

/// `paytokens cache clear`.
async fn cache_clear(args: StoreArgs) -> Result<(), Failure> {
    let Some(store) = open_store(args.cache.as_deref(), true)? else {
        return print("token store: none (tokens are not kept between runs): nothing to clear");
    };
    let cleared = bounded(&store, store.clear()).await?;
    let entries = if cleared == 1 { "entry" } else { "entries" };
    print(&format!(
        "cleared {cleared} {entries} from {}",
        store.describe()
    ))
}

/// Prints `text` and a newline on stdout.
fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| Failure::usage(format!("cannot write: {e}")))
}

async fn sandbox(port: u16) -> Result<(), Failure> {
    let sandbox = Sandbox::start_on(port)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    // Held until the banner is out, so request lines only follow it.
    let banner = std::io::stdout().lock();
    sandbox.on_request(|record| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{record}");
        let _ = stdout.flush();
    });
    println!(
        "paytokens sandbox on http://{} (Ctrl-C to stop)\n",
        sandbox.addr()
    );
    for provider in Provider::all() {
        let client = sandbox.client(provider);
        let line = |label: &str, value: &str| println!("  {:<15}{value}", format!("{label}:"));
        println!("{} ({})", provider.id(), provider.name());
        line("base URL", &sandbox.base_url(provider));
        line("client id", &client.client_id);
        line("client secret", client.client_secret.expose_secret());
        for (name, value) in &client.headers {
            line(&flag_name(name).replace('-', " "), value);
        }
        if !client.granted_scopes.is_empty() {
            line("scopes", &client.granted_scopes.join(" "));
        }
        println!();
    }
    let _ = std::io::stdout().flush();
    drop(banner);
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::usage(format!("cannot wait for Ctrl-C: {e}")))?;
    sandbox.shutdown();
    Ok(())
}

/// A token through `cache`, with what the demo shows of it: type, lifetime
/// and scopes.
async fn describe(
    cache: &TokenCache<paytokens::AnySource>,
) -> Result<(String, u64, String), TokenError> {
    let token = cache.token().await?;
    Ok((
        token.token_type().to_string(),
        token.lifetime().as_secs(),
        token.scopes().join(" "),
    ))
}

async fn demo() -> Result<(), Failure> {
    let progress = std::io::stderr().is_terminal();
    eprintln!("Starting the sandbox on 127.0.0.1 ...");
    let sandbox = Sandbox::start()
        .await
        .map_err(|e| Failure::usage(format!("cannot start the sandbox: {e}")))?;
    eprintln!("Sandbox listening on http://{}\n", sandbox.addr());
    let mut caches = Vec::new();
    let mut rows = Vec::new();
    for provider in Provider::all() {
        if progress {
            eprint!("Fetching a token from {} ...\r", provider.id());
        }
        let cache = TokenCache::new(provider.source(sandbox.config(provider))?);
        let started = Instant::now();
        let (token_type, expires_in, scopes) = describe(&cache).await?;
        let latency = started.elapsed();
        rows.push((provider, token_type, expires_in, scopes, latency));
        caches.push(cache);
    }
    if progress {
        eprint!("{:60}\r", "");
    }
    // The provider column as wide as the longest id.
    let width = Provider::all()
        .map(|p| p.id().len())
        .max()
        .unwrap_or(0)
        .max(14);
    println!(
        "{:<width$} {:<10} {:>10}  {:>9}  SCOPES",
        "PROVIDER", "TYPE", "EXPIRES IN", "LATENCY"
    );
    for (provider, token_type, expires_in, scopes, latency) in &rows {
        let scopes = if scopes.is_empty() {
            "(none reported)"
        } else {
            scopes
        };
        println!(
            "{:<width$} {:<10} {:>9}s  {:>9}  {}",
            provider.id(),
            token_type,
            expires_in,
            format_latency(*latency),
            scopes
        );
    }
    let minted: usize = Provider::all().map(|p| sandbox.mints(p)).sum();
    let started = Instant::now();
    for cache in &caches {
        cache.token().await?;
    }
    let second = started.elapsed();
    let minted_again = Provider::all().map(|p| sandbox.mints(p)).sum::<usize>() - minted;
    println!(
        "\nSecond round: {} tokens served from the cache in {}, {} new mints.",
        caches.len(),
        format_latency(second),
        minted_again
    );
    protected_api(&sandbox, &caches).await?;
    sandbox.shutdown();
    Ok(())
}

/// The demo's last part: each provider's protected API called through the
/// reqwest-middleware over that provider's cache, before and after the
/// sandbox revokes its tokens. What the API answered comes from the
/// sandbox's request log; one line per provider:
/// `autopay        200 -> revoked -> 401 -> 1 refresh -> 200 (mints 1 -> 2)`.
async fn protected_api(
    sandbox: &Sandbox,
    caches: &[TokenCache<paytokens::AnySource>],
) -> Result<(), Failure> {
    let answers: Arc<Mutex<Vec<(Provider, u16)>>> = Arc::default();
    let log = Arc::clone(&answers);
    sandbox.on_request(move |record| {
        if record.path.ends_with("/api/protected") {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            log.push((record.provider, record.status));
        }
    });
    let origin = format!("http://{}", sandbox.addr());
    println!(
        "\nProtected API through the middleware, revoking each provider's tokens between two \
         calls:"
    );
    for cache in caches {
        let provider = cache.key().provider;
        let bearer = Bearer::new(cache.clone(), [origin.as_str()])
            .map_err(|e| Failure::usage(format!("cannot attach tokens to the sandbox: {e}")))?;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(bearer)
            .build();
        let url = sandbox.api_url(provider);
        let statuses = |answers: &Mutex<Vec<(Provider, u16)>>| {
            let mut answers = answers.lock().unwrap_or_else(PoisonError::into_inner);
            let mine: Vec<u16> = answers
                .iter()
                .filter(|(p, _)| *p == provider)
                .map(|(_, status)| *status)
                .collect();
            answers.retain(|(p, _)| *p != provider);
            mine
        };
        let first = call(&client, &url).await?;
        let before = statuses(&answers);
        sandbox.revoke(provider);
        let mints = sandbox.mints(provider);
        let second = call(&client, &url).await?;
        let after = statuses(&answers);
        let refreshes = sandbox.mints(provider) - mints;
        let show = |statuses: &[u16]| {
            statuses
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" -> ")
        };
        let retried = match after.as_slice() {
            [401, last] => format!("401 -> {refreshes} refresh -> {last}"),
            other => format!("{} ({refreshes} refresh)", show(other)),
        };
        println!(
            "{:<14} {} -> revoked -> {retried} (mints {mints} -> {})",
            provider.id(),
            show(&before),
            sandbox.mints(provider)
        );
        if first != 200 || second != 200 {
            return Err(Failure {
                code: TRANSIENT,
                message: format!(
                    "{provider}'s protected API answered {first}, then {second}; expected 200 both \
                     times"
                ),
            });
        }
    }
    Ok(())
}

/// One call of a protected API through the middleware: the final status.
async fn call(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
) -> Result<u16, Failure> {
    match client.get(url).send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(reqwest_middleware::Error::Middleware(err)) => match err.downcast::<TokenError>() {
            Ok(token_error) => Err(token_error.into()),
            Err(other) => Err(Failure {
                code: TRANSIENT,
                message: format!("the middleware failed: {other}"),
            }),
        },
        Err(reqwest_middleware::Error::Reqwest(err)) => Err(Failure {
            code: TRANSIENT,
            message: format!("calling the sandbox's protected API failed: {err}"),
        }),
    }
}

fn format_latency(latency: Duration) -> String {
    if latency < Duration::from_millis(1) {
        format!("{} µs", latency.as_micros())
    } else {
        format!("{:.1} ms", latency.as_secs_f64() * 1000.0)
    }
}
