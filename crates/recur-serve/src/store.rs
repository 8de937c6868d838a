//! Where a server keeps its streams durably: a record per stream (its step count and its state's bytes) written
//! atomically, so that after a restart, or a `kill -9`, every stream resumes from its last durable step.
//!
//! A record, all integers little-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `RECURSEQ` (ASCII) |
//! | 8 | 4 | format version, `u32` = 1 |
//! | 12 | 8 | steps the stream had taken, `u64` |
//! | 20 | n | the state, [`recur::StreamState::to_bytes`] of the stream alone (its own format and checksum) |
//! | end − 8 | 8 | FNV-1a 64-bit hash of every byte before it, `u64` |
//!
//! Two stores: a directory of this server's own ([`DirStore`]), and Redis, shared by several servers
//! ([`RedisStore`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use recur::stream::bytes::fnv1a64;

use crate::protocol::SequenceId;

const MAGIC: &[u8; 8] = b"RECURSEQ";
const VERSION: u32 = 1;
const HEADER: usize = 20;

/// A stream as it is stored: its step count and its state's bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Steps taken when the state was saved.
    pub steps: u64,
    /// [`recur::StreamState::to_bytes`] of the stream alone.
    pub state: Vec<u8>,
}

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.state.len() + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.steps.to_le_bytes());
        out.extend_from_slice(&self.state);
        let hash = fnv1a64(&out);
        out.extend_from_slice(&hash.to_le_bytes());
        out
    }

    /// Reads a record, or says why the bytes are not one (the state inside is checked when it is restored).
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        if bytes.len() < HEADER + 8 {
            return Err(format!("{} bytes are too few for a stream record", bytes.len()));
        }
        if &bytes[..8] != MAGIC {
            return Err("not a stream record (bad magic)".into());
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(format!("stream record version {version}, this build reads {VERSION}"));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 8);
        if fnv1a64(body) != u64::from_le_bytes(hash.try_into().expect("8 bytes")) {
            return Err("the stream record is corrupt (checksum mismatch)".into());
        }
        let steps = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes"));
        Ok(Record { steps, state: body[HEADER..].to_vec() })
    }
}

/// A place for the records of a server's streams.
pub trait StateStore: Send {
    /// Stores `record` for `id`, replacing what was there, atomically: a crash leaves the old record or the new.
    fn save(&mut self, id: &SequenceId, record: &Record) -> io::Result<()>;
    /// Forgets `id` (a stream that ended). Forgetting a stream never stored is not an error.
    fn remove(&mut self, id: &SequenceId) -> io::Result<()>;
    /// Every stored stream, and why each record that cannot be read cannot: what a server starting on the store
    /// holds. Empty for a shared store, whose streams are taken one at a time as requests name them.
    fn load_all(&mut self) -> io::Result<Stored>;
    /// The record of `id`, if the store holds one.
    fn load(&mut self, id: &SequenceId) -> io::Result<Option<Record>>;
    /// Whether other processes share the store: a parked stream then lives only in the store, so that whichever
    /// process its next request reaches resumes it.
    fn shared(&self) -> bool {
        false
    }
    /// Claims stream `id` for this server while it holds it (live, or parked in its own memory), so that no other
    /// server sharing the store steps it meanwhile: `Ok(true)` when this server holds the claim, new or renewed,
    /// and `Ok(false)` when another server does. A store of one server's own has nothing to claim.
    fn claim(&mut self, _id: &SequenceId) -> io::Result<bool> {
        Ok(true)
    }
    /// Renews this server's claims on `ids`, and says which of them another server holds now (this server's
    /// claim ran out).
    fn renew(&mut self, _ids: &[&SequenceId]) -> io::Result<Vec<SequenceId>> {
        Ok(Vec::new())
    }
    /// Gives up this server's claim on `id` (a stream it handed to the store, or one that ended); another
    /// server's claim stays.
    fn release(&mut self, _id: &SequenceId) -> io::Result<()> {
        Ok(())
    }
}

/// A record's bytes, read: a record that cannot be read is an [`io::ErrorKind::InvalidData`] error.
fn decoded(bytes: &[u8], what: impl std::fmt::Display) -> io::Result<Record> {
    Record::decode(bytes).map_err(|why| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {why}")))
}

/// What a store holds.
#[derive(Debug, Default)]
pub struct Stored {
    /// The streams, with their records.
    pub records: Vec<(SequenceId, Record)>,
    /// For each record that could not be read, where it is and why.
    pub unreadable: Vec<String>,
}

/// Records as files of a directory, one a stream: `n<id>.seq` for a number, `s<hex of the UTF-8>.seq` for a
/// string. Each is written to a temporary file, flushed to disk and renamed over the old one.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        Ok(DirStore { dir })
    }

    fn path(&self, id: &SequenceId) -> PathBuf {
        self.dir.join(format!("{}.seq", name_of(id)))
    }
}

/// A stream's name in a store: `n<id>` for a number, `s<hex of the UTF-8>` for a string.
fn name_of(id: &SequenceId) -> String {
    match id {
        SequenceId::Number(n) => format!("n{n}"),
        SequenceId::Text(s) => format!("s{}", s.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// The stream a file name stands for, if it is one of [`DirStore`]'s.
fn id_of(name: &str) -> Option<SequenceId> {
    let stem = name.strip_suffix(".seq")?;
    if let Some(n) = stem.strip_prefix('n') {
        return n.parse().ok().filter(|&n| n != 0).map(SequenceId::Number);
    }
    let hex = stem.strip_prefix('s')?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    String::from_utf8(bytes?).ok().map(SequenceId::Text)
}

impl StateStore for DirStore {
    fn save(&mut self, id: &SequenceId, record: &Record) -> io::Result<()> {
        let path = self.path(id);
        let temporary = path.with_extension("tmp");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&record.encode())?;
        file.sync_all()?;
        fs::rename(&temporary, &path)
    }

    fn remove(&mut self, id: &SequenceId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn load(&mut self, id: &SequenceId) -> io::Result<Option<Record>> {
        let path = self.path(id);
        match fs::read(&path) {
            Ok(bytes) => decoded(&bytes, path.display()).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn load_all(&mut self) -> io::Result<Stored> {
        let mut stored = Stored::default();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(id_of) else { continue };
            match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| Record::decode(&b)) {
                Ok(record) => stored.records.push((id, record)),
                Err(why) => stored.unreadable.push(format!("{}: {why}", path.display())),
            }
        }
        Ok(stored)
    }
}

/// Records in Redis, shared by every server that uses the same Redis and model name: key `recur:<model>:<name>`,
/// the value a record's bytes. A parked stream lives only there, so that a stream parked by one server resumes on
/// whichever server its next request reaches. Redis's own persistence (`appendonly`, `save`) decides what
/// survives a restart of Redis.
///
/// A server that holds a stream claims it: key `recur-claim:<model>:<name>`, the value the server's own token,
/// set only when no other server's is there, and expiring after the lease unless renewed. A server that stops
/// without giving its claims up (a crash) holds its streams for at most the lease.
pub struct RedisStore {
    connection: redis::Connection,
    prefix: String,
    claim_prefix: String,
    /// This server's token: unique among the processes and servers sharing the Redis.
    owner: String,
    lease: Duration,
}

/// Claims `KEYS[1]` for owner `ARGV[1]` for `ARGV[2]` milliseconds: 1 when the owner holds it now, 0 when another
/// does. One script, so that the check and the set are one step for Redis.
const CLAIM: &str = "local held = redis.call('GET', KEYS[1]) \
    if held == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
    if held == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
    return 0";

/// Deletes `KEYS[1]` if owner `ARGV[1]` holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port[/db]`) for the streams of model `model`.
    pub fn open(url: &str, model: &str) -> io::Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
        let connection = client.get_connection().map_err(|e| io::Error::other(format!("{url}: {e}")))?;
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let owner = format!("{}-{since_epoch}-{}", std::process::id(), SERVERS.fetch_add(1, Relaxed));
        Ok(RedisStore {
            connection,
            prefix: format!("recur:{model}:"),
            claim_prefix: format!("recur-claim:{model}:"),
            owner,
            lease: Duration::from_secs(10),
        })
    }

    /// Claims last `lease` (default 10 s) unless renewed: a server renews its claims more often than that.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    fn key(&self, id: &SequenceId) -> String {
        format!("{}{}", self.prefix, name_of(id))
    }

    fn claim_key(&self, id: &SequenceId) -> String {
        format!("{}{}", self.claim_prefix, name_of(id))
    }

    /// The `EVAL` of the claim script on stream `id`.
    fn claim_command(&self, id: &SequenceId) -> redis::Cmd {
        let mut command = redis::cmd("EVAL");
        let lease_ms = self.lease.as_millis().max(1) as u64;
        command.arg(CLAIM).arg(1).arg(self.claim_key(id)).arg(&self.owner).arg(lease_ms);
        command
    }
}

fn redis_error(e: redis::RedisError) -> io::Error {
    io::Error::other(format!("redis: {e}"))
}

impl StateStore for RedisStore {
    fn save(&mut self, id: &SequenceId, record: &Record) -> io::Result<()> {
        redis::cmd("SET").arg(self.key(id)).arg(record.encode()).query::<()>(&mut self.connection).map_err(redis_error)
    }

    fn remove(&mut self, id: &SequenceId) -> io::Result<()> {
        redis::cmd("DEL").arg(self.key(id)).query::<()>(&mut self.connection).map_err(redis_error)
    }

    fn load_all(&mut self) -> io::Result<Stored> {
        Ok(Stored::default())
    }

    fn load(&mut self, id: &SequenceId) -> io::Result<Option<Record>> {
        let key = self.key(id);
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut self.connection).map_err(redis_error)?;
        bytes.map(|b| decoded(&b, &key)).transpose()
    }

    fn shared(&self) -> bool {
        true
    }

    fn claim(&mut self, id: &SequenceId) -> io::Result<bool> {
        let held: i64 = self.claim_command(id).query(&mut self.connection).map_err(redis_error)?;
        Ok(held == 1)
    }

    fn renew(&mut self, ids: &[&SequenceId]) -> io::Result<Vec<SequenceId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for &id in ids {
            pipeline.add_command(self.claim_command(id));
        }
        let held: Vec<i64> = pipeline.query(&mut self.connection).map_err(redis_error)?;
        Ok(ids.iter().zip(held).filter(|&(_, h)| h != 1).map(|(&id, _)| id.clone()).collect())
    }

    fn release(&mut self, id: &SequenceId) -> io::Result<()> {
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.claim_key(id))
            .arg(&self.owner)
            .query::<()>(&mut self.connection)
            .map_err(redis_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_corruption_is_caught() {
        let record = Record { steps: 41, state: vec![1, 2, 3, 4, 5] };
        let bytes = record.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), record);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(Record::decode(&bad).is_err(), "a flipped bit at {at} went unnoticed");
        }
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Record::decode(&[]).is_err());
    }

    #[test]
    fn a_directory_keeps_records_by_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = DirStore::open(dir.path()).unwrap();
        let ids = [SequenceId::Number(7), SequenceId::Text("user/ü 1".into())];
        for (k, id) in ids.iter().enumerate() {
            store.save(id, &Record { steps: k as u64, state: vec![k as u8; 3] }).unwrap();
        }
        store.save(&ids[0], &Record { steps: 9, state: vec![9] }).unwrap();
        std::fs::write(dir.path().join("n5.seq"), b"garbage").unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        let Stored { mut records, unreadable } = store.load_all().unwrap();
        records.sort_by_key(|(_, r)| r.steps);
        assert_eq!(
            records,
            vec![
                (ids[1].clone(), Record { steps: 1, state: vec![1; 3] }),
                (ids[0].clone(), Record { steps: 9, state: vec![9] })
            ]
        );
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        store.remove(&ids[0]).unwrap();
        store.remove(&ids[0]).unwrap();
        assert_eq!(store.load_all().unwrap().records.len(), 1);
        assert_eq!(id_of("s.seq"), None);
        assert_eq!(id_of("n0.seq"), None);
        assert_eq!(id_of("sff.seq"), None);
    }
}
