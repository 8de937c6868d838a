//! The sequence batcher: one thread that holds every stream's state and steps the streams whose requests are
//! waiting, together, as Triton's sequence batcher does with its "oldest" strategy.
//!
//! Requests arrive over a channel. Each stream has a queue of its own, so its requests run in the order they came
//! and never two at once. When requests of `max_batch` streams are waiting, or the oldest of them has waited
//! `max_delay`, the oldest request of each of up to `max_batch` streams runs as one batch: their states are moved
//! into one working [`StreamState`], which steps them all at once (one product per layer for all of them), a step
//! at a time until each request's steps are done (a request of `T` steps takes part in `T` batched steps; the
//! batch shrinks as the shorter ones finish), and their states are moved back. A stream idle for `idle_timeout` is
//! parked: its state is kept as the bytes of [`StreamState::to_bytes`] ([`crate::parked`]), and resumes from them
//! when its next request arrives.
//!
//! With a [`StateStore`], a parked stream's record is stored when it is parked, every live stream that stepped
//! since its last record is stored every `snapshot_every`, and an ended stream's record is removed; at start the
//! stored streams are loaded, parked, at the step count of their records. A stream's durable step is the step count
//! of its latest stored record.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use recur::{StepWorker, StreamState};
use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::model::{ServedModel, StepRows};
use crate::parked::{ParkedStreams, StepCounts};
use crate::protocol::{SequenceId, Steps, StreamRequest};
use crate::store::{Record, StateStore, Stored};

/// How the batcher forms batches and lets streams go.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// The most streams in one batched step.
    pub max_batch: usize,
    /// The longest the oldest waiting request waits for more streams to join its batch.
    pub max_delay: Duration,
    /// How long a stream stays live without a request before it is parked as bytes.
    pub idle_timeout: Duration,
    /// How often the live streams that stepped since their last record are stored (with a store).
    pub snapshot_every: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_batch: 256,
            max_delay: Duration::from_micros(100),
            idle_timeout: Duration::from_secs(1),
            snapshot_every: Duration::from_secs(1),
        }
    }
}

/// Weight bytes (as held) from which the batcher steps its batches on two cores, with a [`StepWorker`]. A small
/// model's batches are cheap next to the HTTP requests they answer, and the worker, which spins between steps,
/// would take the second core from the HTTP side: 1000 streams of an I32 H64 LSTM, one step a request, were
/// answered at 26 600 requests a second with it and 31 900 without (wrk on the same 2 cores, AMD EPYC Zen 4).
const TWO_CORE_MIN_BYTES: usize = 1 << 19;

/// The outputs of a request's steps.
#[derive(Debug)]
pub struct StepOutputs {
    /// `T × O` values.
    pub values: Vec<f32>,
    /// The stream's step count after these steps.
    pub sequence_step: u64,
    /// The step count of the stream's latest stored record (0 without a store).
    pub durable_step: u64,
}

/// Where a stream stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceStatus {
    /// Steps taken.
    pub steps: u64,
    /// The step count of its latest stored record.
    pub durable: u64,
    /// Whether its state is parked as bytes (else live).
    pub parked: bool,
}

/// What the batcher's channel carries.
enum Message {
    /// A request's steps.
    Step(Job),
    /// A question about a stream.
    Status(SequenceId, oneshot::Sender<Option<SequenceStatus>>),
}

/// A request on its way to the batcher.
struct Job {
    request: StreamRequest,
    /// The stream's key: its id, or a number of its own for a request without one.
    key: Key,
    arrived: Instant,
    reply: oneshot::Sender<Result<StepOutputs, ServeError>>,
}

/// A stream's key in the batcher.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Named(SequenceId),
    /// A request without a sequence id: a stream of its own, started and ended by it.
    Anonymous(u64),
}

/// The sending side of the batcher, held by the HTTP handlers.
#[derive(Clone, Debug)]
pub struct Batcher {
    jobs: Sender<Message>,
    next_anonymous: Arc<std::sync::atomic::AtomicU64>,
}

impl Batcher {
    /// Starts the batcher's thread for `model` (and a [`StepWorker`] for a large model's steps), with the streams
    /// `store` holds, if one is given.
    pub fn start(
        model: Arc<ServedModel>,
        options: BatchOptions,
        metrics: Arc<Metrics>,
        store: Option<Box<dyn StateStore>>,
    ) -> std::io::Result<Self> {
        let (jobs, receiver) = std::sync::mpsc::channel();
        let worker = StepWorker::start()?;
        let mut work = model.new_state().map_err(std::io::Error::other)?;
        if model.recurrent().weight_bytes() >= TWO_CORE_MIN_BYTES {
            work.set_worker(Some(&worker));
        }
        let mut parking = model.new_state().map_err(std::io::Error::other)?;
        parking.set_batch(1);
        let parked = ParkedStreams::new(parking.to_bytes().len());
        let stepper = Stepper {
            model,
            options,
            metrics,
            work,
            streams: HashMap::new(),
            parked,
            ready: VecDeque::new(),
            x: Vec::new(),
            ids: Vec::new(),
            out: Vec::new(),
            features: Vec::new(),
            parking,
            store,
            _worker: worker,
        };
        let mut stepper = stepper;
        stepper.load_stored()?;
        std::thread::Builder::new().name("recur-batcher".into()).spawn(move || stepper.run(receiver))?;
        Ok(Batcher { jobs, next_anonymous: Arc::new(std::sync::atomic::AtomicU64::new(0)) })
    }

    /// Queues `request` and waits for its outputs.
    pub async fn submit(&self, request: StreamRequest) -> Result<StepOutputs, ServeError> {
        let key = match &request.sequence {
            Some(id) => Key::Named(id.clone()),
            None => Key::Anonymous(self.next_anonymous.fetch_add(1, Relaxed)),
        };
        let (reply, outputs) = oneshot::channel();
        let job = Job { request, key, arrived: Instant::now(), reply };
        self.jobs.send(Message::Step(job)).map_err(|_| stopped())?;
        outputs.await.map_err(|_| stopped())?
    }

    /// Where stream `id` stands, or `None` when the server holds no such stream.
    pub async fn status(&self, id: SequenceId) -> Result<Option<SequenceStatus>, ServeError> {
        let (reply, status) = oneshot::channel();
        self.jobs.send(Message::Status(id, reply)).map_err(|_| stopped())?;
        status.await.map_err(|_| stopped())
    }
}

fn stopped() -> ServeError {
    ServeError::Unavailable("the batcher has stopped".into())
}

/// A live stream: its state's values, ready to step, and its waiting requests.
struct Stream {
    /// [`StreamState::stream_len`] values.
    values: Vec<f32>,
    counts: StepCounts,
    last_used: Instant,
    /// Requests waiting, oldest first.
    queue: VecDeque<Job>,
    /// Whether the stream is open once its queued requests have run (an end closes it, a start opens it).
    open: bool,
}

impl Stream {
    fn new(values: Vec<f32>, counts: StepCounts, open: bool) -> Self {
        Stream { values, counts, last_used: Instant::now(), queue: VecDeque::new(), open }
    }
}

/// The batcher's thread: every stream's state and the working batch.
struct Stepper {
    model: Arc<ServedModel>,
    options: BatchOptions,
    metrics: Arc<Metrics>,
    work: StreamState,
    /// The live streams.
    streams: HashMap<Key, Stream>,
    parked: ParkedStreams,
    /// Streams with waiting requests, in the order they became so.
    ready: VecDeque<Key>,
    /// A step's inputs (features, or token ids) and outputs for the working batch, and embedded tokens.
    x: Vec<f32>,
    ids: Vec<usize>,
    out: Vec<f32>,
    features: Vec<f32>,
    /// A state of one stream, for parking a stream as bytes.
    parking: StreamState,
    store: Option<Box<dyn StateStore>>,
    _worker: StepWorker,
}

/// What one request of a batch does, in the batch's order.
struct Running {
    job: Job,
    steps: usize,
    outputs: Vec<f32>,
}

impl Stepper {
    fn run(mut self, jobs: Receiver<Message>) {
        let sweep_every = self.options.idle_timeout.min(Duration::from_millis(100));
        let (mut last_sweep, mut last_snapshot) = (Instant::now(), Instant::now());
        loop {
            let full = self.ready.len() >= self.options.max_batch;
            // Wait for a request: for the oldest's delay to run out, or for the next sweep when none is waiting.
            let wait = match self.oldest_wait() {
                None => sweep_every,
                Some(_) if full => Duration::ZERO,
                Some(waited) => self.options.max_delay.saturating_sub(waited),
            };
            if self.ready.is_empty() {
                match jobs.recv_timeout(wait) {
                    Ok(message) => self.take(message),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else if !wait.is_zero() {
                // A batch is forming: sleep out its delay rather than be woken by each request that joins it.
                std::thread::sleep(wait);
            }
            loop {
                match jobs.try_recv() {
                    Ok(message) => self.take(message),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let full = self.ready.len() >= self.options.max_batch;
            if self.oldest_wait().is_some_and(|waited| full || waited >= self.options.max_delay) {
                self.run_batch();
            }
            if last_sweep.elapsed() >= sweep_every {
                self.park_idle();
                last_sweep = Instant::now();
            }
            if self.store.is_some() && last_snapshot.elapsed() >= self.options.snapshot_every {
                self.snapshot();
                self.renew_claims();
                last_snapshot = Instant::now();
            }
        }
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Step(job) => self.accept(job),
            Message::Status(id, reply) => {
                let _ = reply.send(self.status(&id));
            }
        }
        self.count_streams();
    }

    /// Where stream `id` stands: live, parked, or only in a shared store that no server holds it live from.
    fn status(&mut self, id: &SequenceId) -> Option<SequenceStatus> {
        let live = self.streams.get(&Key::Named(id.clone())).filter(|s| s.open || !s.queue.is_empty());
        let (counts, parked) = match live {
            Some(stream) => (stream.counts, false),
            None => match self.parked.counts(id) {
                Some(counts) => (counts, true),
                None => match self.store.as_mut().map(|store| store.load(id)) {
                    Some(Ok(Some(record))) => {
                        (StepCounts { steps: record.steps, durable: record.steps, stored: true }, true)
                    }
                    _ => return None,
                },
            },
        };
        Some(SequenceStatus { steps: counts.steps, durable: counts.durable, parked })
    }

    /// Sets the gauges of live and parked streams.
    fn count_streams(&self) {
        self.metrics.live_streams.store(self.streams.len() as u64, Relaxed);
        self.metrics.parked_streams.store(self.parked.len() as u64, Relaxed);
    }

    /// Loads the streams the store holds, parked, at the step counts of their records.
    fn load_stored(&mut self) -> std::io::Result<()> {
        let Some(store) = &mut self.store else { return Ok(()) };
        let Stored { records, unreadable } = store.load_all()?;
        for why in unreadable {
            eprintln!("recur serve: skipped a stored stream: {why}");
        }
        for (id, record) in records {
            if let Err(why) = self.hold_stored(id.clone(), record) {
                eprintln!("recur serve: skipped stored sequence {id}: {why}");
            }
        }
        self.count_streams();
        Ok(())
    }

    /// Parks stream `id` from its stored record, once its state is known to be one of this model's.
    fn hold_stored(&mut self, id: SequenceId, Record { steps, state }: Record) -> Result<(), String> {
        let restored = StreamState::from_bytes(self.model.recurrent(), &state).map_err(|e| e.to_string())?;
        if restored.batch() != 1 {
            return Err(format!("a state of {} streams, where a stream's has one", restored.batch()));
        }
        self.parked.park(id, &state, StepCounts { steps, durable: steps, stored: true })
    }

    /// Makes stream `id` live from where it is parked: in this server, or in the store (a shared store's stream
    /// that another server parked, or this one), once this server holds its claim. `Ok(false)` when it is in
    /// neither.
    fn unpark(&mut self, id: &SequenceId) -> Result<bool, ServeError> {
        let unreadable = |why: String| ServeError::Internal(format!("sequence {id} could not be resumed: {why}"));
        if !self.parked.contains(id) {
            // Claimed before it is read: a record read first could be older than the one its holder is about to
            // store as it lets the stream go.
            if !self.claim(id)? {
                return Ok(false);
            }
            let Some(store) = &mut self.store else { return Ok(false) };
            match store.load(id) {
                Ok(Some(record)) => {
                    if let Err(why) = self.hold_stored(id.clone(), record) {
                        self.release(id);
                        return Err(unreadable(why));
                    }
                }
                Ok(None) => {
                    self.release(id);
                    return Ok(false);
                }
                Err(e) => {
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    self.release(id);
                    return Err(ServeError::Unavailable(format!("sequence {id}: reading its record: {e}")));
                }
            }
        }
        let (counts, state) = self.parked.take(id).expect("parked above");
        let restored = StreamState::from_bytes(self.model.recurrent(), state).map_err(|e| unreadable(e.to_string()))?;
        let mut values = vec![0.0; self.work.stream_len()];
        restored.read_stream(0, &mut values).map_err(|e| unreadable(e.to_string()))?;
        self.streams.insert(Key::Named(id.clone()), Stream::new(values, counts, true));
        Ok(true)
    }

    /// Claims stream `id` in the store, if there is one: `Ok(false)` without a store. Fails with a conflict when
    /// another server sharing the store holds it.
    fn claim(&mut self, id: &SequenceId) -> Result<bool, ServeError> {
        let Some(store) = &mut self.store else { return Ok(false) };
        match store.claim(id) {
            Ok(true) => Ok(true),
            Ok(false) => Err(ServeError::Conflict(format!(
                "sequence {id} is held by another server sharing the store: send its requests there (hash on its id)"
            ))),
            Err(e) => {
                self.metrics.store_errors.fetch_add(1, Relaxed);
                Err(ServeError::Unavailable(format!("sequence {id}: claiming it in the store: {e}")))
            }
        }
    }

    /// Gives up this server's claim on stream `id`; a failure is reported and counted (the claim then runs out).
    fn release(&mut self, id: &SequenceId) {
        let Some(store) = &mut self.store else { return };
        if let Err(e) = store.release(id) {
            eprintln!("recur serve: releasing sequence {id}: {e}");
            self.metrics.store_errors.fetch_add(1, Relaxed);
        }
    }

    /// Renews the claims on the streams this server holds, live or parked in memory (with a shared store).
    fn renew_claims(&mut self) {
        let Some(store) = self.store.as_mut().filter(|s| s.shared()) else { return };
        let live = self.streams.keys().filter_map(|key| match key {
            Key::Named(id) => Some(id),
            Key::Anonymous(_) => None,
        });
        let held: Vec<&SequenceId> = live.chain(self.parked.ids()).collect();
        match store.renew(&held) {
            Ok(lost) => {
                for id in lost {
                    eprintln!("recur serve: another server holds sequence {id} now: this server's claim ran out");
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                eprintln!("recur serve: renewing the claims on {} sequences: {e}", held.len());
                self.metrics.store_errors.fetch_add(1, Relaxed);
            }
        }
    }

    /// Stores a record of every live stream that stepped since its last one.
    fn snapshot(&mut self) {
        let Some(store) = &mut self.store else { return };
        for (key, stream) in &mut self.streams {
            let Key::Named(id) = key else { continue };
            if stream.counts.steps == stream.counts.durable {
                continue;
            }
            let state = state_bytes(&mut self.parking, &stream.values);
            let record = Record { steps: stream.counts.steps, state };
            store_record(store.as_mut(), id, &record, &mut stream.counts, &self.metrics);
        }
    }

    /// How long the oldest waiting request has waited, if one is waiting.
    fn oldest_wait(&self) -> Option<Duration> {
        let key = self.ready.front()?;
        let job = self.streams.get(key)?.queue.front()?;
        Some(job.arrived.elapsed())
    }

    /// Checks a request against its stream's state (in arrival order) and queues it, or answers it with an error.
    fn accept(&mut self, job: Job) {
        let (start, end) = match &job.key {
            Key::Named(_) => (job.request.start, job.request.end),
            Key::Anonymous(_) => (true, true),
        };
        let mut open = self.streams.get(&job.key).is_some_and(|s| s.open);
        if let (Key::Named(id), false) = (&job.key, self.streams.contains_key(&job.key)) {
            let found = match start {
                true if self.parked.contains(id) => Ok(true),
                // A new stream: refused if another server holds it.
                true => self.claim(id).map(|_| false),
                false => self.unpark(id),
            };
            match found {
                Ok(found) => open = found,
                Err(error) => return self.refuse(job, error),
            }
        }
        let refusal = match (&job.key, start, open) {
            (Key::Named(id), true, true) => {
                Some(format!("sequence {id} is already live: end it (sequence_end) before starting it again"))
            }
            (Key::Named(id), false, false) => {
                Some(format!("sequence {id} was never started or has ended: start it with sequence_start"))
            }
            _ => None,
        };
        if let Some(message) = refusal {
            return self.refuse(job, ServeError::BadRequest(message));
        }
        let width = self.work.stream_len();
        let stream = self
            .streams
            .entry(job.key.clone())
            .or_insert_with(|| Stream::new(vec![0.0; width], StepCounts::default(), false));
        stream.open = !end;
        if stream.queue.is_empty() {
            self.ready.push_back(job.key.clone());
        }
        stream.queue.push_back(job);
    }

    /// Answers `job` with `error`, counted.
    fn refuse(&self, job: Job, error: ServeError) {
        self.metrics.requests_failed.fetch_add(1, Relaxed);
        let _ = job.reply.send(Err(error));
    }

    /// Runs the oldest request of each of up to `max_batch` waiting streams, as one batch.
    fn run_batch(&mut self) {
        let count = self.ready.len().min(self.options.max_batch);
        let input = self.model.input();
        let mut batch: Vec<Running> = Vec::with_capacity(count);
        let keys: Vec<Key> = self.ready.drain(..count).collect();
        for key in keys {
            let stream = self.streams.get_mut(&key).expect("a ready stream is held");
            let job = stream.queue.pop_front().expect("a ready stream has a request");
            self.metrics.queue_delay.observe(job.arrived.elapsed().as_secs_f64());
            // A request that says where it expects the stream to be, and finds it elsewhere (the server restarted
            // from a record older than the client's last answer), changes nothing: the client resends from here.
            let steps = stream.counts.steps;
            if let Some(expected) = job.request.expect_step.filter(|&e| e != steps && !job.request.start) {
                let durable = stream.counts.durable;
                let message = format!(
                    "sequence {} is at step {steps} (durable step {durable}), the request expects step {expected}: \
                     resend the inputs from step {steps}",
                    job.request.sequence.as_ref().map_or_else(String::new, |id| id.to_string())
                );
                if !stream.queue.is_empty() {
                    self.ready.push_back(key.clone());
                } else if !stream.open {
                    // The refused request would have ended it: it stays open, as it was.
                    stream.open = true;
                }
                self.refuse(job, ServeError::BadRequest(message));
                continue;
            }
            let steps = job.request.steps.count(input);
            batch.push(Running { job, steps, outputs: Vec::new() });
        }
        if batch.is_empty() {
            return;
        }
        // Longest first, so that the streams still stepping are always the first rows of the working batch.
        batch.sort_by_key(|r| std::cmp::Reverse(r.steps));
        if let Err(error) = self.step_batch(&mut batch) {
            for running in batch {
                self.refuse(running.job, ServeError::Internal(error.to_string()));
            }
            return;
        }
        for running in batch {
            self.finish(running);
        }
        self.count_streams();
    }

    /// Moves the batch's states into the working batch, steps it until every request's steps are done (the batch
    /// shrinking as the shorter ones finish), and moves the states back.
    fn step_batch(&mut self, batch: &mut [Running]) -> recur::Result<()> {
        let out_width = self.model.output_size();
        self.work.set_batch(batch.len());
        for (row, running) in batch.iter_mut().enumerate() {
            let stream = self.streams.get_mut(&running.job.key).expect("a running stream is held");
            if running.job.request.start || matches!(running.job.key, Key::Anonymous(_)) {
                // From the zero state: whatever it held before (a stream ended and started again) goes.
                stream.values.fill(0.0);
                stream.counts.steps = 0;
            }
            self.work.write_stream(row, &stream.values)?;
            running.outputs = vec![0.0; running.steps * out_width];
        }
        let longest = batch.first().map_or(0, |r| r.steps);
        for t in 0..longest {
            let active = batch.iter().take_while(|r| r.steps > t).count();
            // The requests that have finished leave the working batch; their states go back to their streams.
            self.return_states(batch, active)?;
            self.work.set_batch(active);
            self.x.clear();
            self.ids.clear();
            for running in &batch[..active] {
                match &running.job.request.steps {
                    Steps::Features(f) => {
                        let i = f.len() / running.steps;
                        self.x.extend_from_slice(&f[t * i..(t + 1) * i]);
                    }
                    Steps::Tokens(t_ids) => self.ids.push(t_ids[t]),
                }
            }
            let rows = if self.ids.is_empty() { StepRows::Features(&self.x) } else { StepRows::Tokens(&self.ids) };
            self.out.resize(active * out_width, 0.0);
            let began = Instant::now();
            self.model.step(&mut self.work, rows, &mut self.features, &mut self.out)?;
            self.metrics.batched_step(active, began.elapsed());
            for (running, row) in batch[..active].iter_mut().zip(self.out.chunks_exact(out_width)) {
                running.outputs[t * out_width..(t + 1) * out_width].copy_from_slice(row);
            }
        }
        self.return_states(batch, 0)
    }

    /// Copies the states of the working batch's rows from `first` on back to their streams.
    fn return_states(&mut self, batch: &[Running], first: usize) -> recur::Result<()> {
        for (row, running) in batch.iter().enumerate().take(self.work.batch()).skip(first) {
            let stream = self.streams.get_mut(&running.job.key).expect("a running stream is held");
            self.work.read_stream(row, &mut stream.values)?;
        }
        Ok(())
    }

    /// Answers a request whose steps are done, and lets its stream go if it ended.
    fn finish(&mut self, running: Running) {
        let Running { job, steps, outputs } = running;
        let stream = self.streams.get_mut(&job.key).expect("a finished stream is held");
        stream.counts.steps += steps as u64;
        stream.last_used = Instant::now();
        let StepCounts { steps: sequence_step, durable: durable_step, stored } = stream.counts;
        if !stream.queue.is_empty() {
            self.ready.push_back(job.key.clone());
        } else if !stream.open {
            self.streams.remove(&job.key);
            if let (Some(store), Key::Named(id)) = (&mut self.store, &job.key) {
                if let (true, Err(e)) = (stored, store.remove(id)) {
                    eprintln!("recur serve: removing the record of ended sequence {id}: {e}");
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                }
                let id = id.clone();
                self.release(&id);
            }
        }
        self.metrics.requests_ok.fetch_add(1, Relaxed);
        let _ = job.reply.send(Ok(StepOutputs { values: outputs, sequence_step, durable_step }));
    }

    /// Parks the live streams that have waited `idle_timeout` without a request, storing their records. With a
    /// shared store, a parked stream whose record is stored lives only there.
    fn park_idle(&mut self) {
        let timeout = self.options.idle_timeout;
        let idle: Vec<SequenceId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.queue.is_empty() && s.last_used.elapsed() >= timeout)
            .filter_map(|(key, _)| match key {
                Key::Named(id) => Some(id.clone()),
                Key::Anonymous(_) => None,
            })
            .collect();
        let shared = self.store.as_ref().is_some_and(|s| s.shared());
        for id in idle {
            let Some(mut stream) = self.streams.remove(&Key::Named(id.clone())) else { continue };
            let state = state_bytes(&mut self.parking, &stream.values);
            let counts = &mut stream.counts;
            if let Some(store) = &mut self.store
                && (counts.steps != counts.durable || !counts.stored)
            {
                let record = Record { steps: counts.steps, state: state.clone() };
                store_record(store.as_mut(), &id, &record, counts, &self.metrics);
            }
            if shared && counts.stored && counts.durable == counts.steps {
                self.release(&id); // handed over to the store
                continue;
            }
            let parked = self.parked.park(id.clone(), &state, *counts);
            parked.expect("a state of one stream of this model fits the parked slots");
        }
        self.count_streams();
    }
}

/// The bytes of a stream's state ([`StreamState::to_bytes`]) from its values, through `parking`, a state of one
/// stream.
fn state_bytes(parking: &mut StreamState, values: &[f32]) -> Vec<u8> {
    parking.write_stream(0, values).expect("a live stream's values are of the model's stream length");
    parking.to_bytes()
}

/// Stores `record` for stream `id` and marks it durable at its step count; a failure is reported and counted, and
/// the stream stays durable where it was.
fn store_record(
    store: &mut dyn StateStore,
    id: &SequenceId,
    record: &Record,
    counts: &mut StepCounts,
    metrics: &Metrics,
) {
    match store.save(id, record) {
        Ok(()) => {
            counts.durable = record.steps;
            counts.stored = true;
        }
        Err(e) => {
            eprintln!("recur serve: storing sequence {id}: {e}");
            metrics.store_errors.fetch_add(1, Relaxed);
        }
    }
}
