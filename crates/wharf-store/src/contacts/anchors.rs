//! Page anchors: where deep pages of a list start, so `skip` need not read past every
//! skipped entry again.
//!
//! The list without search is read in (name, seq) order from an index, `skip` entries
//! skipped. Skipping 20,000 entries reads 20,000 index entries on every request (and on
//! PostgreSQL, right after a bulk load, as many table rows). Each page read records anchors:
//! the sort key of the entry just before its first and just after its last position. The next
//! request at or past an anchored position seeks to the anchor through the index and skips
//! only what lies between: a client paging through the list reads each page in
//! O(page), and a repeated deep page is one seek.
//!
//! Anchors are kept per list (session, filter) and list generation (`contact_generations`,
//! moved on in the transaction of every contact write, by any instance), so a write anywhere
//! makes the next page read from the start of the index again. An anchor is recorded only when
//! the generation read after the page is still the one read before it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

/// One list: the session, its filters and its generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ListKey {
    pub session: String,
    pub generation: i64,
    /// The filters, in a form that tells lists apart.
    pub filter: String,
}

/// The sort key of the entry before a position: (sort name, the contact's seq).
pub(crate) type Anchor = (Box<str>, i64);

/// At most this many lists are kept, and this many anchors per list (a few MB in all).
const MAX_LISTS: usize = 128;
const MAX_ANCHORS: usize = 256;

/// See the module's documentation. One per [`crate::Store`], shared by its clones.
#[derive(Default)]
pub(crate) struct Anchors {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lists: HashMap<ListKey, List>,
    tick: u64,
}

struct List {
    /// Position → the sort key of the entry at position - 1.
    anchors: BTreeMap<i64, Anchor>,
    used: u64,
}

impl std::fmt::Debug for Anchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchors").finish_non_exhaustive()
    }
}

impl Anchors {
    /// The anchor at the greatest position not past `skip`, if any: (position, key).
    pub(crate) fn nearest(&self, key: &ListKey, skip: i64) -> Option<(i64, Anchor)> {
        let mut inner = self.inner.lock().expect("anchors lock");
        inner.tick += 1;
        let tick = inner.tick;
        // Older generations of this session can never be asked for again.
        inner
            .lists
            .retain(|k, _| k.session != key.session || k.generation >= key.generation);
        let list = inner.lists.get_mut(key)?;
        list.used = tick;
        list.anchors
            .range(..=skip)
            .next_back()
            .map(|(p, a)| (*p, a.clone()))
    }

    /// Records that the entry at `position - 1` of the list has the sort key `anchor`.
    pub(crate) fn record(&self, key: &ListKey, position: i64, anchor: Anchor) {
        if position <= 0 {
            return;
        }
        let mut inner = self.inner.lock().expect("anchors lock");
        inner.tick += 1;
        let tick = inner.tick;
        if !inner.lists.contains_key(key) && inner.lists.len() >= MAX_LISTS {
            let oldest = inner
                .lists
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.lists.remove(&k);
            }
        }
        let list = inner.lists.entry(key.clone()).or_insert_with(|| List {
            anchors: BTreeMap::new(),
            used: tick,
        });
        list.used = tick;
        list.anchors.insert(position, anchor);
        if list.anchors.len() > MAX_ANCHORS {
            // The shallowest goes: it is the cheapest to read again.
            list.anchors.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: &str, generation: i64) -> ListKey {
        ListKey {
            session: session.into(),
            generation,
            filter: "all".into(),
        }
    }

    fn anchor(name: &str) -> Anchor {
        (name.into(), name.len() as i64)
    }

    #[test]
    fn the_nearest_anchor_is_the_deepest_not_past_the_skip() {
        let a = Anchors::default();
        let k = key("s1", 1);
        assert_eq!(a.nearest(&k, 100), None);
        a.record(&k, 50, anchor("b"));
        a.record(&k, 100, anchor("c"));
        a.record(&k, 0, anchor("a"));
        assert_eq!(a.nearest(&k, 49), None, "position 0 is never recorded");
        assert_eq!(a.nearest(&k, 50), Some((50, anchor("b"))));
        assert_eq!(a.nearest(&k, 99), Some((50, anchor("b"))));
        assert_eq!(a.nearest(&k, 20_000), Some((100, anchor("c"))));
        let other = ListKey {
            filter: "tag:vip".into(),
            ..k.clone()
        };
        assert_eq!(a.nearest(&other, 100), None, "lists are apart");
    }

    #[test]
    fn a_new_generation_forgets_the_older_ones_of_its_session() {
        let a = Anchors::default();
        a.record(&key("s1", 1), 50, anchor("b"));
        a.record(&key("s2", 1), 50, anchor("b"));
        assert_eq!(a.nearest(&key("s1", 2), 60), None);
        assert_eq!(a.nearest(&key("s1", 1), 60), None, "dropped");
        assert_eq!(a.nearest(&key("s2", 1), 60), Some((50, anchor("b"))));
    }

    #[test]
    fn lists_and_anchors_are_bounded() {
        let a = Anchors::default();
        for p in 1..=(MAX_ANCHORS as i64 + 10) {
            a.record(&key("s", 1), p, anchor("x"));
        }
        let inner = a.inner.lock().unwrap();
        let list = &inner.lists[&key("s", 1)];
        assert_eq!(list.anchors.len(), MAX_ANCHORS);
        assert_eq!(list.anchors.keys().next(), Some(&11), "the shallowest went");
        drop(inner);
        for s in 0..(MAX_LISTS + 5) {
            a.record(&key(&format!("t{s}"), 1), 5, anchor("x"));
        }
        assert_eq!(a.inner.lock().unwrap().lists.len(), MAX_LISTS);
    }
}
