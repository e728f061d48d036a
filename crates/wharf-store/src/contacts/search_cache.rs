//! The search cache: the ids of every contact matching one search (term and filters), in
//! the list's order, for one generation of the session's contact list.
//!
//! A search whose term is common (a mail domain, a surname) matches thousands of contacts,
//! and finding and sorting them all costs tens of milliseconds even through the trigram
//! index. Pages of the same search (`skip` moving on) and repeated searches read the cached
//! ids instead, so they cost a slice and one primary-key read of the page's rows. The key
//! holds the session's list generation (`contact_generations`, moved on in the transaction
//! of every contact write), so a write anywhere, by this instance or another one on the same
//! database, makes the next search compute afresh: a page never shows a list older than the
//! generation it read. Concurrent misses of one key compute it once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OnceCell;

use crate::Result;

/// What one search is: the session, its list generation, the lowercased term and filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SearchKey {
    pub session: String,
    pub generation: i64,
    pub term: String,
    pub tag: Option<String>,
    pub group: Option<String>,
    pub opted_in: Option<bool>,
}

/// The matching ids, in the list's order.
pub(crate) type Matches = Arc<[Box<str>]>;

struct Entry {
    cell: Arc<OnceCell<Matches>>,
    used: u64,
}

/// Searches larger than this are not kept (each computes afresh): about 12 MB of ids.
const MAX_ENTRY_IDS: usize = 250_000;
/// At most this many ids are kept in all (about 24 MB), and this many searches.
const MAX_TOTAL_IDS: usize = 500_000;
const MAX_ENTRIES: usize = 64;

/// See the module's documentation. One per [`crate::Store`], shared by its clones.
#[derive(Default)]
pub(crate) struct SearchCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SearchKey, Entry>,
    tick: u64,
}

impl std::fmt::Debug for SearchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchCache").finish_non_exhaustive()
    }
}

impl SearchCache {
    /// The matches of `key`, computed by `compute` when they are not kept (once for
    /// concurrent callers of the same key).
    pub(crate) async fn get_or_compute<F, Fut>(&self, key: SearchKey, compute: F) -> Result<Matches>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Box<str>>>>,
    {
        let cell = {
            let mut inner = self.inner.lock().expect("search cache lock");
            inner.tick += 1;
            let tick = inner.tick;
            // Older generations of this session can never be asked for again.
            inner
                .entries
                .retain(|k, _| k.session != key.session || k.generation >= key.generation);
            let entry = inner.entries.entry(key.clone()).or_insert_with(|| Entry {
                cell: Arc::new(OnceCell::new()),
                used: tick,
            });
            entry.used = tick;
            entry.cell.clone()
        };
        let matches = cell
            .get_or_try_init(|| async { compute().await.map(Matches::from) })
            .await?
            .clone();
        let mut inner = self.inner.lock().expect("search cache lock");
        if matches.len() > MAX_ENTRY_IDS {
            inner.entries.remove(&key);
        }
        inner.evict();
        Ok(matches)
    }

    /// How many searches are kept (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("search cache lock").entries.len()
    }
}

impl Inner {
    /// Drops the least recently used searches until the bounds hold.
    fn evict(&mut self) {
        loop {
            let total: usize = self
                .entries
                .values()
                .filter_map(|e| e.cell.get().map(|m| m.len()))
                .sum();
            if self.entries.len() <= MAX_ENTRIES && total <= MAX_TOTAL_IDS {
                return;
            }
            let Some(oldest) = self
                .entries
                .iter()
                .filter(|(_, e)| e.cell.initialized())
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key(session: &str, generation: i64, term: &str) -> SearchKey {
        SearchKey {
            session: session.into(),
            generation,
            term: term.into(),
            tag: None,
            group: None,
            opted_in: None,
        }
    }

    fn ids(n: usize) -> Vec<Box<str>> {
        (0..n).map(|i| format!("ct_{i}").into_boxed_str()).collect()
    }

    #[tokio::test]
    async fn a_search_is_computed_once_per_generation_and_concurrent_misses_share_it() {
        let cache = Arc::new(SearchCache::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute(key("ses_a", 1, "jones"), || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(ids(3))
                    })
                    .await
                    .unwrap()
                    .len()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 3);
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one computation for one key"
        );
        // A new generation of the session computes afresh and drops the old one.
        let m = cache
            .get_or_compute(key("ses_a", 2, "jones"), || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(ids(1))
            })
            .await
            .unwrap();
        assert_eq!((m.len(), runs.load(Ordering::SeqCst)), (1, 2));
        assert_eq!(cache.len(), 1, "the older generation is gone");
    }

    #[tokio::test]
    async fn large_searches_are_not_kept_and_the_total_is_bounded() {
        let cache = SearchCache::default();
        cache
            .get_or_compute(key("ses_a", 1, "a"), || async {
                Ok(ids(MAX_ENTRY_IDS + 1))
            })
            .await
            .unwrap();
        assert_eq!(cache.len(), 0);
        for i in 0..3 {
            cache
                .get_or_compute(key("ses_a", 1, &format!("t{i}")), || async {
                    Ok(ids(MAX_TOTAL_IDS / 2))
                })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 2, "the least recently used search went");
        for i in 0..(MAX_ENTRIES + 5) {
            cache
                .get_or_compute(key("ses_b", 1, &format!("u{i}")), || async { Ok(ids(1)) })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
    }

    #[tokio::test]
    async fn a_failed_computation_is_not_kept() {
        let cache = SearchCache::default();
        let err = cache
            .get_or_compute(key("ses_a", 1, "x"), || async {
                Err(crate::StoreError::Corrupt("boom".into()))
            })
            .await;
        assert!(err.is_err());
        let ok = cache
            .get_or_compute(key("ses_a", 1, "x"), || async { Ok(ids(2)) })
            .await
            .unwrap();
        assert_eq!(ok.len(), 2);
    }
}
