//! The file store: the processes of one machine share their tokens through
//! a directory.
//!
//! Every file name is made of the [`Keys`] ids (keyed hashes) and a suffix,
//! nothing else:
//!
//! - `<credential>.<entry>.token`: the entry's token, an 8-byte big-endian
//!   expiry (unix milliseconds, local clock) followed by the sealed value;
//! - `<credential>.<entry>.lock`: the entry's mint lock, an OS file lock
//!   (`flock`) that lives while its holder keeps the file open, so a process
//!   that dies releases it at once;
//! - `<credential>.budget`: the credential's mint times in the budget window
//!   (8-byte big-endian unix milliseconds each);
//! - `<credential>.meta`: the budget and the last failure's class and time
//!   (JSON; nothing in it identifies the credential);
//! - `<credential>.guard`: a lock held for the few microseconds of each
//!   read-modify-write of the credential's files;
//! - `<name>.<random>.tmp`: a write in progress, renamed over `<name>` once
//!   synced, so readers see the old file or the new one, never a part.
//!
//! The directory must be the current user's and 0700; files are created
//! 0600. A token, budget or meta file that others may read or write, that
//! another user owns, or that is a symbolic link is ignored (never served),
//! logged once, and replaced by the next write.
//!
//! Notifications ([`Backend::watch`]) reach the watchers of this process
//! only; other processes poll.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::seal::random_id;
use super::{Backend, CredentialStatus, EntryStatus, Event, Keys, Lock, StoreError, Stored, Take};

/// The suffix of token files.
const TOKEN: &str = "token";
/// The suffix of mint lock files.
const LOCK: &str = "lock";
/// The suffix of failed-mint files (the outcome waiters share).
const FAILURE: &str = "failure";
/// The suffix of invalidation files: the id of the entry's last
/// invalidated mint, which other processes are told of when it changes.
const DELETED: &str = "deleted";
/// The suffix of budget files.
const BUDGET: &str = "budget";
/// The suffix of meta files.
const META: &str = "meta";
/// The suffix of guard files.
const GUARD: &str = "guard";
/// The suffix of writes in progress.
const TEMP: &str = "tmp";
/// The length of a [`Keys`] id and of a temp file's random part.
const ID_LEN: usize = 22;
/// The length of a token file's expiry header.
const EXPIRY_LEN: usize = 8;
/// The mode bits a token, budget or meta file must not have: anything for
/// group or others, execute, setuid, setgid, sticky.
const LOOSE_FILE_BITS: u32 = 0o7177;
/// When another process holds the mint lock: how soon to try again. The
/// OS lock has no lease to wait out; a dead holder releases it at once.
const HELD_RETRY: Duration = Duration::from_millis(50);
/// The longest a call waits for another process's guard. Critical sections
/// are a read and a write; this bound only matters when the guard's holder
/// is stopped, and keeps blocking threads from piling up behind it.
const GUARD_WAIT: Duration = Duration::from_secs(2);
/// The capacity of each entry's event channel.
const EVENTS: usize = 16;

/// The key of an entry's event channel: the store's canonical directory
/// and `<credential>.<entry>`.
type Channel = (PathBuf, String);

/// The event channels of this process, per store directory and entry.
static WATCHERS: LazyLock<Mutex<HashMap<Channel, broadcast::Sender<Event>>>> =
    LazyLock::new(Mutex::default);

/// The files this process already warned about.
static WARNED: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Mutex::default);

/// `mutex` locked; a panic elsewhere while it was held leaves plain data
/// that is still consistent, so poisoning is ignored.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A store in a directory, shared by the processes of one machine.
pub(crate) struct FileStore {
    /// The directory as it was given, for [`Backend::describe`].
    shown: PathBuf,
    /// The directory, canonical: where files go, and the key of this
    /// process's event channels.
    dir: PathBuf,
    /// The mint locks this store holds: (lock file name, holder) to the
    /// open, locked file. Dropping the file releases the lock.
    held: Mutex<HashMap<(String, String), File>>,
    /// Tells this process's watchers of other processes' invalidations:
    /// started by the first [`Backend::watch`], dropped with the store.
    /// `None` when the OS refused a watch (then waiters only poll).
    notifier: OnceLock<Option<notify::RecommendedWatcher>>,
}

impl FileStore {
    /// The store in `dir`: creates missing parents, and `dir` itself with
    /// mode 0700; an existing `dir` must be a directory of the current user
    /// that no one else may read, write or enter.
    pub(crate) fn open(dir: PathBuf) -> Result<Self, StoreError> {
        if dir.as_os_str().is_empty() {
            return Err(StoreError::Config(
                "the token store directory is empty".into(),
            ));
        }
        let config = |what: &str, error: io::Error| {
            StoreError::Config(format!(
                "the token store directory {}: {what}: {}",
                dir.display(),
                error.kind()
            ))
        };
        match fs::metadata(&dir) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent)
                        .map_err(|e| config("cannot create its parent", e))?;
                }
                match DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => {}
                    // Another process created it meanwhile: checked below.
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(error) => return Err(config("cannot create it", error)),
                }
            }
            Err(error) => return Err(config("cannot read it", error)),
        }
        let metadata = fs::metadata(&dir).map_err(|e| config("cannot read it", e))?;
        if !metadata.is_dir() {
            return Err(StoreError::Config(format!(
                "the token store directory {} is not a directory",
                dir.display()
            )));
        }
        let user = current_user();
        if metadata.uid() != user {
            return Err(StoreError::Config(format!(
                "the token store directory {} belongs to uid {}, not to the current user \
                 (uid {user}); use a directory of your own",
                dir.display(),
                metadata.uid()
            )));
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Config(format!(
                "the token store directory {} has mode {mode:04o}, open to other users; \
                 it must be private to you: chmod 700 {}",
                dir.display(),
                dir.display()
            )));
        }
        let canonical = fs::canonicalize(&dir).map_err(|e| config("cannot resolve it", e))?;
        Ok(Self {
            shown: dir,
            dir: canonical,
            held: Mutex::default(),
            notifier: OnceLock::new(),
        })
    }

    /// Starts, once, the watch of the directory that turns another
    /// process's invalidation (its `.deleted` file written) into
    /// [`Event::Deleted`] for this process's watchers of that entry. The
    /// OS notifies (inotify on Linux): nothing polls, and hits never come
    /// here.
    fn notify_invalidations(&self) {
        self.notifier.get_or_init(|| {
            let dir = self.dir.clone();
            let on_change = move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                for path in &event.paths {
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let Some(Name::Deleted(credential, entry)) = parse_name(name) else {
                        continue;
                    };
                    let Ok(Some(bytes)) = read_private(&dir.join(name)) else {
                        continue;
                    };
                    let Ok(mint) = String::from_utf8(bytes) else {
                        continue;
                    };
                    if !is_id(&mint) {
                        continue;
                    }
                    let channel = (dir.clone(), format!("{credential}.{entry}"));
                    if let Some(sender) = locked(&WATCHERS).get(&channel) {
                        let _ = sender.send(Event::Deleted(mint));
                    }
                }
            };
            let watcher = notify::recommended_watcher(on_change).and_then(|mut watcher| {
                notify::Watcher::watch(&mut watcher, &self.dir, notify::RecursiveMode::NonRecursive)
                    .map(|()| watcher)
            });
            match watcher {
                Ok(watcher) => Some(watcher),
                Err(err) => {
                    tracing::debug!(target: "paytokens::store", store = %self.shown.display(),
                        error = %err, "no file-change notifications; invalidations by other \
                        processes are seen at the next refresh only");
                    None
                }
            }
        });
    }

    /// The key of `keys`' event channel.
    /// The entry's unexpired file with `suffix` (a token or a failed
    /// mint), and its time to live.
    fn get_file<'a>(
        &'a self,
        keys: &'a Keys,
        suffix: &str,
    ) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        let dir = self.dir.clone();
        let credential = keys.credential.clone();
        let name = entry_file(keys, suffix);
        Box::pin(blocking(move || {
            let path = dir.join(&name);
            let now = now_ms();
            let Some(bytes) = read_private(&path)? else {
                return Ok(None);
            };
            if let Some((expiry, value)) = unexpired(&bytes, now) {
                return Ok(Some(Stored {
                    value: value.to_vec(),
                    ttl: Duration::from_millis(expiry - now),
                }));
            }
            // Expired or truncated: remove it, if that is still what is
            // there, when the guard is free (tidying only; a miss anyway).
            if let Some(_guard) = try_guard(&dir, &credential)
                && let Ok(Some(bytes)) = read_private(&path)
                && unexpired(&bytes, now_ms()).is_none()
            {
                let _ = remove(&path);
            }
            Ok(None)
        }))
    }

    /// Writes the entry's file with `suffix` for `ttl` (only where none is
    /// unexpired, with `only_if_absent`), then announces
    /// [`Event::Stored`]; whether it wrote.
    fn put_file<'a>(
        &'a self,
        keys: &'a Keys,
        suffix: &str,
        value: &'a [u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let dir = self.dir.clone();
        let credential = keys.credential.clone();
        let name = entry_file(keys, suffix);
        let value = value.to_vec();
        Box::pin(async move {
            let wrote = blocking(move || {
                // Every write is guarded, so that delete_if's compare and
                // delete never removes a token stored in between.
                let _guard = guard(&dir, &credential)?;
                let now = now_ms();
                if only_if_absent && read_token(&dir.join(&name), now)?.is_some() {
                    return Ok(false);
                }
                let expiry = now.saturating_add(millis(ttl));
                let bytes = [expiry.to_be_bytes().as_slice(), &value].concat();
                write_atomic(&dir, &name, &bytes)?;
                Ok(true)
            })
            .await?;
            if wrote {
                self.announce(keys, Event::Stored);
            }
            Ok(wrote)
        })
    }

    fn channel(&self, keys: &Keys) -> Channel {
        (self.dir.clone(), entry_stem(keys))
    }

    /// Sends `event` to this process's watchers of `keys`' entry.
    fn announce(&self, keys: &Keys, event: Event) {
        if let Some(sender) = locked(&WATCHERS).get(&self.channel(keys)) {
            // No receiver left is fine: no one is waiting.
            let _ = sender.send(event);
        }
    }
}

/// The effective user id of this process.
fn current_user() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no
    // memory of ours.
    unsafe { libc::geteuid() }
}

/// `<credential>.<entry>`: the common part of an entry's file names.
fn entry_stem(keys: &Keys) -> String {
    format!("{}.{}", keys.credential, keys.entry)
}

/// An entry's file name with `suffix`.
fn entry_file(keys: &Keys, suffix: &str) -> String {
    format!("{}.{}.{suffix}", keys.credential, keys.entry)
}

/// A credential's file name with `suffix`.
fn credential_file(keys: &Keys, suffix: &str) -> String {
    format!("{}.{suffix}", keys.credential)
}

/// An IO error on `path`, for the caller: the path and the error's kind.
fn unavailable(path: &Path, error: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {}", path.display(), error.kind()))
}

/// Runs `work` on tokio's blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| StoreError::Unavailable("the file store's blocking task failed".into()))?
}

/// Now, by the local clock, in unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `duration` in milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Logs once per file and process that `path` is ignored, and why.
fn refuse(path: &Path, why: &str) {
    if locked(&WARNED).insert(path.to_path_buf()) {
        tracing::warn!(
            file = %path.display(),
            why,
            "ignoring a token store file that is not private to the current user; \
             the next write replaces it"
        );
    }
}

/// The contents of the token, budget or meta file at `path`; `None` when
/// it does not exist or is refused: a symbolic link, not a regular file,
/// another user's, or open to others (see [`LOOSE_FILE_BITS`]).
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            refuse(path, "a symbolic link");
            return Ok(None);
        }
        Err(error) => return Err(unavailable(path, &error)),
    };
    let metadata = file.metadata().map_err(|e| unavailable(path, &e))?;
    if !metadata.is_file() {
        refuse(path, "not a regular file");
        return Ok(None);
    }
    if metadata.uid() != current_user() {
        refuse(path, &format!("owned by uid {}", metadata.uid()));
        return Ok(None);
    }
    if metadata.mode() & LOOSE_FILE_BITS != 0 {
        refuse(
            path,
            &format!("mode {:04o}, not 0600", metadata.mode() & 0o7777),
        );
        return Ok(None);
    }
    if metadata.len() > super::MAX_VALUE_BYTES {
        refuse(
            path,
            &format!("{} bytes, more than any entry", metadata.len()),
        );
        return Ok(None);
    }
    let mut bytes = Vec::new();
    // Bounded even if the file grows after the check.
    file.take(super::MAX_VALUE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unavailable(path, &e))?;
    if bytes.len() as u64 > super::MAX_VALUE_BYTES {
        refuse(path, "grew past the size of any entry while read");
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Replaces `dir/name` with `bytes` atomically: a new 0600 temp file in
/// `dir`, synced, renamed over the target.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let target = dir.join(name);
    let temp = dir.join(format!("{name}.{}.{TEMP}", random_id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, &target));
    written.map_err(|error| {
        // The temp file is ours alone; if it cannot go now, clear takes it.
        let _ = fs::remove_file(&temp);
        unavailable(&target, &error)
    })
}

/// Removes `path`; whether it was there.
fn remove(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(unavailable(path, &error)),
    }
}

/// Opens (creating it 0600) the lock or guard file at `path`.
fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| unavailable(path, &e))
}

/// Takes the guard of `credential`'s files in `dir`; it is held until the
/// returned file is dropped. Waits at most [`GUARD_WAIT`].
fn guard(dir: &Path, credential: &str) -> Result<File, StoreError> {
    let path = dir.join(format!("{credential}.{GUARD}"));
    let file = open_lock_file(&path)?;
    let deadline = Instant::now() + GUARD_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Unavailable(format!(
                    "{}: held by another process for over {GUARD_WAIT:?}",
                    path.display()
                )));
            }
            Err(TryLockError::Error(error)) => return Err(unavailable(&path, &error)),
        }
    }
}

/// The guard of `credential`'s files if it is free right now.
fn try_guard(dir: &Path, credential: &str) -> Option<File> {
    let path = dir.join(format!("{credential}.{GUARD}"));
    let file = open_lock_file(&path).ok()?;
    file.try_lock().ok().map(|()| file)
}

/// A token file's expiry and sealed value, if it has not expired at `now`.
fn unexpired(bytes: &[u8], now: u64) -> Option<(u64, &[u8])> {
    let (expiry, value) = bytes.split_first_chunk::<EXPIRY_LEN>()?;
    let expiry = u64::from_be_bytes(*expiry);
    (expiry > now).then_some((expiry, value))
}

/// The token file of `keys`' entry, if one is stored and unexpired: its
/// expiry and sealed value.
fn read_token(path: &Path, now: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    Ok(read_private(path)?
        .and_then(|bytes| unexpired(&bytes, now).map(|(expiry, value)| (expiry, value.to_vec()))))
}

/// The mint times in a budget file.
fn parse_times(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .filter_map(|chunk| <[u8; 8]>::try_from(chunk).ok())
        .map(u64::from_be_bytes)
        .collect()
}

/// A credential's budget and last failure, as `<credential>.meta` holds them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    /// The budget's size, as the last process to take from it set it.
    #[serde(default)]
    max: Option<u32>,
    /// The budget's window in milliseconds.
    #[serde(default)]
    window_ms: Option<u64>,
    /// The last failed mint's class and time (unix milliseconds), if one
    /// failed since the last budget was taken.
    #[serde(default)]
    error: Option<(String, u64)>,
    /// The last time a process could not use the store (`no answer`,
    /// `unavailable`) and when that began (unix milliseconds).
    #[serde(default)]
    store_error: Option<(String, u64)>,
}

impl Meta {
    /// The meta file at `path`; a default when missing, refused or unreadable.
    fn read(path: &Path) -> Result<Self, StoreError> {
        Ok(read_private(path)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default())
    }

    /// Writes it as `dir/name`.
    fn write(&self, dir: &Path, name: &str) -> Result<(), StoreError> {
        let json = serde_json::to_vec(self).map_err(|_| {
            StoreError::Unavailable(format!("{}: cannot encode", dir.join(name).display()))
        })?;
        write_atomic(dir, name, &json)
    }
}

/// A file name this store writes, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Name<'a> {
    /// `<credential>.<entry>.token`.
    Token(&'a str, &'a str),
    /// `<credential>.<entry>.lock`.
    Lock,
    /// `<credential>.<entry>.failure`.
    Failure,
    /// `<credential>.<entry>.deleted`: credential, entry.
    Deleted(&'a str, &'a str),
    /// `<credential>.budget`.
    Budget(&'a str),
    /// `<credential>.meta`.
    Meta(&'a str),
    /// `<credential>.guard`.
    Guard,
    /// `<one of the above>.<random>.tmp`.
    Temp,
}

/// Whether `part` has the shape of a [`Keys`] id: 22 base64url characters.
fn is_id(part: &str) -> bool {
    part.len() == ID_LEN
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `name` parsed, if this store writes files so named.
fn parse_name(name: &str) -> Option<Name<'_>> {
    if let Some(rest) = name.strip_suffix(".tmp") {
        let (target, random) = rest.rsplit_once('.')?;
        return (is_id(random) && matches!(parse_name(target), Some(n) if n != Name::Temp))
            .then_some(Name::Temp);
    }
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [c, e, TOKEN] if is_id(c) && is_id(e) => Some(Name::Token(c, e)),
        [c, e, LOCK] if is_id(c) && is_id(e) => Some(Name::Lock),
        [c, e, FAILURE] if is_id(c) && is_id(e) => Some(Name::Failure),
        [c, e, DELETED] if is_id(c) && is_id(e) => Some(Name::Deleted(c, e)),
        [c, BUDGET] if is_id(c) => Some(Name::Budget(c)),
        [c, META] if is_id(c) => Some(Name::Meta(c)),
        [c, GUARD] if is_id(c) => Some(Name::Guard),
        _ => None,
    }
}

/// The names of the files in `dir`.
fn list(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| unavailable(dir, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| unavailable(dir, &e))?;
        // A name that is not UTF-8 is not one of ours.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The pieces of one credential's status, gathered from its files.
#[derive(Default)]
struct Gathered {
    /// Its unexpired tokens.
    tokens: Vec<EntryStatus>,
    /// Its budget file's mint times.
    times: Vec<u64>,
    /// Its meta file.
    meta: Meta,
}

impl Backend for FileStore {
    fn describe(&self) -> String {
        format!("file:{}", self.shown.display())
    }

    fn get<'a>(&'a self, keys: &'a Keys) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        self.get_file(keys, TOKEN)
    }

    fn put<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        ttl: Duration,
        only_if_absent: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.put_file(keys, TOKEN, value, ttl, only_if_absent)
    }

    fn get_failure<'a>(
        &'a self,
        keys: &'a Keys,
    ) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        self.get_file(keys, FAILURE)
    }

    fn put_failure<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        cooldown: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.put_file(keys, FAILURE, value, cooldown, false).await?;
            Ok(())
        })
    }

    fn delete_if<'a>(
        &'a self,
        keys: &'a Keys,
        value: &'a [u8],
        mint: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let dir = self.dir.clone();
        let credential = keys.credential.clone();
        let name = entry_file(keys, TOKEN);
        let value = value.to_vec();
        Box::pin(async move {
            let marker = entry_file(keys, DELETED);
            let mint_id = mint.to_owned();
            let deleted = blocking(move || {
                let _guard = guard(&dir, &credential)?;
                let path = dir.join(&name);
                let deleted = match read_token(&path, now_ms())? {
                    Some((_, stored)) if stored == value => remove(&path)?,
                    _ => false,
                };
                // Other processes hear of it through this file's change.
                write_atomic(&dir, &marker, mint_id.as_bytes())?;
                Ok(deleted)
            })
            .await?;
            // Announced either way: whoever still holds mint `mint` drops it.
            self.announce(keys, Event::Deleted(mint.to_owned()));
            Ok(deleted)
        })
    }

    fn try_lock<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<Lock, StoreError>> {
        // The OS lock lives until release or the holder's death: no lease.
        let name = entry_file(keys, LOCK);
        let path = self.dir.join(&name);
        Box::pin(async move {
            let key = (name, holder.to_owned());
            if locked(&self.held).contains_key(&key) {
                return Ok(Lock::Acquired);
            }
            let taken = blocking(move || {
                let file = open_lock_file(&path)?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(file)),
                    Err(TryLockError::WouldBlock) => Ok(None),
                    Err(TryLockError::Error(error)) => Err(unavailable(&path, &error)),
                }
            })
            .await?;
            Ok(match taken {
                Some(file) => {
                    locked(&self.held).insert(key, file);
                    Lock::Acquired
                }
                None => Lock::Held(HELD_RETRY),
            })
        })
    }

    fn renew<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let key = (entry_file(keys, LOCK), holder.to_owned());
        let held = locked(&self.held).contains_key(&key);
        Box::pin(async move { Ok(held) })
    }

    fn release<'a>(
        &'a self,
        keys: &'a Keys,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = (entry_file(keys, LOCK), holder.to_owned());
        // Closing the file releases the OS lock.
        drop(locked(&self.held).remove(&key));
        self.announce(keys, Event::Released);
        Box::pin(async { Ok(()) })
    }

    fn take_budget<'a>(
        &'a self,
        keys: &'a Keys,
        max: u32,
        window: Duration,
    ) -> BoxFuture<'a, Result<Take, StoreError>> {
        let dir = self.dir.clone();
        let credential = keys.credential.clone();
        let budget = credential_file(keys, BUDGET);
        let meta = credential_file(keys, META);
        Box::pin(blocking(move || {
            let _guard = guard(&dir, &credential)?;
            let now = now_ms();
            let window_ms = millis(window);
            let mut times = read_private(&dir.join(&budget))?
                .map(|bytes| parse_times(&bytes))
                .unwrap_or_default();
            // A time from the future (the clock went back) stays counted.
            times.retain(|&t| t.saturating_add(window_ms) > now);
            let used = u32::try_from(times.len()).unwrap_or(u32::MAX);
            let take = if used < max {
                times.push(now);
                Take::Granted(max - used - 1)
            } else {
                let again = times.iter().min().map_or(window_ms, |&oldest| {
                    oldest.saturating_add(window_ms).saturating_sub(now)
                });
                Take::Exhausted(Duration::from_millis(again.clamp(1, window_ms.max(1))))
            };
            let bytes: Vec<u8> = times.iter().flat_map(|t| t.to_be_bytes()).collect();
            write_atomic(&dir, &budget, &bytes)?;
            let store_error = Meta::read(&dir.join(&meta))?.store_error;
            Meta {
                max: Some(max),
                window_ms: Some(window_ms),
                error: None,
                store_error,
            }
            .write(&dir, &meta)?;
            Ok(take)
        }))
    }

    fn record_failure<'a>(
        &'a self,
        keys: &'a Keys,
        class: &'static str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let dir = self.dir.clone();
        let credential = keys.credential.clone();
        let name = credential_file(keys, META);
        Box::pin(blocking(move || {
            let _guard = guard(&dir, &credential)?;
            let mut meta = Meta::read(&dir.join(&name))?;
            meta.error = Some((class.to_owned(), now_ms()));
            meta.write(&dir, &name)
        }))
    }

    fn record_store_failure<'a>(
        &'a self,
        keys: &'a Keys,
        what: &'static str,
        ago: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let dir = self.dir.clone();
        let credential = keys.credential.clone();
        let name = credential_file(keys, META);
        Box::pin(blocking(move || {
            let _guard = guard(&dir, &credential)?;
            let mut meta = Meta::read(&dir.join(&name))?;
            meta.store_error = Some((what.to_owned(), now_ms().saturating_sub(millis(ago))));
            meta.write(&dir, &name)
        }))
    }

    fn watch(&self, keys: &Keys) -> broadcast::Receiver<Event> {
        self.notify_invalidations();
        let mut watchers = locked(&WATCHERS);
        watchers.retain(|_, sender| sender.receiver_count() > 0);
        watchers
            .entry(self.channel(keys))
            .or_insert_with(|| broadcast::channel(EVENTS).0)
            .subscribe()
    }

    fn status(&self) -> BoxFuture<'_, Result<Vec<CredentialStatus>, StoreError>> {
        let dir = self.dir.clone();
        Box::pin(blocking(move || {
            let now = now_ms();
            let mut credentials: BTreeMap<String, Gathered> = BTreeMap::new();
            for name in list(&dir)? {
                let path = dir.join(&name);
                match parse_name(&name) {
                    Some(Name::Token(credential, entry)) => {
                        let gathered = credentials.entry(credential.to_owned()).or_default();
                        if let Some((expiry, _)) = read_token(&path, now)? {
                            gathered.tokens.push(EntryStatus {
                                id: entry.to_owned(),
                                expires_in: Duration::from_millis(expiry - now),
                            });
                        }
                    }
                    Some(Name::Budget(credential)) => {
                        credentials.entry(credential.to_owned()).or_default().times =
                            read_private(&path)?
                                .map(|b| parse_times(&b))
                                .unwrap_or_default();
                    }
                    Some(Name::Meta(credential)) => {
                        credentials.entry(credential.to_owned()).or_default().meta =
                            Meta::read(&path)?;
                    }
                    Some(
                        Name::Lock | Name::Failure | Name::Deleted(..) | Name::Guard | Name::Temp,
                    )
                    | None => {}
                }
            }
            Ok(credentials
                .into_iter()
                .map(|(id, mut gathered)| {
                    gathered.tokens.sort_by(|a, b| a.id.cmp(&b.id));
                    let meta = gathered.meta;
                    let in_window = |t: &&u64| match meta.window_ms {
                        Some(window) => t.saturating_add(window) > now,
                        None => true,
                    };
                    let used = gathered.times.iter().filter(in_window).count();
                    CredentialStatus {
                        id,
                        tokens: gathered.tokens,
                        mints_used: u32::try_from(used).unwrap_or(u32::MAX),
                        budget: meta
                            .max
                            .zip(meta.window_ms)
                            .map(|(max, window)| (max, Duration::from_millis(window))),
                        last_error: meta.error.map(|(class, at)| {
                            (class, Duration::from_millis(now.saturating_sub(at)))
                        }),
                        last_store_failure: meta.store_error.map(|(what, at)| {
                            (what, Duration::from_millis(now.saturating_sub(at)))
                        }),
                    }
                })
                .collect())
        }))
    }

    fn clear(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        let dir = self.dir.clone();
        Box::pin(blocking(move || {
            let mut removed = 0;
            for name in list(&dir)? {
                if parse_name(&name).is_some() && remove(&dir.join(&name))? {
                    removed += 1;
                }
            }
            Ok(removed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::{Command, Stdio};

    use secrecy::SecretString;

    use super::*;
    use crate::{CacheKey, Provider};

    /// The secret the test keys derive from.
    const SECRET: &str = "file-store-test-secret-0123456789";
    /// The client id of the test keys.
    const CLIENT: &str = "client-4711";
    /// A scope of the test keys.
    const SCOPE: &str = "billing:read";

    /// A fresh directory path under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        /// A new, not yet created, random path.
        fn new() -> Self {
            Self(std::env::temp_dir().join(format!("paytokens-file-store-{}", random_id())))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// The keys of `client`'s entry for `scopes`.
    fn keys_for(client: &str, scopes: &[&str]) -> Keys {
        let key = CacheKey {
            provider: Provider::all().next().expect("a provider"),
            base_url: "http://127.0.0.1:1".into(),
            client_id: client.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            headers: vec![],
        };
        Keys::derive(&SecretString::from(SECRET), &key)
    }

    /// The keys of the test entry.
    fn keys() -> Keys {
        keys_for(CLIENT, &[SCOPE])
    }

    /// `path`'s permission bits.
    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
    }

    /// Sets `path`'s permission bits.
    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// The sorted names of the files in `dir`.
    fn names(dir: &Path) -> Vec<String> {
        let mut names = list(dir).expect("list");
        names.sort();
        names
    }

    /// The stored value of `keys`' entry.
    async fn value(store: &FileStore, keys: &Keys) -> Option<Vec<u8>> {
        store
            .get(keys)
            .await
            .expect("get")
            .map(|stored| stored.value)
    }

    /// A created directory is 0700 (parents too are made) and every file 0600.
    #[tokio::test(flavor = "multi_thread")]
    async fn creates_the_directory_0700_and_every_file_0600() {
        let temp = TempDir::new();
        let dir = temp.0.join("nested").join("store");
        let store = FileStore::open(dir.clone()).expect("open");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(store.describe(), format!("file:{}", dir.display()));
        let keys = keys();
        assert!(
            store
                .put(&keys, b"sealed", Duration::from_secs(60), false)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .try_lock(&keys, "h", Duration::from_secs(5))
                .await
                .unwrap(),
            Lock::Acquired
        );
        store
            .take_budget(&keys, 3, Duration::from_secs(60))
            .await
            .unwrap();
        store.record_failure(&keys, "transient").await.unwrap();
        let names = names(&dir);
        for suffix in [".token", ".lock", ".budget", ".meta", ".guard"] {
            assert!(
                names.iter().any(|n| n.ends_with(suffix)),
                "{suffix} in {names:?}"
            );
        }
        for name in &names {
            let path = dir.join(name);
            assert!(fs::symlink_metadata(&path).unwrap().is_file(), "{name}");
            assert_eq!(mode(&path), 0o600, "{name}");
        }
        // Opening it again is fine: it is private.
        FileStore::open(dir).expect("reopen");
    }

    /// Names are ids and suffixes only; no file holds an identifier or secret in clear.
    #[tokio::test(flavor = "multi_thread")]
    async fn file_names_hold_only_the_ids_and_suffixes() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        store
            .put(&keys, b"sealed", Duration::from_secs(60), false)
            .await
            .unwrap();
        store
            .try_lock(&keys, "holder-1", Duration::from_secs(5))
            .await
            .unwrap();
        store
            .take_budget(&keys, 3, Duration::from_secs(60))
            .await
            .unwrap();
        store.record_failure(&keys, "rejected").await.unwrap();
        let (c, e) = (&keys.credential, &keys.entry);
        let expected = [
            format!("{c}.budget"),
            format!("{c}.guard"),
            format!("{c}.meta"),
            format!("{c}.{e}.lock"),
            format!("{c}.{e}.token"),
        ];
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(names(&temp.0), expected);
        for name in names(&temp.0) {
            for secret in [CLIENT, "4711", SCOPE, "billing", SECRET, "holder"] {
                assert!(!name.contains(secret), "{name} holds {secret}");
            }
            let contents = fs::read(temp.0.join(&name)).unwrap();
            let text = String::from_utf8_lossy(&contents);
            for secret in [CLIENT, SCOPE, SECRET, "holder"] {
                assert!(!text.contains(secret), "{name}'s contents hold {secret}");
            }
        }
    }

    /// A directory others may use is refused with its mode and `chmod 700`.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_open_directory_is_refused_with_the_fix() {
        let temp = TempDir::new();
        fs::create_dir(&temp.0).unwrap();
        chmod(&temp.0, 0o755);
        let Err(StoreError::Config(message)) = FileStore::open(temp.0.clone()) else {
            panic!("a 0755 directory was accepted");
        };
        let dir = temp.0.display().to_string();
        assert!(message.contains(&dir), "{message}");
        assert!(message.contains("0755"), "{message}");
        assert!(message.contains(&format!("chmod 700 {dir}")), "{message}");
        // Group access alone is refused too.
        chmod(&temp.0, 0o710);
        assert!(matches!(
            FileStore::open(temp.0.clone()),
            Err(StoreError::Config(_))
        ));
        // After the fix it opens.
        chmod(&temp.0, 0o700);
        FileStore::open(temp.0.clone()).expect("open after chmod 700");
        // A file in the directory's place is refused.
        let file = temp.0.join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let Err(StoreError::Config(message)) = FileStore::open(file) else {
            panic!("a file was accepted as a directory");
        };
        assert!(message.contains("not a directory"), "{message}");
        assert!(matches!(
            FileStore::open(PathBuf::new()),
            Err(StoreError::Config(_))
        ));
    }

    /// Loose, symlinked files are never served and the next write replaces them.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_file_open_to_others_is_a_miss_until_replaced() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        store
            .put(&keys, b"first", Duration::from_secs(60), false)
            .await
            .unwrap();
        let path = temp.0.join(entry_file(&keys, TOKEN));
        chmod(&path, 0o644);
        assert_eq!(value(&store, &keys).await, None);
        // Not served to a conditional write either: it counts as absent.
        assert!(
            store
                .put(&keys, b"second", Duration::from_secs(60), true)
                .await
                .unwrap()
        );
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            value(&store, &keys).await.as_deref(),
            Some(b"second".as_slice())
        );
        // Nor is a symbolic link, even to a private file.
        let elsewhere = temp.0.join("elsewhere");
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert_eq!(value(&store, &keys).await, None);
        assert!(!store.delete_if(&keys, b"second", "m").await.unwrap());
        assert!(
            store
                .put(&keys, b"third", Duration::from_secs(60), false)
                .await
                .unwrap()
        );
        assert!(
            !fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            value(&store, &keys).await.as_deref(),
            Some(b"third".as_slice())
        );
        // A loose budget file is not counted; the next take replaces it.
        let budget = temp.0.join(credential_file(&keys, BUDGET));
        let now = now_ms();
        fs::write(&budget, [now, now, now].map(u64::to_be_bytes).concat()).unwrap();
        chmod(&budget, 0o660);
        assert_eq!(
            store
                .take_budget(&keys, 3, Duration::from_secs(60))
                .await
                .unwrap(),
            Take::Granted(2)
        );
        assert_eq!(mode(&budget), 0o600);
    }

    /// A token comes back with its time left, and is absent once expired.
    /// A token file larger than any entry is never read: a miss.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_oversized_token_file_is_a_miss() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let big = vec![b'x'; usize::try_from(super::super::MAX_VALUE_BYTES).unwrap() + 1];
        store
            .put(&keys, &big, Duration::from_secs(60), false)
            .await
            .unwrap();
        assert!(store.get(&keys).await.unwrap().is_none());
        let just = &big[..big.len() - 9];
        store
            .put(&keys, just, Duration::from_secs(60), false)
            .await
            .unwrap();
        assert_eq!(store.get(&keys).await.unwrap().expect("stored").value, just);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn put_get_with_ttl_and_expiry() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        assert!(store.get(&keys).await.unwrap().is_none());
        let before = now_ms();
        store
            .put(&keys, b"sealed", Duration::from_secs(60), false)
            .await
            .unwrap();
        let after = now_ms();
        let stored = store.get(&keys).await.unwrap().expect("stored");
        assert_eq!(stored.value, b"sealed");
        assert!(stored.ttl <= Duration::from_secs(60) && !stored.ttl.is_zero());
        // The file: the expiry, then the value.
        let bytes = fs::read(temp.0.join(entry_file(&keys, TOKEN))).unwrap();
        let (expiry, value) = bytes.split_first_chunk::<8>().unwrap();
        let expiry = u64::from_be_bytes(*expiry);
        assert!((before + 60_000..=after + 60_000).contains(&expiry));
        assert_eq!(value, b"sealed");
        // Another entry of the same credential is separate.
        let other = keys_for(CLIENT, &["other"]);
        assert!(store.get(&other).await.unwrap().is_none());
        // A ttl of zero is expired at once: absent, and the file goes.
        store
            .put(&keys, b"sealed", Duration::ZERO, false)
            .await
            .unwrap();
        assert!(store.get(&keys).await.unwrap().is_none());
        assert!(!temp.0.join(entry_file(&keys, TOKEN)).exists());
        // So does a file whose expiry passed, or one too short to hold one.
        for bytes in [
            [(now_ms() - 1000).to_be_bytes().as_slice(), b"old"].concat(),
            vec![1, 2],
        ] {
            let path = temp.0.join(entry_file(&keys, TOKEN));
            write_atomic(&temp.0, &entry_file(&keys, TOKEN), &bytes).unwrap();
            assert!(store.get(&keys).await.unwrap().is_none());
            assert!(!path.exists());
        }
    }

    /// A failed mint is a file of its own beside the token (0600, named by
    /// the ids), replaced by the next failure, gone when its cooldown ends,
    /// removed by `clear`.
    #[tokio::test]
    async fn a_failure_is_kept_for_its_cooldown_beside_the_token() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        assert!(store.get_failure(&keys).await.unwrap().is_none());
        let cooldown = Duration::from_secs(60);
        store.put_failure(&keys, b"first", cooldown).await.unwrap();
        store.put_failure(&keys, b"second", cooldown).await.unwrap();
        let found = store.get_failure(&keys).await.unwrap().expect("stored");
        assert_eq!(found.value, b"second");
        assert!(found.ttl <= cooldown && !found.ttl.is_zero());
        assert!(
            store.get(&keys).await.unwrap().is_none(),
            "a failure is no token"
        );
        let name = entry_file(&keys, FAILURE);
        assert_eq!(parse_name(&name), Some(Name::Failure));
        assert_eq!(mode(&temp.0.join(&name)), 0o600);
        assert!(store.clear().await.unwrap() >= 1);
        assert!(!temp.0.join(&name).exists(), "clear left the failure");
        store
            .put_failure(&keys, b"gone", Duration::ZERO)
            .await
            .unwrap();
        assert!(store.get_failure(&keys).await.unwrap().is_none());
    }

    /// An invalidation leaves the mint's id in `<c>.<e>.deleted` (0600), the
    /// file whose change other processes are notified of.
    #[tokio::test]
    async fn delete_if_leaves_the_mint_id_for_other_processes() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let mint = random_id();
        store.delete_if(&keys, b"sealed", &mint).await.unwrap();
        let name = entry_file(&keys, DELETED);
        assert!(matches!(parse_name(&name), Some(Name::Deleted(..))));
        assert_eq!(fs::read(temp.0.join(&name)).unwrap(), mint.as_bytes());
        assert_eq!(mode(&temp.0.join(&name)), 0o600);
        store.clear().await.unwrap();
        assert!(
            !temp.0.join(&name).exists(),
            "clear left the invalidation file"
        );
    }

    /// A conditional put writes only where no unexpired token is, once under races.
    #[tokio::test(flavor = "multi_thread")]
    async fn put_only_if_absent_writes_only_where_nothing_is_stored() {
        let temp = TempDir::new();
        let a = FileStore::open(temp.0.clone()).unwrap();
        let b = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let ttl = Duration::from_secs(60);
        assert!(a.put(&keys, b"one", ttl, true).await.unwrap());
        assert!(!b.put(&keys, b"two", ttl, true).await.unwrap());
        assert_eq!(value(&b, &keys).await.as_deref(), Some(b"one".as_slice()));
        // An unconditional put replaces it.
        assert!(b.put(&keys, b"three", ttl, false).await.unwrap());
        assert_eq!(value(&a, &keys).await.as_deref(), Some(b"three".as_slice()));
        // An expired token counts as absent.
        a.put(&keys, b"expired", Duration::ZERO, false)
            .await
            .unwrap();
        assert!(b.put(&keys, b"four", ttl, true).await.unwrap());
        assert_eq!(value(&a, &keys).await.as_deref(), Some(b"four".as_slice()));
        // Racing conditional puts from two stores: exactly one writes.
        let other = keys_for(CLIENT, &["raced"]);
        let puts = (0..16).map(|i| {
            let store = if i % 2 == 0 { &a } else { &b };
            let value = format!("v{i}").into_bytes();
            let other = &other;
            async move { store.put(other, &value, ttl, true).await.unwrap() }
        });
        let wrote = futures_util::future::join_all(puts).await;
        assert_eq!(wrote.iter().filter(|w| **w).count(), 1, "{wrote:?}");
        // No temp file is left behind.
        assert!(names(&temp.0).iter().all(|n| !n.ends_with(".tmp")));
    }

    /// Compare-and-delete, and the events this process's watchers hear.
    #[tokio::test(flavor = "multi_thread")]
    async fn delete_if_deletes_only_the_matching_value_and_announces() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let mut events = store.watch(&keys);
        // Another store in this process hears it too; another entry does not.
        let mut also = FileStore::open(temp.0.clone()).unwrap().watch(&keys);
        let mut elsewhere = store.watch(&keys_for(CLIENT, &["other"]));
        store
            .put(&keys, b"current", Duration::from_secs(60), false)
            .await
            .unwrap();
        assert_eq!(events.try_recv(), Ok(Event::Stored));
        assert_eq!(also.try_recv(), Ok(Event::Stored));
        assert!(!store.delete_if(&keys, b"stale", "m-stale").await.unwrap());
        assert_eq!(events.try_recv(), Ok(Event::Deleted("m-stale".into())));
        assert_eq!(
            value(&store, &keys).await.as_deref(),
            Some(b"current".as_slice())
        );
        assert!(store.delete_if(&keys, b"current", "m-1").await.unwrap());
        assert_eq!(events.try_recv(), Ok(Event::Deleted("m-1".into())));
        assert!(store.get(&keys).await.unwrap().is_none());
        assert!(!store.delete_if(&keys, b"current", "m-1").await.unwrap());
        assert!(elsewhere.try_recv().is_err());
    }

    /// `try_lock`, tried again while another thread of this test process
    /// may be between fork and exec (a test starting redis-server): the
    /// child holds a copy of every open file description, and with it the
    /// OS lock, until it execs (the descriptors are close-on-exec).
    async fn acquired(store: &FileStore, keys: &Keys, holder: &str) -> Lock {
        let mut outcome = Lock::Held(HELD_RETRY);
        for _ in 0..50 {
            outcome = store
                .try_lock(keys, holder, Duration::from_secs(5))
                .await
                .unwrap();
            if outcome == Lock::Acquired {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        outcome
    }

    /// The mint lock between two stores of one process: release and drop free it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_mint_lock_excludes_another_store_until_released_or_dropped() {
        let temp = TempDir::new();
        let a = FileStore::open(temp.0.clone()).unwrap();
        let b = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let lease = Duration::from_secs(5);
        assert_eq!(
            a.try_lock(&keys, "a1", lease).await.unwrap(),
            Lock::Acquired
        );
        assert_eq!(
            a.try_lock(&keys, "a1", lease).await.unwrap(),
            Lock::Acquired
        );
        assert_eq!(
            b.try_lock(&keys, "b1", lease).await.unwrap(),
            Lock::Held(HELD_RETRY)
        );
        assert_eq!(
            a.try_lock(&keys, "a2", lease).await.unwrap(),
            Lock::Held(HELD_RETRY)
        );
        // Another entry's lock is separate.
        let other = keys_for(CLIENT, &["other"]);
        assert_eq!(
            b.try_lock(&other, "b1", lease).await.unwrap(),
            Lock::Acquired
        );
        assert!(a.renew(&keys, "a1", lease).await.unwrap());
        assert!(!b.renew(&keys, "b1", lease).await.unwrap());
        assert!(!a.renew(&keys, "a2", lease).await.unwrap());
        // Released: announced, and the other store takes it.
        let mut events = b.watch(&keys);
        a.release(&keys, "a1").await.unwrap();
        assert_eq!(events.try_recv(), Ok(Event::Released));
        assert!(!a.renew(&keys, "a1", lease).await.unwrap());
        assert_eq!(acquired(&b, &keys, "b1").await, Lock::Acquired);
        assert_eq!(
            a.try_lock(&keys, "a3", lease).await.unwrap(),
            Lock::Held(HELD_RETRY)
        );
        // A store dropped with the lock held releases it.
        drop(b);
        assert_eq!(acquired(&a, &keys, "a3").await, Lock::Acquired);
        a.release(&keys, "a3").await.unwrap();
        // Releasing what one does not hold is harmless.
        a.release(&keys, "nobody").await.unwrap();
    }

    /// In the child process of
    /// Another process (a shell holding `flock(2)` on the entry's lock
    /// file, as a FileStore in another process does) keeps the lock until it
    /// is killed with SIGKILL; then the lock is free at once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_lock_holder_that_dies_releases_the_lock() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let lease = Duration::from_secs(5);
        // The store creates the lock file (0600); the shell then locks it.
        assert_eq!(
            store.try_lock(&keys, "parent", lease).await.unwrap(),
            Lock::Acquired
        );
        store.release(&keys, "parent").await.unwrap();
        let path = temp.0.join(entry_file(&keys, LOCK));
        let mut child = Command::new("bash")
            .args([
                "-c",
                r#"exec 9<>"$1" && flock --exclusive 9 && echo LOCKED && read -r _"#,
            ])
            .arg("holder")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("bash and flock (util-linux) run the other process");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let locked_by_child = stdout.lines().map_while(Result::ok).any(|l| l == "LOCKED");
        assert!(locked_by_child, "the other process did not take the lock");
        assert_eq!(
            store.try_lock(&keys, "parent", lease).await.unwrap(),
            Lock::Held(HELD_RETRY)
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            store.try_lock(&keys, "parent", lease).await.unwrap(),
            Lock::Acquired
        );
    }

    /// Exactly `max` grants across two stores, then a retry-after within the window.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_budget_of_three_grants_exactly_three_then_says_when() {
        let temp = TempDir::new();
        let a = FileStore::open(temp.0.clone()).unwrap();
        let b = FileStore::open(temp.0.clone()).unwrap();
        let keys = keys();
        let window = Duration::from_secs(60);
        let before = now_ms();
        let takes = (0..10).map(|i| {
            let store = if i % 2 == 0 { &a } else { &b };
            let keys = &keys;
            async move { store.take_budget(keys, 3, window).await.unwrap() }
        });
        let mut takes = futures_util::future::join_all(takes).await;
        let after = now_ms();
        takes.sort_by_key(|take| match take {
            Take::Granted(left) => (0, u64::from(*left)),
            Take::Exhausted(again) => (1, millis(*again)),
        });
        assert_eq!(
            takes[..3],
            [Take::Granted(0), Take::Granted(1), Take::Granted(2)]
        );
        for take in &takes[3..] {
            let Take::Exhausted(again) = take else {
                panic!("{takes:?}")
            };
            // The oldest grant plus the window, from the refusal's now.
            let least = window - Duration::from_millis(after - before);
            assert!(*again <= window && *again >= least, "{again:?}");
        }
        // The same on the next call, from either store.
        let Take::Exhausted(again) = a.take_budget(&keys, 3, window).await.unwrap() else {
            panic!("granted a fourth");
        };
        assert!(again <= window && !again.is_zero());
        // Another credential has its own budget.
        let other = keys_for("client-2", &[SCOPE]);
        assert_eq!(
            b.take_budget(&other, 3, window).await.unwrap(),
            Take::Granted(2)
        );
        // Mints older than the window no longer count.
        let old = now_ms() - 61_000;
        let budget = credential_file(&keys, BUDGET);
        write_atomic(
            &temp.0,
            &budget,
            &[old, old, old].map(u64::to_be_bytes).concat(),
        )
        .unwrap();
        assert_eq!(
            a.take_budget(&keys, 3, window).await.unwrap(),
            Take::Granted(2)
        );
        // A budget of nothing grants nothing.
        let none = keys_for("client-3", &[SCOPE]);
        assert_eq!(
            a.take_budget(&none, 0, window).await.unwrap(),
            Take::Exhausted(window)
        );
    }

    /// Status per credential; clear removes this store's files and no others.
    #[tokio::test(flavor = "multi_thread")]
    async fn status_reports_per_credential_and_clear_removes_only_ours() {
        let temp = TempDir::new();
        let store = FileStore::open(temp.0.clone()).unwrap();
        assert_eq!(store.status().await.unwrap(), vec![]);
        let first = keys();
        let second = keys_for(CLIENT, &["other"]);
        let third = keys_for("client-2", &[SCOPE]);
        let window = Duration::from_secs(60);
        store
            .put(&first, b"1", Duration::from_secs(60), false)
            .await
            .unwrap();
        store
            .put(&second, b"2", Duration::from_secs(120), false)
            .await
            .unwrap();
        store.take_budget(&first, 5, window).await.unwrap();
        store.take_budget(&first, 5, window).await.unwrap();
        store.record_failure(&first, "transient").await.unwrap();
        store.record_failure(&third, "rejected").await.unwrap();
        store
            .try_lock(&third, "h", Duration::from_secs(5))
            .await
            .unwrap();
        let status = store.status().await.unwrap();
        assert_eq!(status.len(), 2, "{status:?}");
        let find = |id: &str| status.iter().find(|s| s.id == id).expect("listed");
        let one = find(&first.credential);
        assert_eq!(one.mints_used, 2);
        assert_eq!(one.budget, Some((5, window)));
        assert_eq!(
            one.last_error.as_ref().map(|(class, _)| class.as_str()),
            Some("transient")
        );
        let mut ids: Vec<&str> = one.tokens.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        let mut expected = vec![first.entry.as_str(), second.entry.as_str()];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        for token in &one.tokens {
            let ttl = if token.id == first.entry { 60 } else { 120 };
            assert!(token.expires_in <= Duration::from_secs(ttl) && !token.expires_in.is_zero());
        }
        let two = find(&third.credential);
        assert_eq!((two.tokens.len(), two.mints_used, two.budget), (0, 0, None));
        assert_eq!(
            two.last_error.as_ref().map(|(class, _)| class.as_str()),
            Some("rejected")
        );
        // A successful take clears the last error.
        store.take_budget(&third, 5, window).await.unwrap();
        let status = store.status().await.unwrap();
        let two = status.iter().find(|s| s.id == third.credential).unwrap();
        assert_eq!((two.mints_used, two.last_error.clone()), (1, None));

        // Clear: every file of ours, a leftover temp file among them, and
        // nothing else.
        let leftover = format!("{}.{}.tmp", entry_file(&first, TOKEN), random_id());
        fs::write(temp.0.join(&leftover), b"x").unwrap();
        fs::write(temp.0.join("notes.txt"), b"mine").unwrap();
        fs::write(temp.0.join(format!("{}.txt", first.credential)), b"mine").unwrap();
        fs::create_dir(temp.0.join("sub")).unwrap();
        let ours = names(&temp.0)
            .into_iter()
            .filter(|n| parse_name(n).is_some())
            .count();
        // 2 tokens, 2 budgets, 2 metas, 2 guards, 1 lock, 1 temp file.
        assert_eq!(ours, 10);
        assert_eq!(store.clear().await.unwrap(), 10);
        let mut left = vec![
            "notes.txt".to_owned(),
            format!("{}.txt", first.credential),
            "sub".into(),
        ];
        left.sort();
        assert_eq!(names(&temp.0), left);
        assert_eq!(store.status().await.unwrap(), vec![]);
        assert_eq!(store.clear().await.unwrap(), 0);
        // The store still works afterwards.
        assert!(
            store
                .put(&first, b"1", Duration::from_secs(60), true)
                .await
                .unwrap()
        );
    }

    /// Only the names this store writes are recognised (and cleared).
    #[test]
    fn only_our_names_parse() {
        let keys = keys();
        let (c, e) = (keys.credential.as_str(), keys.entry.as_str());
        assert_eq!(
            parse_name(&entry_file(&keys, TOKEN)),
            Some(Name::Token(c, e))
        );
        assert_eq!(parse_name(&entry_file(&keys, LOCK)), Some(Name::Lock));
        assert_eq!(
            parse_name(&credential_file(&keys, BUDGET)),
            Some(Name::Budget(c))
        );
        assert_eq!(
            parse_name(&credential_file(&keys, META)),
            Some(Name::Meta(c))
        );
        assert_eq!(
            parse_name(&credential_file(&keys, GUARD)),
            Some(Name::Guard)
        );
        let temp = format!("{}.{}.tmp", credential_file(&keys, META), random_id());
        assert_eq!(parse_name(&temp), Some(Name::Temp));
        for foreign in [
            "notes.txt".to_owned(),
            format!("{c}.txt"),
            format!("{c}.{e}.meta"),
            format!("{c}.token"),
            format!("short.{e}.token"),
            format!("{c}.{e}.token.short.tmp"),
            format!("{c}.{e}.token.{}.tmp.tmp", random_id()),
            format!("x{c}.budget"),
            format!("{c}.budget.{c}.{}.tmp", random_id()),
            ".tmp".into(),
            String::new(),
        ] {
            assert_eq!(parse_name(&foreign), None, "{foreign}");
        }
    }
}
