//! The scenarios the parent runs, each against real processes, a real
//! `redis-server` or a real directory, and the sandbox token endpoint.
//!
//! Durations are never asserted, except the two bounds the issues set: a
//! lock holder killed mid-mint is taken over within its lease + 1 s, and a
//! token invalidated in one process stops being served by the others
//! within 1 s (directory store). Every other wait is a bound on a hang,
//! failing with what was awaited.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use paytokens::sandbox::{Fault, Sandbox, SandboxClient};
use paytokens::{Provider, TokenSource as _};

use crate::common::CANARY_SECRET;
use crate::parent::{Proc, Spec, TempDir, fleet, go_all, quit_all};
use crate::redis_server::{RedisCluster, RedisSentinels, RedisServer};
use crate::{Call, Reply};

/// The sandbox latency of the cold-start scenario.
const LATENCY: Duration = Duration::from_millis(300);
/// Processes and callers of the cold-start scenario.
const PROCESSES: usize = 20;
/// Callers per process in the cold-start and lock-holder scenarios.
const TASKS: usize = 100;
/// The pace of the rounds of calls in the store-outage scenario.
const ROUND: Duration = Duration::from_millis(200);

/// What every scenario shares: the sandbox (on its own runtime) and the
/// measured latency of one fetch with [`LATENCY`] injected.
pub struct Ctx {
    sandbox: Sandbox,
    provider: Provider,
    /// One fetch against the sandbox with [`LATENCY`] injected, in ms.
    single_fetch_ms: f64,
    /// Declared last: dropped after the sandbox that runs on it.
    runtime: tokio::runtime::Runtime,
}

/// A scenario: its notes for the closing note (`fleet: …` lines).
type Scenario = fn(&Ctx) -> Vec<String>;

/// Runs every scenario (or those `FLEET_ONLY` names); the exit code.
pub fn run_all() -> i32 {
    let scenarios: [(&str, Scenario); 12] = [
        ("one_mint_redis", one_mint_redis),
        ("one_mint_file", one_mint_file),
        (
            "one_mint_then_primary_killed_cluster",
            one_mint_then_primary_killed_cluster,
        ),
        (
            "one_mint_then_failover_sentinel",
            one_mint_then_failover_sentinel,
        ),
        ("wrong_secret_redis", wrong_secret_redis),
        ("wrong_secret_file", wrong_secret_file),
        (
            "redis_paused_during_the_first_mint",
            redis_paused_during_the_first_mint,
        ),
        (
            "file_invalidation_reaches_other_processes",
            file_invalidation_reaches_other_processes,
        ),
        ("holder_killed_redis", holder_killed_redis),
        ("holder_killed_file", holder_killed_file),
        ("redis_paused_then_stopped", redis_paused_then_stopped),
        (
            "budget_across_processes_redis",
            budget_across_processes_redis,
        ),
    ];
    let only: Option<Vec<String>> = std::env::var("FLEET_ONLY")
        .ok()
        .map(|only| only.split(',').map(str::to_owned).collect());
    let selected: Vec<_> = scenarios
        .into_iter()
        .filter(|(name, _)| {
            only.as_ref()
                .is_none_or(|only| only.iter().any(|part| name.contains(part.as_str())))
        })
        .collect();
    println!("\nrunning {} tests", selected.len());
    let ctx = Ctx::start();
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, scenario) in selected.iter().copied() {
        match std::panic::catch_unwind(AssertUnwindSafe(|| scenario(&ctx))) {
            Ok(notes) => {
                println!("test {name} ... ok");
                for note in notes {
                    println!("{note}");
                }
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    let outcome = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {outcome}. {passed} passed; {} failed; finished in {:.2}s\n",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() { 0 } else { 101 }
}

impl Ctx {
    /// Starts the sandbox and measures one fetch with [`LATENCY`].
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the sandbox");
        let sandbox = runtime
            .block_on(Sandbox::start())
            .expect("start the sandbox on 127.0.0.1");
        let provider: Provider = "autopay".parse().expect("autopay is a provider");
        let mut ctx = Self {
            sandbox,
            provider,
            single_fetch_ms: 0.0,
            runtime,
        };
        let probe = ctx.client("probe", None);
        let config = paytokens::Config::new(paytokens::Credentials::new(
            probe.client_id.clone(),
            probe.secret.clone(),
        ))
        .base_url(&probe.base_url);
        let demo = SandboxClient::demo(provider);
        let mut config = if provider.spec().scope.is_some() {
            config.scopes(demo.granted_scopes)
        } else {
            config
        };
        config.headers = demo.headers;
        let source = provider.source(config).expect("the probe's source");
        ctx.sandbox.inject(provider, Fault::Latency(LATENCY), 1);
        let started = Instant::now();
        let fetched = ctx.runtime.block_on(source.fetch());
        ctx.single_fetch_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(err) = fetched {
            panic!("the probe fetch from the sandbox failed: {err}");
        }
        ctx.sandbox.clear_faults();
        ctx
    }

    /// Registers a client for `scenario` with the canary secret (and
    /// `lifetime`), and returns the children's spec for it, store unset.
    fn client(&self, scenario: &str, lifetime: Option<Duration>) -> Spec {
        let mut client = SandboxClient::demo(self.provider);
        client.client_id = format!("CANARY-ID-fleet-{scenario}");
        client.client_secret = CANARY_SECRET.into();
        if let Some(lifetime) = lifetime {
            client.lifetime = lifetime;
        }
        let client_id = client.client_id.clone();
        self.sandbox.add_client(self.provider, client);
        Spec {
            store: String::new(),
            base_url: self.sandbox.base_url(self.provider),
            provider: self.provider,
            client_id,
            secret: CANARY_SECRET.to_owned(),
            lease: None,
            max_mints: None,
            tasks: TASKS,
        }
    }

    /// The sandbox's mints for `spec`'s client.
    fn mints(&self, spec: &Spec) -> usize {
        self.sandbox.mints_for(self.provider, &spec.client_id)
    }

    /// Requests the sandbox's endpoint received, all clients together.
    fn requests(&self) -> usize {
        self.sandbox.requests(self.provider)
    }
}

/// Every call of `replies`, with the child's name.
fn calls(procs: &[Proc], replies: &[Reply]) -> Vec<(String, Call)> {
    procs
        .iter()
        .zip(replies)
        .flat_map(|(proc, reply)| {
            reply
                .calls
                .iter()
                .map(move |call| (proc.name.clone(), call.clone()))
        })
        .collect()
}

/// Fails unless every call got a token; the distinct fingerprints.
fn assert_all_ok(what: &str, calls: &[(String, Call)]) -> BTreeSet<String> {
    let failed: Vec<_> = calls.iter().filter(|(_, call)| !call.ok()).collect();
    if let Some((name, first)) = failed.first() {
        panic!(
            "{what}: {} of {} callers failed; the first, in {name}: {:?}",
            failed.len(),
            calls.len(),
            first.error
        );
    }
    calls
        .iter()
        .filter_map(|(_, call)| call.fp.clone())
        .collect()
}

/// The `q` quantile of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Waits until `done`, at most `bound` (a hang guard, not an assertion on
/// speed), failing with `what`.
fn wait_until(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {} s for {what}",
            bound.as_secs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// [`one_mint`] on a fresh `redis-server`.
fn one_mint_redis(ctx: &Ctx) -> Vec<String> {
    let redis = RedisServer::start();
    let notes = one_mint(ctx, "one_mint_redis", redis.url());
    drop(redis);
    notes
}

/// On a fresh 3-primary, 3-replica Redis Cluster: [`one_mint`]; then,
/// with the store emptied, [`primary_lost`], the primary holding the
/// entry's slot killed (SIGKILL) and its replica taking the slots over.
fn one_mint_then_primary_killed_cluster(ctx: &Ctx) -> Vec<String> {
    let mut cluster = RedisCluster::start();
    let url = cluster.url();
    let mut notes = one_mint(ctx, "one_mint_cluster", url.clone());
    cluster.flush(&[]);
    notes.extend(primary_lost(ctx, "primary_killed_cluster", url, || {
        cluster.kill_primary_holding(&[], "paytokens:*")
    }));
    notes
}

/// Through three sentinels to a primary with a replica: [`one_mint`];
/// then, with the store emptied, [`primary_lost`], the primary killed
/// (SIGKILL) and the sentinels failing over to the replica.
fn one_mint_then_failover_sentinel(ctx: &Ctx) -> Vec<String> {
    let mut set = RedisSentinels::start(None);
    let url = set.url();
    let mut notes = one_mint(ctx, "one_mint_sentinel", url.clone());
    set.primary.cli(&["FLUSHALL"]);
    notes.extend(primary_lost(ctx, "failover_sentinel", url, || {
        let killed = Instant::now();
        set.fail_over();
        killed.elapsed()
    }));
    notes
}

/// [`PROCESSES`] processes x [`TASKS`] callers against a cold store; the
/// store's primary is lost (`lose`, which returns how long the topology
/// took to fail over) while the first mint runs. Every caller gets a
/// token, at most 2 are minted, and the fleet is on one token again
/// after the failover, with no mint in the next wave.
fn primary_lost(
    ctx: &Ctx,
    name: &str,
    store: String,
    lose: impl FnOnce() -> Duration,
) -> Vec<String> {
    ctx.sandbox.clear_faults();
    let mut spec = ctx.client(name, None);
    spec.store = store;
    let mut procs = fleet(&spec, PROCESSES);
    let slow = Duration::from_millis(1000);
    ctx.sandbox
        .inject(ctx.provider, Fault::Latency(slow), PROCESSES * 2);
    let before = ctx.requests();
    for proc in procs.iter_mut() {
        proc.send("go");
    }
    wait_until(
        Duration::from_secs(30),
        "the first mint request to reach the sandbox",
        || ctx.requests() > before,
    );
    let killed = Instant::now();
    let failover = lose();
    let replies: Vec<Reply> = procs.iter_mut().map(|proc| proc.reply("go")).collect();
    ctx.sandbox.clear_faults();
    let calls = calls(&procs, &replies);
    assert_eq!(calls.len(), PROCESSES * TASKS, "every caller answered");
    let tokens = assert_all_ok(name, &calls);
    let mints = ctx.mints(&spec);
    assert!(
        mints <= 2,
        "{name}: {PROCESSES} processes minted {mints} tokens through the failover"
    );
    let rounds = converge_then_mint_nothing(ctx, &spec, &mut procs, name, mints);
    let converged = killed.elapsed();
    quit_all(procs);
    vec![format!(
        "fleet: {name}: {PROCESSES} processes x {TASKS} callers, the primary lost while the \
         first mint ran: failover in {} ms; {} callers, 0 errors, {mints} mint(s), {} token(s) \
         in that wave; one token for every caller {} ms after the kill ({rounds} round(s)), \
         then a wave with 0 mints",
        failover.as_millis(),
        calls.len(),
        tokens.len(),
        converged.as_millis()
    )]
}

/// [`one_mint`] in a fresh 0700 directory.
fn one_mint_file(ctx: &Ctx) -> Vec<String> {
    let dir = TempDir::new("one_mint_file");
    one_mint(ctx, "one_mint_file", dir.url())
}

/// [`PROCESSES`] processes x [`TASKS`] callers, released together against
/// a cold store and a slow provider: exactly one mint, one token for all.
fn one_mint(ctx: &Ctx, name: &str, store: String) -> Vec<String> {
    ctx.sandbox.clear_faults();
    let mut spec = ctx.client(name, None);
    spec.store = store;
    let mut procs = fleet(&spec, PROCESSES);
    // Every request is slow, should there be more than one.
    ctx.sandbox
        .inject(ctx.provider, Fault::Latency(LATENCY), PROCESSES * 4);
    let replies = go_all(&mut procs);
    ctx.sandbox.clear_faults();
    let calls = calls(&procs, &replies);
    assert_eq!(calls.len(), PROCESSES * TASKS, "every caller answered");
    let tokens = assert_all_ok(name, &calls);
    assert_eq!(
        tokens.len(),
        1,
        "{name}: the callers got {} different tokens",
        tokens.len()
    );
    let mints = ctx.mints(&spec);
    assert_eq!(
        mints, 1,
        "{name}: {PROCESSES} processes x {TASKS} callers minted {mints} tokens"
    );
    quit_all(procs);
    let mut waits: Vec<f64> = calls.iter().map(|(_, call)| call.wait_ms).collect();
    waits.sort_by(f64::total_cmp);
    vec![format!(
        "fleet: {name}: {PROCESSES} processes x {TASKS} callers released together: {mints} mint, \
         {} callers on one token; caller wait p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         a single fetch with the same {} ms injected latency takes {:.0} ms",
        calls.len(),
        quantile(&waits, 0.50),
        quantile(&waits, 0.99),
        waits.last().copied().unwrap_or(f64::NAN),
        LATENCY.as_millis(),
        ctx.single_fetch_ms
    )]
}

/// Processes of the wrong-secret scenario (issue 18: "40 processes with a
/// wrong secret").
const WRONG_SECRET_PROCESSES: usize = 40;

/// [`wrong_secret`] on a fresh `redis-server`.
fn wrong_secret_redis(ctx: &Ctx) -> Vec<String> {
    let redis = RedisServer::start();
    let notes = wrong_secret(ctx, "wrong_secret_redis", redis.url());
    drop(redis);
    notes
}

/// [`wrong_secret`] in a fresh 0700 directory.
fn wrong_secret_file(ctx: &Ctx) -> Vec<String> {
    let dir = TempDir::new("wrong_secret_file");
    wrong_secret(ctx, "wrong_secret_file", dir.url())
}

/// [`WRONG_SECRET_PROCESSES`] processes x [`TASKS`] callers with a wrong
/// secret, released together: the lock holder's one request is refused,
/// every caller of every process gets that rejection, and a second wave of
/// new processes (nothing in memory: only the store knows) within the
/// cooldown (60 s, the default) sends nothing at all.
fn wrong_secret(ctx: &Ctx, name: &str, store: String) -> Vec<String> {
    ctx.sandbox.clear_faults();
    let mut spec = ctx.client(name, None);
    spec.secret = "CANARY-SECRET-wrong-0b7c".to_owned();
    spec.store = store;
    // Slow, so that every process is waiting while the holder asks.
    ctx.sandbox.inject(
        ctx.provider,
        Fault::Latency(LATENCY),
        WRONG_SECRET_PROCESSES,
    );
    let before = ctx.requests();
    let mut waves = Vec::new();
    for wave in ["first", "second"] {
        let mut procs = fleet(&spec, WRONG_SECRET_PROCESSES);
        let replies = go_all(&mut procs);
        let calls = calls(&procs, &replies);
        assert_eq!(
            calls.len(),
            WRONG_SECRET_PROCESSES * TASKS,
            "{name}: every caller answered"
        );
        for (child, call) in &calls {
            assert_eq!(
                call.class.as_deref(),
                Some("rejected"),
                "{name}: {wave} wave, {child}: {:?}",
                call.error.as_deref().map(|e| spec.redact(e))
            );
            let error = call.error.as_deref().unwrap_or_default();
            assert!(
                error.contains("wrong client secret") || error.contains("401"),
                "{name}: {wave} wave, {child}: not the provider's rejection: {}",
                spec.redact(error)
            );
        }
        waves.push(ctx.requests() - before);
        quit_all(procs);
    }
    ctx.sandbox.clear_faults();
    assert_eq!(
        waves[0], 1,
        "{name}: {WRONG_SECRET_PROCESSES} processes with a wrong secret sent {} requests",
        waves[0]
    );
    assert_eq!(
        waves[1] - waves[0],
        0,
        "{name}: a second wave within the cooldown asked the provider again"
    );
    assert_eq!(ctx.mints(&spec), 0);
    vec![format!(
        "fleet: {name}: {WRONG_SECRET_PROCESSES} processes x {TASKS} callers with a wrong \
         secret: {} request to the provider in the first wave, {} in a second wave within \
         the cooldown; every caller got the rejection",
        waves[0],
        waves[1] - waves[0]
    )]
}

/// [`WRONG_SECRET_PROCESSES`] processes x [`TASKS`] callers released
/// together against a cold store; Redis paused (SIGSTOP) for 4 s while the
/// first mint runs: the waiters trust the holder's live lease instead of
/// minting alone, so no caller fails and at most 2 tokens are minted; the
/// next wave mints nothing and every caller has one token.
fn redis_paused_during_the_first_mint(ctx: &Ctx) -> Vec<String> {
    let name = "redis_paused_during_the_first_mint";
    let pause = Duration::from_secs(4);
    ctx.sandbox.clear_faults();
    let mut redis = RedisServer::start();
    let mut spec = ctx.client(name, None);
    spec.store = redis.url();
    let mut procs = fleet(&spec, WRONG_SECRET_PROCESSES);
    // The first mint takes 800 ms: the pause starts while it runs.
    let slow = Duration::from_millis(800);
    ctx.sandbox.inject(
        ctx.provider,
        Fault::Latency(slow),
        WRONG_SECRET_PROCESSES * 2,
    );
    for proc in procs.iter_mut() {
        proc.send("go");
    }
    std::thread::sleep(Duration::from_millis(300));
    redis.pause();
    std::thread::sleep(pause);
    redis.resume();
    let replies: Vec<Reply> = procs.iter_mut().map(|proc| proc.reply("go")).collect();
    ctx.sandbox.clear_faults();
    let calls = calls(&procs, &replies);
    assert_eq!(
        calls.len(),
        WRONG_SECRET_PROCESSES * TASKS,
        "every caller answered"
    );
    let tokens = assert_all_ok(name, &calls);
    let mints = ctx.mints(&spec);
    assert!(
        mints <= 2,
        "{name}: {WRONG_SECRET_PROCESSES} processes minted {mints} tokens through a {} s pause",
        pause.as_secs()
    );
    // The next wave (once every process holds the token the store has).
    let rounds = converge_then_mint_nothing(ctx, &spec, &mut procs, name, mints);
    quit_all(procs);
    drop(redis);
    vec![format!(
        "fleet: {name}: {WRONG_SECRET_PROCESSES} processes x {TASKS} callers, Redis paused {} s \
         while the first mint ran: {} callers, 0 errors, {mints} mint(s), {} token(s) in that \
         wave; one token for every caller after {rounds} round(s), then a wave with 0 mints",
        pause.as_secs(),
        calls.len(),
        tokens.len()
    )]
}

/// [`holder_killed`] on a fresh `redis-server`: the lock is a lease.
fn holder_killed_redis(ctx: &Ctx) -> Vec<String> {
    let redis = RedisServer::start();
    let notes = holder_killed(ctx, "holder_killed_redis", redis.url());
    drop(redis);
    notes
}

/// [`holder_killed`] in a fresh 0700 directory: the OS frees the lock
/// of a dead process at once.
fn holder_killed_file(ctx: &Ctx) -> Vec<String> {
    let dir = TempDir::new("holder_killed_file");
    holder_killed(ctx, "holder_killed_file", dir.url())
}

/// Child A takes the mint lock and is killed (SIGKILL) while the provider
/// holds its request; four processes waiting on the lock take it over
/// within the lease + 1 s, and all of their callers get one token.
fn holder_killed(ctx: &Ctx, name: &str, store: String) -> Vec<String> {
    // The processes waiting on the lock when its holder dies.
    const SURVIVORS: usize = 4;
    let lease = Duration::from_secs(2);
    ctx.sandbox.clear_faults();
    let mut spec = ctx.client(name, None);
    spec.store = store;
    spec.lease = Some(lease);
    let before = ctx.requests();

    let mut holder = Proc::spawn(&spec, "child A (the lock holder)");
    holder.ready();
    ctx.sandbox
        .inject(ctx.provider, Fault::Latency(Duration::from_secs(10)), 1);
    holder.send("go");
    wait_until(
        Duration::from_secs(30),
        "child A's mint request to reach the sandbox",
        || ctx.requests() > before,
    );

    let mut survivors: Vec<Proc> = (1..=SURVIVORS)
        .map(|i| Proc::spawn(&spec, &format!("survivor {i}")))
        .collect();
    for survivor in &mut survivors {
        survivor.ready();
    }
    for survivor in &mut survivors {
        survivor.send("go");
    }
    wait_until(
        Duration::from_secs(30),
        "every survivor to wait on child A's mint lock",
        || {
            survivors
                .iter()
                .all(|s| s.traced("waiting for another process's mint"))
        },
    );
    assert_eq!(
        ctx.requests(),
        before + 1,
        "{name}: a survivor called the provider while child A held the mint lock"
    );

    let killed = Instant::now();
    holder.kill_and_check();
    wait_until(
        lease + Duration::from_secs(30),
        "a survivor's mint request after child A was killed",
        || ctx.requests() > before + 1,
    );
    let takeover = killed.elapsed();

    let replies: Vec<Reply> = survivors.iter_mut().map(|s| s.reply("go")).collect();
    let calls = calls(&survivors, &replies);
    let tokens = assert_all_ok(name, &calls);
    assert_eq!(
        tokens.len(),
        1,
        "{name}: the survivors got {} different tokens",
        tokens.len()
    );
    assert!(
        takeover <= lease + Duration::from_secs(1),
        "{name}: the mint lock of killed child A was taken over after {} ms, more than its \
         lease ({} ms) + 1 s",
        takeover.as_millis(),
        lease.as_millis()
    );
    assert!(
        survivors.iter().any(|s| s.traced("mint lock taken over")),
        "{name}: no survivor traced that it took the mint lock over"
    );
    let requests = ctx.requests() - before;
    let mints = ctx.mints(&spec);
    assert!(
        requests <= 2 && mints <= 2,
        "{name}: {requests} requests to the provider and {mints} mints (at most 2: child A's \
         and the takeover's)"
    );
    quit_all(survivors);
    vec![format!(
        "fleet: {name}: lock holder killed (SIGKILL) mid-mint with {SURVIVORS} processes x \
         {TASKS} callers waiting: takeover mint request {} ms after the kill (lease {} ms); \
         {requests} requests to the provider, {mints} mint(s) (the killed holder's may count); \
         {} callers, 0 errors, one token",
        takeover.as_millis(),
        lease.as_millis(),
        calls.len()
    )]
}

/// One round of calls: `go` to every child, every caller must succeed.
fn round(procs: &mut [Proc], what: &str) -> Vec<Reply> {
    let replies = go_all(procs);
    assert_all_ok(what, &calls(procs, &replies));
    replies
}

/// The fingerprints each child's callers got in `replies`.
fn per_child(replies: &[Reply]) -> Vec<BTreeSet<String>> {
    replies
        .iter()
        .map(|reply| reply.calls.iter().filter_map(|c| c.fp.clone()).collect())
        .collect()
}

/// Rounds until every caller of every process holds one token (at most
/// 30 s), then one more wave: one token, and no mint beyond the `mints`
/// already made. The rounds' count.
fn converge_then_mint_nothing(
    ctx: &Ctx,
    spec: &Spec,
    procs: &mut [Proc],
    name: &str,
    mints: usize,
) -> usize {
    let rounds = rounds_until(procs, name, Duration::from_secs(30), |replies| {
        per_child(replies)
            .iter()
            .flatten()
            .collect::<BTreeSet<_>>()
            .len()
            == 1
    });
    let next = round(procs, name);
    let fps: BTreeSet<String> = per_child(&next).into_iter().flatten().collect();
    assert_eq!(
        fps.len(),
        1,
        "{name}: the next wave holds {} tokens",
        fps.len()
    );
    let after = ctx.mints(spec);
    assert_eq!(
        after,
        mints,
        "{name}: the next waves minted {} more",
        after - mints
    );
    rounds
}

/// Rounds every [`ROUND`] until `done` says so, at most `bound`; the
/// rounds' count.
fn rounds_until(
    procs: &mut [Proc],
    what: &str,
    bound: Duration,
    mut done: impl FnMut(&[Reply]) -> bool,
) -> usize {
    let started = Instant::now();
    let mut count = 0;
    loop {
        let next = Instant::now() + ROUND;
        let replies = round(procs, what);
        count += 1;
        if done(&replies) {
            return count;
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not done after {} s of rounds; last round's tokens per child: {:?}",
            bound.as_secs(),
            per_child(&replies)
                .iter()
                .map(|fps| fps.iter().map(|fp| &fp[..8]).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Five warm processes; Redis paused (SIGSTOP) past the token's expiry,
/// then resumed and killed, then restarted: no call fails, each process
/// mints alone once while no valid token is left, and the fleet converges
/// on one token when Redis is back.
fn redis_paused_then_stopped(ctx: &Ctx) -> Vec<String> {
    // The processes.
    const N: usize = 5;
    let name = "redis_paused_then_stopped";
    let lifetime = Duration::from_secs(8);
    ctx.sandbox.clear_faults();
    let mut redis = RedisServer::start();
    let mut spec = ctx.client(name, Some(lifetime));
    spec.store = redis.url();
    spec.tasks = 20;
    let mut procs = fleet(&spec, N);

    let warm = round(&mut procs, "warming up");
    let warm_tokens = assert_all_ok("warming up", &calls(&procs, &warm));
    assert_eq!(
        warm_tokens.len(),
        1,
        "warming up: {} tokens",
        warm_tokens.len()
    );
    assert_eq!(ctx.mints(&spec), 1, "warming up minted more than once");
    let first = warm_tokens.into_iter().next().unwrap_or_default();

    // Paused: the token is kept while valid; once it expired, each process
    // mints alone (the store does not answer).
    redis.pause();
    let paused = Instant::now();
    let paused_rounds = rounds_until(
        &mut procs,
        "Redis paused (SIGSTOP)",
        lifetime + Duration::from_secs(20),
        |replies| per_child(replies).iter().all(|fps| !fps.contains(&first)),
    );
    let paused_for = paused.elapsed();
    let outage_mints = ctx.mints(&spec) - 1;
    assert_eq!(
        outage_mints, N,
        "while Redis was paused, past the token's expiry, {N} processes minted {outage_mints} \
         tokens: each should mint alone exactly once"
    );

    // Resumed for a moment, then killed: the processes keep their tokens.
    redis.resume();
    redis.kill();
    let killed = Instant::now();
    let killed_rounds = rounds_until(&mut procs, "Redis killed", Duration::from_secs(10), |_| {
        killed.elapsed() >= Duration::from_millis(1500)
    });

    // Restarted, empty: the fleet converges on one token.
    redis.restart();
    let restarted = Instant::now();
    let recovery_rounds = rounds_until(
        &mut procs,
        "Redis restarted",
        Duration::from_secs(30),
        |replies| {
            let all: BTreeSet<&String> = replies
                .iter()
                .flat_map(|r| &r.calls)
                .filter_map(|c| c.fp.as_ref())
                .collect();
            all.len() == 1
        },
    );
    let converged = restarted.elapsed();
    let recovery_mints = ctx.mints(&spec) - 1 - N;
    // The processes' own tokens were minted when the first expired, so
    // when Redis is back they are past their refresh point (8 s lifetime,
    // refreshed 4 s early): the first process to reach Redis either stores
    // its own (no mint) or, holding the mint lock, refreshes it once for
    // the whole fleet. More would be a mint storm.
    assert!(
        recovery_mints <= 1,
        "after Redis came back, the fleet minted {recovery_mints} more tokens before converging \
         (at most 1: one refresh under the mint lock)"
    );
    quit_all(procs);
    drop(redis);
    vec![format!(
        "fleet: {name}: {N} processes, {}-s tokens, calls every {} ms: 0 failed calls in \
         {} rounds; Redis paused {:.1} s (past expiry): {outage_mints} mints, one per process; \
         killed {} rounds; restarted: one token again after {:.2} s ({recovery_rounds} rounds), \
         with {recovery_mints} mint(s) after the restart (at most 1)",
        lifetime.as_secs(),
        ROUND.as_millis(),
        1 + paused_rounds + killed_rounds + recovery_rounds,
        paused_for.as_secs_f64(),
        killed_rounds,
        converged.as_secs_f64()
    )]
}

/// Four warm processes on a directory store, one token; one process
/// invalidates it (its API answered 401): the other three stop serving it
/// within 1 s (the bound, the one duration asserted here besides
/// the takeover's), without a hit ever reading the store, and the fleet
/// moves to one new token with one mint.
fn file_invalidation_reaches_other_processes(ctx: &Ctx) -> Vec<String> {
    const N: usize = 4;
    let name = "file_invalidation_reaches_other_processes";
    let bound = Duration::from_secs(1);
    ctx.sandbox.clear_faults();
    let dir = TempDir::new(name);
    let mut spec = ctx.client(name, None);
    spec.store = dir.url();
    spec.tasks = 10;
    let mut procs = fleet(&spec, N);
    let first = round(&mut procs, name);
    let fps: BTreeSet<String> = per_child(&first).into_iter().flatten().collect();
    assert_eq!(
        fps.len(),
        1,
        "{name}: {} tokens before the invalidation",
        fps.len()
    );
    let revoked = fps.into_iter().next().unwrap_or_default();
    assert_eq!(ctx.mints(&spec), 1);

    let (invalidator, others) = procs.split_at_mut(1);
    let reply = invalidator[0].ask("invalidate");
    assert_eq!(
        reply.deleted,
        Some(true),
        "{name}: the store kept the token"
    );
    let invalidated = Instant::now();
    // Rounds of the other processes until none serves the revoked token.
    let mut rounds = 0;
    let dropped = loop {
        rounds += 1;
        let replies = round(others, name);
        let still = per_child(&replies)
            .iter()
            .filter(|fps| fps.contains(&revoked))
            .count();
        if still == 0 {
            break invalidated.elapsed();
        }
        assert!(
            invalidated.elapsed() < bound * 10,
            "{name}: {still} of {} processes still serve the invalidated token after {} s",
            others.len(),
            (bound * 10).as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        dropped <= bound,
        "{name}: the other processes served the invalidated token for {} ms (at most {} ms)",
        dropped.as_millis(),
        bound.as_millis()
    );
    let after = round(&mut procs, name);
    let fps: BTreeSet<String> = per_child(&after).into_iter().flatten().collect();
    assert_eq!(
        fps.len(),
        1,
        "{name}: {} tokens after the invalidation",
        fps.len()
    );
    assert!(!fps.contains(&revoked));
    assert_eq!(
        ctx.mints(&spec),
        2,
        "{name}: one mint after the invalidation"
    );
    quit_all(procs);
    vec![format!(
        "fleet: {name}: a token invalidated in one of {N} processes (directory store) stopped \
         being served by the other {} within {} ms ({rounds} round(s)); 1 new mint, one token",
        N - 1,
        dropped.as_millis()
    )]
}

/// A fleet budget of 3 mints per hour, spent by invalidations in three
/// processes; then every caller of every process is refused with
/// `MintBudgetExhausted` and a `retry_after` counted from the first mint.
fn budget_across_processes_redis(ctx: &Ctx) -> Vec<String> {
    // The processes, and the fleet's mint budget per hour.
    const N: usize = 4;
    const BUDGET: u32 = 3;
    let name = "budget_across_processes_redis";
    let window = 3600.0;
    ctx.sandbox.clear_faults();
    let redis = RedisServer::start();
    let mut spec = ctx.client(name, None);
    spec.store = redis.url();
    spec.max_mints = Some(BUDGET);
    spec.tasks = 20;
    let mut procs = fleet(&spec, N);

    let first_mint = Instant::now();
    let mut tokens = BTreeSet::new();
    for (i, proc) in procs.iter_mut().take(BUDGET as usize).enumerate() {
        let reply = proc.ask("invalidate");
        let what = format!("{}'s token before invalidating it", proc.name);
        let [call] = reply.calls.as_slice() else {
            panic!("{what}: {} calls", reply.calls.len());
        };
        let fp = call
            .fp
            .clone()
            .unwrap_or_else(|| panic!("{what}: {:?}", call.error));
        assert!(tokens.insert(fp), "{what}: the token invalidated before");
        assert_eq!(
            reply.deleted,
            Some(true),
            "{}: the store still held the invalidated token",
            proc.name
        );
        assert_eq!(ctx.mints(&spec), i + 1, "{what}: mints so far");
    }

    let replies = go_all(&mut procs);
    let elapsed = first_mint.elapsed().as_secs_f64();
    let calls = calls(&procs, &replies);
    assert_eq!(calls.len(), N * spec.tasks);
    let low = window - elapsed - 5.0;
    let mut shown = None;
    let mut range = (f64::MAX, f64::MIN);
    for (who, call) in &calls {
        assert_eq!(
            call.class.as_deref(),
            Some("budget_exhausted"),
            "{who}: a caller after the budget was spent: {:?}",
            call.error
        );
        let retry_after = call
            .retry_after_s
            .unwrap_or_else(|| panic!("{who}: MintBudgetExhausted without retry_after"));
        assert!(
            (low..=window).contains(&retry_after),
            "{who}: retry_after {retry_after:.1} s, outside [{low:.1}, {window}] ({elapsed:.1} s \
             after the first mint)"
        );
        range = (range.0.min(retry_after), range.1.max(retry_after));
        shown.get_or_insert_with(|| call.error.clone().unwrap_or_default());
    }
    let mints = ctx.mints(&spec);
    assert_eq!(mints, BUDGET as usize, "{name}: mints in all");
    quit_all(procs);
    drop(redis);
    vec![format!(
        "fleet: {name}: budget {BUDGET}/h spent by invalidations in 3 processes: {mints} mints; \
         then all {} callers of {N} processes refused: \"{}\", retry_after {:.1}-{:.1} s",
        calls.len(),
        shown.unwrap_or_default(),
        range.0,
        range.1
    )]
}
