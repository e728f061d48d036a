//! The dispatcher's unit tests: task wake-ups, state pruning, backoff.

use super::{execute::backoff, *};

fn running() -> Running {
    Running {
        wake: Arc::new(Notify::new()),
        woken: Arc::new(AtomicBool::new(false)),
    }
}

#[test]
fn a_wake_while_a_task_returns_starts_it_again() {
    let mut sessions = Sessions::default();
    let id = SessionId::generate();
    sessions.running.insert(id, running());
    // The task looked for work, found none and is returning; a wake comes meanwhile.
    assert!(sessions.wake(id), "the task is still known, so it is woken");
    assert!(sessions.ended(id), "it missed the wake: started again");
    // A task that ends with no wake since it last looked stays ended.
    sessions.running.insert(id, running());
    assert!(!sessions.ended(id));
    assert!(!sessions.wake(id), "no task: the caller starts one");
}

#[test]
fn states_are_forgotten_once_rested_and_unneeded() {
    let mut sessions = Sessions::default();
    let state = |rested: bool| {
        let pace = Arc::new(Pace::new(NonZeroU32::MIN, None));
        if rested {
            pace.rest();
        }
        Arc::new(SessionState {
            pace,
            unrecorded: Mutex::new(Vec::new()),
        })
    };
    let (idle, busy, running_id, unrecorded) = (
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
    );
    sessions.states.insert(idle, state(true));
    sessions.states.insert(busy, state(false));
    sessions.states.insert(running_id, state(true));
    sessions.running.insert(running_id, running());
    let kept = state(true);
    let job = OutboxJob::new(
        wharf_core::AccountId::generate(),
        unrecorded,
        wharf_core::Jid::parse("15550100001@s.whatsapp.net").unwrap(),
        None,
        JobAction::MarkRead,
        serde_json::Value::Null,
    );
    kept.unrecorded().push(JobOutcome::Done { job, at: 1 });
    sessions.states.insert(unrecorded, kept);
    sessions.prune();
    assert!(!sessions.states.contains_key(&idle));
    for id in [busy, running_id, unrecorded] {
        assert!(sessions.states.contains_key(&id));
    }
}

#[test]
fn backoff_grows_with_jitter_and_is_capped() {
    let config = DispatchConfig {
        rate: HashMap::new(),
        max_attempts: 5,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        clock: Clock::default(),
    };
    for _ in 0..100 {
        let first = backoff(&config, 0);
        assert!(
            (50..=101).contains(&(first.as_millis() as u64)),
            "{first:?}"
        );
        let third = backoff(&config, 2);
        assert!(
            (200..=401).contains(&(third.as_millis() as u64)),
            "{third:?}"
        );
        assert!(backoff(&config, 20) <= Duration::from_millis(2001));
    }
}

#[test]
fn a_session_that_keeps_failing_to_read_is_not_taken_for_a_recovery_by_another() {
    let (a, b) = (SessionId::generate(), SessionId::generate());
    let mut reads = ReadFailures::default();
    reads.failed(a, &"database is down");
    reads.failed(b, &"database is down");
    reads.succeeded(b);
    assert!(reads.failing.contains(&a), "a still fails: {reads:?}");
    // Another session reading again says nothing about `a`.
    reads.succeeded(SessionId::generate());
    assert_eq!(reads.failing.len(), 1);
    reads.succeeded(a);
    assert!(reads.failing.is_empty());
}
