//! The dispatcher: drains each connected session's outbox in order, under the session's send
//! rate, without holding a transaction across an engine call. One task per session with work;
//! a manager starts them when woken (new work, a session connecting) and every few seconds
//! for work left behind (a restart, a retry coming due).
//!
//! Crash safety: a job stays until its outcome is committed (a send's message stays
//! `queued`, and on PostgreSQL its outbox row stays too), so a crash between the engine call
//! and the commit sends it again after the restart. Engines that let Wharf
//! choose WhatsApp ids get the same id again, so WhatsApp drops the duplicate.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    sync::{Notify, mpsc},
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;
use wharf_core::{
    EngineKind, MessageId, SessionId, SessionStatus, engine::Pacing, message::MessageStatus,
    session::SessionPacing, time::Clock,
};
use wharf_store::{JobAction, JobOutcome, MessageRow, OutboxJob, Store};

use self::execute::{count, execute, log_outcome};
use super::pace::Pace;
use crate::{cluster::Ownership, services::Engines};

/// How the dispatcher behaves.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Sends per second per session, by engine.
    pub rate: HashMap<EngineKind, NonZeroU32>,
    /// Attempts before a retryable failure becomes final.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt (with jitter), capped by `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// When jobs are due and retries are scheduled.
    pub clock: Clock,
}

/// Jobs read per batch.
const BATCH: i64 = 200;
/// Outcomes are recorded after this many jobs …
const FLUSH_JOBS: usize = 100;
/// … or this long, whichever comes first.
const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// How often work left behind is looked for.
const SWEEP: Duration = Duration::from_secs(2);

/// What the manager keeps of a session between its tasks: its pace (so an idle moment does
/// not refill a burst) and the outcomes that could not be recorded yet.
struct SessionState {
    pace: Arc<Pace>,
    /// Outcomes of jobs that were carried out but whose recording failed. Their jobs are
    /// still in the outbox; they are fenced (never carried out again) while the write is
    /// retried, so a failed outcome write never sends a message twice.
    unrecorded: Mutex<Vec<JobOutcome>>,
}

impl SessionState {
    fn unrecorded(&self) -> std::sync::MutexGuard<'_, Vec<JobOutcome>> {
        self.unrecorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether nothing would be lost by forgetting this state.
    fn forgettable(&self) -> bool {
        self.unrecorded().is_empty() && self.pace.rested()
    }
}

/// A session's task, as the manager sees it.
struct Running {
    wake: Arc<Notify>,
    /// Set by every wake, cleared by the task each time it looks for work: a task that ends
    /// with it set missed a wake, and is started again.
    woken: Arc<AtomicBool>,
}

/// The manager's bookkeeping of tasks and per-session state.
#[derive(Default)]
struct Sessions {
    running: HashMap<SessionId, Running>,
    states: HashMap<SessionId, Arc<SessionState>>,
}

impl Sessions {
    /// Wakes the session's task; `false` when it has none (the caller starts one).
    fn wake(&self, id: SessionId) -> bool {
        match self.running.get(&id) {
            Some(r) => {
                r.woken.store(true, Ordering::SeqCst);
                r.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// The session's task ended; `true` when it must run again (it missed a wake).
    fn ended(&mut self, id: SessionId) -> bool {
        self.running
            .remove(&id)
            .is_some_and(|r| r.woken.load(Ordering::SeqCst))
    }

    /// Sessions with no task whose outcomes wait to be written: their tasks retry the write
    /// (before anything else, even when the session is no longer connected).
    fn parked(&self) -> Vec<SessionId> {
        self.states
            .iter()
            .filter(|(id, s)| !self.running.contains_key(id) && !s.unrecorded().is_empty())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Forgets the state of sessions with no task and nothing to remember.
    fn prune(&mut self) {
        let running = &self.running;
        self.states
            .retain(|id, s| running.contains_key(id) || !s.forgettable());
    }
}

/// Starts the manager; session ids sent to `wake` start or wake that session's dispatcher.
/// Session tasks run in one `JoinSet` and stop with `stop`.
pub fn spawn(
    store: Store,
    engines: Arc<Engines>,
    ownership: Arc<Ownership>,
    config: DispatchConfig,
    mut wake_rx: mpsc::UnboundedReceiver<SessionId>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = Arc::new(config);
        let mut sessions = Sessions::default();
        let mut tasks: JoinSet<SessionId> = JoinSet::new();
        let mut task_sessions: HashMap<tokio::task::Id, SessionId> = HashMap::new();
        let mut sweep = tokio::time::interval(SWEEP);
        let mut sweeps = super::Failures::new("the dispatcher's sweep");
        let reads = Arc::new(Mutex::new(ReadFailures::default()));
        loop {
            let woken: Vec<SessionId> = tokio::select! {
                _ = stop.cancelled() => break,
                id = wake_rx.recv() => match id { Some(id) => vec![id], None => break },
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let task = match &done { Ok((task, _)) => *task, Err(e) => e.id() };
                    if let Err(e) = &done {
                        tracing::error!(error = %e, "a session's dispatcher ended abnormally");
                    }
                    let ended = task_sessions.remove(&task);
                    if let Some(id) = ended {
                        // A task that ended no longer waits to read again.
                        reads.lock().expect("dispatcher state poisoned").succeeded(id);
                    }
                    match ended {
                        Some(id) if sessions.ended(id) => vec![id],
                        _ => Vec::new(),
                    }
                }
                _ = sweep.tick() => {
                    sessions.prune();
                    let mut ids = sessions.parked();
                    if let Ok(with_jobs) = sweeps.note(store.sessions_with_jobs().await) {
                        ids.extend(with_jobs);
                    }
                    ids
                }
            };
            for id in woken {
                if sessions.wake(id) {
                    continue;
                }
                // Only the session's owner dispatches it (its pace is exact only there). A
                // session with outcomes left to write is started anyway: its task writes them
                // under its fence, and stops if the lease is gone.
                if !ownership.holds(id)
                    && sessions
                        .states
                        .get(&id)
                        .is_none_or(|s| s.unrecorded().is_empty())
                {
                    continue;
                }
                let mut own = None;
                let (rate, pacing) = match store.find_session_any_account(id).await {
                    Ok(Some(s)) => {
                        let rate = config
                            .rate
                            .get(&s.engine)
                            .copied()
                            .unwrap_or(NonZeroU32::MIN);
                        let engine = engines.get(s.engine).ok().and_then(|e| e.pacing(id));
                        // The session's own pace, over its engine's (or the server's rate).
                        own = s.settings.pacing;
                        let pacing = match s.settings.pacing {
                            Some(own) => {
                                Some(own.over(engine.unwrap_or(Pacing::at_rate(rate.get()))))
                            }
                            None => engine,
                        };
                        (Some(rate), pacing)
                    }
                    _ => (None, None),
                };
                let rate = rate.unwrap_or(NonZeroU32::MIN);
                let state = match sessions.states.get(&id) {
                    Some(s) if s.pace.matches(rate, pacing) => s.clone(),
                    old => {
                        let unrecorded = old.map(|s| std::mem::take(&mut *s.unrecorded()));
                        let pace = Pace::new(rate, pacing);
                        if pace.daily_cap().is_some() {
                            // What went out today before this pace (a restart, a change).
                            let now = config.clock.now_millis();
                            let day_start = now - now.rem_euclid(86_400_000);
                            match store.count_sent_since(id, day_start).await {
                                Ok(n) => pace.seed_daily(now, u32::try_from(n).unwrap_or(u32::MAX)),
                                Err(e) => {
                                    tracing::warn!(session_id = %id, error = %e, "cannot count today's sends; the daily cap counts from now")
                                }
                            }
                        }
                        let s = Arc::new(SessionState {
                            pace: Arc::new(pace),
                            unrecorded: Mutex::new(unrecorded.unwrap_or_default()),
                        });
                        sessions.states.insert(id, s.clone());
                        s
                    }
                };
                let running = Running {
                    wake: Arc::new(Notify::new()),
                    woken: Arc::new(AtomicBool::new(false)),
                };
                let task = SessionTask {
                    id,
                    store: store.clone(),
                    engines: engines.clone(),
                    ownership: ownership.clone(),
                    config: config.clone(),
                    wake: running.wake.clone(),
                    woken: running.woken.clone(),
                    state,
                    own,
                    reads: reads.clone(),
                    stop: stop.clone(),
                };
                let handle = tasks.spawn(async move {
                    task.run().await;
                    id
                });
                task_sessions.insert(handle.id(), id);
                sessions.running.insert(id, running);
            }
        }
        while tasks.join_next().await.is_some() {}
        // Outcomes still waiting to be written get a last few tries before the process goes:
        // what is lost here is sent again after the restart.
        for (id, state) in &sessions.states {
            let mut left = std::mem::take(&mut *state.unrecorded());
            for _ in 0..STOP_TRIES {
                if left.is_empty() || store.record_outcomes(&left).await.is_ok() {
                    left.clear();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if !left.is_empty() {
                let jobs: Vec<String> = left.iter().map(|o| o.job().id.to_string()).collect();
                tracing::error!(session_id = %id, jobs = ?jobs, "stopping with dispatch outcomes not recorded: these jobs will be carried out again");
            }
        }
    })
}

/// How long a batch's messages are taken as they were read: a send that waited longer for
/// its turn reads them again first.
const FRESH_FOR: Duration = Duration::from_millis(50);

/// Tries at writing parked outcomes when the server stops (half a second apart).
const STOP_TRIES: usize = 10;

/// One session's dispatcher: runs while the session is connected and has work.
struct SessionTask {
    id: SessionId,
    store: Store,
    engines: Arc<Engines>,
    /// Whose lease fences every engine call and outcome write of the task.
    ownership: Arc<Ownership>,
    config: Arc<DispatchConfig>,
    wake: Arc<Notify>,
    woken: Arc<AtomicBool>,
    state: Arc<SessionState>,
    /// The session's own pace this task was started with.
    own: Option<SessionPacing>,
    /// The failures of every task's reads (logged once per outage).
    reads: Arc<Mutex<ReadFailures>>,
    stop: CancellationToken,
}

impl SessionTask {
    async fn run(self) {
        let Self {
            id,
            ref store,
            ref engines,
            ref ownership,
            ref config,
            ref wake,
            ref woken,
            ref state,
            own,
            ref reads,
            ref stop,
        } = self;
        let failed = |what: &str, e: &wharf_store::StoreError| {
            reads
                .lock()
                .expect("dispatcher state poisoned")
                .failed(id, &format_args!("{what} of session {id}: {e}"));
        };
        let read = || {
            reads
                .lock()
                .expect("dispatcher state poisoned")
                .succeeded(id)
        };
        let pace = &state.pace;
        loop {
            if stop.is_cancelled() {
                return;
            }
            woken.store(false, Ordering::SeqCst);
            // The lease this pass acts under: without one, or once it is lost, the task ends
            // (a new owner carries on from the outbox).
            let Some(fence) = ownership.fence(id) else {
                state.unrecorded().clear();
                return;
            };
            let fence = &fence;
            // Outcomes not recorded yet go first. While any is left, nothing new goes out: a
            // database that refuses writes must not turn into many real sends that a restart
            // (which forgets what is parked here) would repeat. `record` waits a second after
            // a failed write.
            let mut pending = std::mem::take(&mut *state.unrecorded());
            match record(store, fence, &mut pending, state).await {
                Recorded::All => {}
                Recorded::Parked => continue,
                Recorded::Fenced => return,
            }
            let mut held: HashSet<String> = HashSet::new();
            let session = match store.find_session_any_account(id).await {
                Ok(Some(s)) if s.settings.pacing != own => {
                    // The session's pace changed: the manager starts this task again with it.
                    woken.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(Some(s)) if s.status == SessionStatus::Connected => s,
                Ok(_) => return, // not connected: the work waits; connecting wakes us again
                Err(e) => {
                    failed("reading the session", &e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Ok(engine) = engines.get(session.engine) else {
                return;
            };
            let jobs = match store.ready_jobs(id, config.clock.now_millis(), BATCH).await {
                Ok(jobs) => {
                    if jobs.is_empty() {
                        read();
                    }
                    jobs
                }
                Err(e) => {
                    failed("reading the outbox", &e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                // Idle until new work, or a retry comes due (the sweep also wakes us).
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if store.outbox_len(id).await.unwrap_or(1) == 0
                            && state.unrecorded().is_empty()
                        {
                            return;
                        }
                    }
                }
                continue;
            }
            let mut messages = match load_messages(store, id, &jobs).await {
                Ok(messages) => {
                    read();
                    messages
                }
                Err(e) => {
                    failed("reading the messages", &e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut outcomes = Vec::with_capacity(jobs.len());
            let mut flushed = Instant::now();
            let mut loaded = Instant::now();
            let batch = jobs.clone();
            // A chat whose job must wait holds back its later jobs (FIFO per chat).
            for (at, job) in jobs.into_iter().enumerate() {
                let chat = job.chat_jid.to_string();
                if held.contains(&chat) {
                    continue;
                }
                if job.action == JobAction::Send {
                    let now = config.clock.now_millis();
                    if let Err(next_day) = pace.daily_check(now) {
                        // The day's sends are spent: the queue waits for the next day (UTC),
                        // without counting an attempt.
                        outcomes.push(JobOutcome::Defer {
                            available_at: next_day,
                            job,
                        });
                        held.insert(chat);
                        continue;
                    }
                    if let Err(wait) = pace.take_pair(&chat, now) {
                        // This recipient's budget is spent: later, without counting an attempt.
                        outcomes.push(JobOutcome::Defer {
                            available_at: now + wait.as_millis() as i64,
                            job,
                        });
                        held.insert(chat);
                        continue;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = pace.before_send() => {}
                    }
                }
                if !ownership.still(fence) {
                    // The lease ran out (this instance stalled) or was lost: nothing more goes
                    // out from here.
                    break;
                }
                if job.action == JobAction::Send {
                    // The batch's messages as they are now, once its sends have waited their
                    // turn a while: one withdrawn meanwhile must not go out.
                    if loaded.elapsed() >= FRESH_FOR {
                        match load_messages(store, id, &batch[at..]).await {
                            Ok(now) => {
                                messages = now;
                                loaded = Instant::now();
                            }
                            Err(e) => {
                                failed("reading the messages", &e);
                                break;
                            }
                        }
                    }
                    if let Some(m) = job.message_id.and_then(|m| messages.get(&m))
                        && m.status != MessageStatus::Queued
                    {
                        // Withdrawn, failed, or moved on by a receipt (an earlier attempt that
                        // timed out went out after all): its job ends, nothing is sent.
                        outcomes.push(JobOutcome::Done {
                            job,
                            at: config.clock.now_millis(),
                        });
                        continue;
                    }
                }
                let (outcome, pause) = execute(engine.as_ref(), id, &job, &messages, config).await;
                if matches!(outcome, JobOutcome::Sent { .. }) {
                    // Only what went out spends the day's budget, as the count after a
                    // restart (`count_sent_since`) sees it.
                    pace.count_daily(config.clock.now_millis());
                }
                count(session.engine, &outcome);
                log_outcome(&outcome);
                if job.action == JobAction::Send {
                    pace.sent();
                }
                if outcome.waits() {
                    held.insert(chat);
                }
                outcomes.push(outcome);
                if let Some(pause) = pause {
                    // A limit or a failure of the whole number: nothing more of this session goes
                    // out until it passes (the session may also have been disconnected).
                    pace.pause(pause);
                    break;
                }
                if stop.is_cancelled() {
                    break;
                }
                // Record often: a slow send rate must not keep outcomes (and their events)
                // waiting for a whole batch, nor leave many sends to repeat after a crash.
                if outcomes.len() >= FLUSH_JOBS || flushed.elapsed() >= FLUSH_AFTER {
                    match record(store, fence, &mut outcomes, state).await {
                        Recorded::All => {}
                        Recorded::Parked => break,
                        Recorded::Fenced => return,
                    }
                    flushed = Instant::now();
                }
            }
            if record(store, fence, &mut outcomes, state).await == Recorded::Fenced {
                return;
            }
        }
    }
}

/// What became of outcomes given to [`record`].
#[derive(Debug, PartialEq, Eq)]
enum Recorded {
    /// All written.
    All,
    /// Some could not be written and wait in the session's state.
    Parked,
    /// The lease moved to another instance: nothing was written, and nothing will be from
    /// here (the new owner carries the jobs out again).
    Fenced,
}

/// Records outcomes under `fence`. When the batch cannot be written, each is written alone,
/// then with its engine-given texts cut down (a value the database refuses fails only its own
/// outcome); what still cannot be written is kept in `state` and retried, its job fenced
/// meanwhile.
async fn record(
    store: &Store,
    fence: &wharf_store::Fence,
    outcomes: &mut Vec<JobOutcome>,
    state: &SessionState,
) -> Recorded {
    let id = fence.session_id;
    if outcomes.is_empty() {
        return Recorded::All;
    }
    let e = match store.record_outcomes_fenced(Some(fence), outcomes).await {
        Ok(()) => {
            outcomes.clear();
            return Recorded::All;
        }
        Err(wharf_store::StoreError::Fenced(why)) => {
            tracing::warn!(session_id = %id, outcomes = outcomes.len(), reason = %why, "dispatch outcomes not recorded: the session's lease moved to another instance");
            outcomes.clear();
            state.unrecorded().clear();
            return Recorded::Fenced;
        }
        Err(e) => e,
    };
    tracing::warn!(session_id = %id, error = %e, "could not record dispatch outcomes; recording them one by one");
    let mut left = Vec::new();
    for outcome in outcomes.drain(..) {
        if let Err(outcome) = record_alone(store, fence, outcome).await {
            left.push(outcome);
        }
    }
    if left.is_empty() {
        return Recorded::All;
    }
    tracing::error!(
        session_id = %id,
        jobs = left.len(),
        "could not record dispatch outcomes; their jobs wait (not carried out again) while the write is retried"
    );
    state.unrecorded().extend(left);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Recorded::Parked
}

/// Longest engine-given text kept when an outcome had to be cut down, in two steps.
const CUT_DOWN: [usize; 2] = [1000, 200];

async fn record_alone(
    store: &Store,
    fence: &wharf_store::Fence,
    outcome: JobOutcome,
) -> Result<(), JobOutcome> {
    if store
        .record_outcomes_fenced(Some(fence), std::slice::from_ref(&outcome))
        .await
        .is_ok()
    {
        return Ok(());
    }
    for max in CUT_DOWN {
        let cut = outcome.cut_down(max);
        match store
            .record_outcomes_fenced(Some(fence), std::slice::from_ref(&cut))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => {
                let job = outcome.job();
                tracing::warn!(
                    session_id = %job.session_id,
                    message_id = job.message_id.as_ref().map(tracing::field::display),
                    job_id = %job.id,
                    error = %e,
                    "could not record a dispatch outcome"
                )
            }
        }
    }
    Err(outcome)
}

/// The messages a batch needs: those its jobs are about, the ones they quote, and those a
/// read mark names.
async fn load_messages(
    store: &Store,
    session: SessionId,
    jobs: &[OutboxJob],
) -> Result<HashMap<MessageId, MessageRow>, wharf_store::StoreError> {
    let mut ids: Vec<MessageId> = jobs.iter().filter_map(|j| j.message_id).collect();
    for job in jobs.iter().filter(|j| j.action == JobAction::MarkRead) {
        ids.extend(marked_ids(job));
    }
    let mut messages: HashMap<_, _> = store
        .session_messages_by_ids(session, &ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let quoted: Vec<MessageId> = messages
        .values()
        .filter_map(|m| m.quoted_message_id)
        .filter(|q| !messages.contains_key(q))
        .collect();
    if !quoted.is_empty() {
        messages.extend(
            store
                .session_messages_by_ids(session, &quoted)
                .await?
                .into_iter()
                .map(|m| (m.id, m)),
        );
    }
    Ok(messages)
}

/// The session tasks' read failures, one log for all: in a database outage every task fails,
/// and the outage is logged once. It is over when every session that failed has read again,
/// so one session that keeps failing (a row it cannot read) is not taken for a recovery
/// whenever another one reads.
#[derive(Debug)]
struct ReadFailures {
    log: super::Failures,
    failing: HashSet<SessionId>,
}

impl Default for ReadFailures {
    fn default() -> Self {
        Self {
            log: super::Failures::new("the dispatcher's reads"),
            failing: HashSet::new(),
        }
    }
}

impl ReadFailures {
    fn failed(&mut self, session: SessionId, error: &dyn std::fmt::Display) {
        self.failing.insert(session);
        self.log.failed(error);
    }

    /// `session` read what it needed, or its task ended.
    fn succeeded(&mut self, session: SessionId) {
        if self.failing.remove(&session) && self.failing.is_empty() {
            self.log.succeeded();
        }
    }
}

/// The messages a read-mark job names.
fn marked_ids(job: &OutboxJob) -> Vec<MessageId> {
    job.payload["message_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

#[path = "dispatch_execute.rs"]
mod execute;

#[cfg(test)]
#[path = "dispatch_read_tests.rs"]
mod read_tests;

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
