//! The contacts list: filters read label and name indexes; a search reads the trigram index
//! once per term and list generation, and its pages come from the search cache.

use sqlx::Row;
use wharf_core::SessionId;

use super::{
    AnyQuery, ContactPage, ContactQuery, ContactRow,
    anchors::{Anchor, ListKey},
    c_columns,
    search_cache::SearchKey,
};
use crate::{Backend, Params, Result, Store};

/// `%term%` for LIKE, with the term's own wildcards escaped by `\`.
fn like_pattern(term: &str) -> String {
    let mut out = String::from("%");
    for ch in term.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// An FTS5 query asking for every distinct trigram of the lowercased term (each quoted),
/// or `None` when the term is shorter than three characters.
fn trigram_query(term: &str) -> Option<String> {
    let chars: Vec<char> = term.to_lowercase().chars().collect();
    let mut seen = std::collections::HashSet::new();
    let parts: Vec<String> = chars
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .filter(|t| seen.insert(t.clone()))
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// `*term*` for GLOB, with the term's own wildcards made literal.
fn glob_pattern(term: &str) -> String {
    let mut out = String::from("*");
    for ch in term.to_lowercase().chars() {
        match ch {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(ch);
                out.push(']');
            }
            _ => out.push(ch),
        }
    }
    out.push('*');
    out
}
impl Store {
    /// A page of the session's contacts, by name, with the total and the filter values.
    /// Another account's session reads as an empty list.
    pub async fn list_contacts(&self, q: &ContactQuery) -> Result<ContactPage> {
        // Checked once here, so every filter below reads indexes that start with the session;
        // the list's generation comes with it.
        let Some(generation) = self.owned_generation(q).await? else {
            return Ok(ContactPage {
                contacts: Vec::new(),
                total: 0,
                tags: Vec::new(),
                groups: Vec::new(),
            });
        };
        let counts = Totals::read(self, q.session).await?;
        let search = q.search.as_deref().filter(|t| !t.is_empty());
        let (contacts, total) = match (search, &q.tag, &q.group) {
            (Some(term), _, _) => self.search_contacts(q, term, generation).await?,
            (None, None, None) => {
                let contacts = self.plain_contacts(q, generation).await?;
                (contacts, counts.total("all", "", q.opted_in))
            }
            (None, tag, group) => {
                self.labelled_contacts(q, tag, group, generation, &counts)
                    .await?
            }
        };
        Ok(ContactPage {
            contacts,
            total,
            tags: counts.labels("tag"),
            groups: counts.labels("group"),
        })
    }

    /// The generation of the session's contact list (0 before its first write), or `None`
    /// when the session is not the account's.
    async fn owned_generation(&self, q: &ContactQuery) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COALESCE((SELECT generation FROM contact_generations \
             WHERE session_id = $1), 0) AS BIGINT) AS g FROM sessions WHERE id = $2 AND account_id = $3",
        )
        .bind(q.session.to_string())
        .bind(q.session.to_string())
        .bind(q.account.to_string())
        .fetch_optional(&self.read)
        .await?)
    }

    /// The list without search or labels: a page of ids from the name index, which carries
    /// each contact's opt-in for the opt-in filter, then their rows (the total comes from
    /// the counters).
    async fn plain_contacts(&self, q: &ContactQuery, generation: i64) -> Result<Vec<ContactRow>> {
        let mut p = Params::new(self.backend);
        let mut cond = format!("session_id = {}", p.next());
        let binds = vec![Bind::Text(q.session.to_string())];
        if let Some(opted) = q.opted_in {
            cond.push_str(&opt_in_condition("is_opted_in", opted));
        }
        let list = Ordered {
            from: "contacts",
            sort: "sort_name",
            seq: "seq",
            cond,
            binds,
            params: p,
            filter: format!("all\0{:?}", q.opted_in),
        };
        self.ordered_page(q, generation, list).await
    }

    /// The list by tag (else group), with an optional second label and opt-in filter: a page
    /// of ids read in order from the label rows (which carry the contact's opt-in), then
    /// their rows; the count reads the label rows.
    async fn labelled_contacts(
        &self,
        q: &ContactQuery,
        tag: &Option<String>,
        group: &Option<String>,
        generation: i64,
        counts: &Totals,
    ) -> Result<(Vec<ContactRow>, i64)> {
        let (kind, label, other) = match (tag, group) {
            (Some(t), g) => ("tag", t.as_str(), g.clone()),
            (None, Some(g)) => ("group", g.as_str(), None),
            (None, None) => unreachable!("a label filter is given"),
        };
        let mut p = Params::new(self.backend);
        let mut cond = format!("l.label_id = {}", label_id(&mut p));
        let mut binds = vec![
            Bind::Text(q.session.to_string()),
            Bind::Text(kind.to_owned()),
            Bind::Text(label.to_owned()),
        ];
        if let Some(opted) = q.opted_in {
            cond.push_str(&opt_in_condition("l.is_opted_in", opted));
        }
        let filter = format!("{kind}\0{label}\0{:?}\0{other:?}", q.opted_in);
        let counted = other.is_none();
        if let Some(group) = other {
            // One primary-key seek per candidate.
            cond.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM contact_labels o WHERE o.label_id = {} \
                 AND o.sort_name = l.sort_name AND o.seq = l.seq)",
                label_id(&mut p)
            ));
            binds.push(Bind::Text(q.session.to_string()));
            binds.push(Bind::Text("group".to_owned()));
            binds.push(Bind::Text(group));
        }
        let count = format!("SELECT COUNT(*) AS n FROM contact_labels l WHERE {cond}");
        // Two labels: counted from the index; one: read from the counters.
        let total: i64 = if counted {
            counts.total(kind, label, q.opted_in)
        } else {
            bind_all(sqlx::query(sqlx::AssertSqlSafe(count)), &binds)
                .fetch_one(&self.read)
                .await?
                .try_get("n")?
        };
        let list = Ordered {
            from: "contact_labels l",
            sort: "l.sort_name",
            seq: "l.seq",
            cond,
            binds,
            params: p,
            filter,
        };
        let contacts = self.ordered_page(q, generation, list).await?;
        Ok((contacts, total))
    }

    /// The page `q` asks for of a list read in (sort name, seq) order from an index: from the
    /// nearest page anchor (see [`super::anchors`]) when there is one, else from the start,
    /// skipping what lies between; then the page's rows by id. Records the anchors of the
    /// page's two ends while the list's generation holds.
    async fn ordered_page(
        &self,
        q: &ContactQuery,
        generation: i64,
        list: Ordered,
    ) -> Result<Vec<ContactRow>> {
        let skip = q.skip.max(0);
        let key = ListKey {
            session: q.session.to_string(),
            generation,
            filter: list.filter.clone(),
        };
        let anchor = self.contact_anchors.nearest(&key, skip);
        let anchored = anchor.is_some();
        let (page, read_in) = self.page_from(q, &key, &list, anchor).await?;
        if anchored && read_in.is_some_and(|g| g != generation) {
            // The list moved on between the anchor's choice and the page: the anchor may no
            // longer be at its position, so the page is read from the start.
            return Ok(self.page_from(q, &key, &list, None).await?.0);
        }
        Ok(page)
    }

    /// The page of `list` read from `anchor` (a position and the sort key before it), or
    /// from the start; with the generation its statement saw (`None` for no rows). Records
    /// the anchors of the page's ends when that generation is `key`'s.
    async fn page_from(
        &self,
        q: &ContactQuery,
        key: &ListKey,
        list: &Ordered,
        anchor: Option<(i64, Anchor)>,
    ) -> Result<(Vec<ContactRow>, Option<i64>)> {
        let Ordered {
            from,
            sort,
            seq,
            cond,
            binds,
            params,
            ..
        } = list;
        let (mut cond, mut binds, mut params) = (cond.clone(), binds.clone(), params.clone());
        let skip = q.skip.max(0);
        let limit = q.limit.max(0);
        let (from_position, anchor) = match anchor {
            Some((position, anchor)) => (position, Some(anchor)),
            None => (0, None),
        };
        if let Some((sort_key, seq_key)) = anchor {
            cond.push_str(&format!(
                " AND ({sort}, {seq}) > ({}, {})",
                params.next(),
                params.next()
            ));
            binds.push(Bind::Text(sort_key.into()));
            binds.push(Bind::Int(seq_key));
        }
        // The entry before the page too (when the page is not where the reading starts), so
        // the page's start is anchored.
        let before = skip > from_position;
        // With the list's generation as this statement sees it, so anchors are recorded
        // only for the generation they were read in. (Parameters in the order they appear:
        // SQLite numbers them so.)
        let sql = format!(
            "SELECT {}, p.sort_key AS page_sort, p.page_seq AS page_seq, \
             CAST(COALESCE(g.generation, 0) AS BIGINT) AS page_generation \
             FROM (SELECT {seq} AS page_seq, {sort} AS sort_key \
             FROM {from} WHERE {cond} ORDER BY {sort}, {seq} LIMIT {} OFFSET {}) p \
             CROSS JOIN contacts c \
             LEFT JOIN contact_generations g ON g.session_id = {} \
             WHERE c.seq = p.page_seq ORDER BY p.sort_key, p.page_seq",
            c_columns(),
            params.next(),
            params.next(),
            params.next()
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .bind(limit + i64::from(before))
            .bind(skip - from_position - i64::from(before))
            .bind(q.session.to_string())
            .fetch_all(&self.read)
            .await?;
        let mut page = Vec::with_capacity(rows.len());
        let mut ends: Vec<(i64, Anchor)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let contact = ContactRow::from_row(row)?;
            let here: Anchor = (
                row.try_get::<String, _>("page_sort")?.into(),
                row.try_get("page_seq")?,
            );
            if before && i == 0 {
                ends.push((skip, here));
                continue;
            }
            if i + 1 == rows.len() {
                ends.push((skip + page.len() as i64 + 1, here));
            }
            page.push(contact);
        }
        let read_in: Option<i64> = rows
            .first()
            .map(|r| r.try_get("page_generation"))
            .transpose()?;
        if read_in == Some(key.generation) {
            for (position, anchor) in ends {
                self.contact_anchors.record(key, position, anchor);
            }
        }
        Ok((page, read_in))
    }

    /// The list with a search: the ids of every match in the list's order come from the
    /// search cache (computed through the trigram index on a miss, see
    /// [`Self::search_matches`]); the page is a slice of them, read by primary key.
    async fn search_contacts(
        &self,
        q: &ContactQuery,
        term: &str,
        generation: i64,
    ) -> Result<(Vec<ContactRow>, i64)> {
        let key = SearchKey {
            session: q.session.to_string(),
            generation,
            term: term.to_lowercase(),
            tag: q.tag.clone(),
            group: q.group.clone(),
            opted_in: q.opted_in,
        };
        let matches = self
            .contact_search
            .get_or_compute(key, || self.search_matches(q, term))
            .await?;
        let total = matches.len() as i64;
        let from = usize::try_from(q.skip.max(0))
            .unwrap_or(usize::MAX)
            .min(matches.len());
        let to = from
            .saturating_add(usize::try_from(q.limit.max(0)).unwrap_or(0))
            .min(matches.len());
        let page = &matches[from..to];
        if page.is_empty() {
            return Ok((Vec::new(), total));
        }
        // By primary key only: the ids are unique, and with the session in the condition
        // SQLite may pick the session's name index and scan the whole list for the page.
        let sql = format!(
            "SELECT {} FROM contacts c WHERE c.id IN ({})",
            c_columns(),
            Params::new(self.backend).list(page.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in page {
            query = query.bind(id.to_string());
        }
        let mut rows: std::collections::HashMap<String, ContactRow> = query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| ContactRow::from_row(r).map(|c| (c.id.to_string(), c)))
            .filter(|c| !matches!(c, Ok((_, c)) if c.session_id != q.session))
            .collect::<Result<_>>()?;
        // In the cached order; a contact deleted since is left out (the next generation's
        // search no longer has it).
        let contacts = page.iter().filter_map(|id| rows.remove(&**id)).collect();
        Ok((contacts, total))
    }

    /// Every contact of the session matching the search, in the list's order (name, seq).
    /// SQLite: the FTS5 trigram index is asked for rows holding every trigram of the term
    /// (an AND of terms, which skips through long posting lists instead of checking the
    /// positions of a phrase in each), then each candidate's text is checked for the term
    /// itself; a term under three characters has no trigram and is checked row by row.
    /// PostgreSQL: `LIKE` through the `pg_trgm` GIN index.
    async fn search_matches(&self, q: &ContactQuery, term: &str) -> Result<Vec<Box<str>>> {
        let mut p = Params::new(self.backend);
        let mut binds = Vec::new();
        let mut cond = match (self.backend, trigram_query(term)) {
            (Backend::Sqlite, Some(trigrams)) => {
                let c = format!(
                    "contacts_fts f CROSS JOIN contacts c WHERE c.seq = f.rowid \
                     AND contacts_fts MATCH {} AND c.search GLOB {} AND c.session_id = {}",
                    p.next(),
                    p.next(),
                    p.next()
                );
                binds.push(Bind::Text(trigrams));
                binds.push(Bind::Text(glob_pattern(term)));
                c
            }
            (Backend::Sqlite, None) => {
                let c = format!(
                    "contacts c WHERE c.session_id = {} AND c.search GLOB {}",
                    p.next(),
                    p.next()
                );
                binds.push(Bind::Text(q.session.to_string()));
                binds.push(Bind::Text(glob_pattern(term)));
                c
            }
            (Backend::Postgres, _) => {
                let c = format!(
                    "contacts c WHERE c.search LIKE {} ESCAPE '\\' AND c.session_id = {}",
                    p.next(),
                    p.next()
                );
                binds.push(Bind::Text(like_pattern(term)));
                c
            }
        };
        if !matches!((self.backend, trigram_query(term)), (Backend::Sqlite, None)) {
            binds.push(Bind::Text(q.session.to_string()));
        }
        for (kind, label) in [("tag", &q.tag), ("group", &q.group)] {
            if let Some(label) = label {
                cond.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM contact_labels o WHERE o.label_id = {} \
                     AND o.sort_name = c.sort_name AND o.seq = c.seq)",
                    label_id(&mut p)
                ));
                binds.push(Bind::Text(q.session.to_string()));
                binds.push(Bind::Text(kind.to_owned()));
                binds.push(Bind::Text(label.clone()));
            }
        }
        if let Some(opted) = q.opted_in {
            cond.push_str(&format!(" AND c.is_opted_in = {}", p.next()));
            binds.push(Bind::Int(i64::from(opted)));
        }
        let sql = format!("SELECT c.id AS id FROM {cond} ORDER BY c.sort_name, c.seq");
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?.into_boxed_str()))
            .collect()
    }
}

/// The number of a label (`contact_label_keys`) as a scalar subquery of three parameters:
/// the session, the kind and the label (none when no contact ever carried it, which
/// matches no label row).
fn label_id(p: &mut Params) -> String {
    format!(
        "(SELECT k.id FROM contact_label_keys k WHERE k.session_id = {} AND k.kind = {} \
         AND k.label = {})",
        p.next(),
        p.next(),
        p.next()
    )
}

/// The opt-in filter of an ordered list, with its value written out (not a parameter), so
/// both databases see that `optedIn=false` is what the partial indexes of opted-out
/// contacts (`contacts_opted_out`, `contact_labels_opted_out`) hold, and read its page from
/// them; `optedIn=true` reads the list's own index and skips the opted-out entries.
fn opt_in_condition(column: &str, opted_in: bool) -> String {
    format!(" AND {column} = {}", u8::from(opted_in))
}

/// The session's counters (`contact_counts`), read once per list request: its totals and
/// its filter values.
struct Totals(Vec<(String, String, bool, i64)>);

impl Totals {
    async fn read(store: &Store, session: SessionId) -> Result<Self> {
        let rows = sqlx::query(
            "SELECT kind, label, is_opted_in, n FROM contact_counts WHERE session_id = $1",
        )
        .bind(session.to_string())
        .fetch_all(&store.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("kind")?,
                    r.try_get("label")?,
                    r.try_get::<i64, _>("is_opted_in")? != 0,
                    r.try_get("n")?,
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// Contacts of the session (`kind` "all", `label` "") or with a label, opted in or out
    /// or both.
    fn total(&self, kind: &str, label: &str, opted_in: Option<bool>) -> i64 {
        self.0
            .iter()
            .filter(|(k, l, o, _)| k == kind && l == label && opted_in.is_none_or(|w| w == *o))
            .map(|(.., n)| n)
            .sum()
    }

    /// The labels of one kind that some contact carries, sorted (bytewise, as the
    /// column's collation).
    fn labels(&self, kind: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, ..)| k == kind)
            .fold(
                std::collections::BTreeMap::<&str, i64>::new(),
                |mut m, (_, l, _, n)| {
                    *m.entry(l).or_default() += n;
                    m
                },
            )
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(l, _)| l.to_owned())
            .collect()
    }
}

/// A list read in (sort name, seq) order: the table (or index) read, its sort and seq
/// columns, the condition with its parameters so far, and the filters that tell it apart.
struct Ordered {
    from: &'static str,
    sort: &'static str,
    seq: &'static str,
    cond: String,
    binds: Vec<Bind>,
    params: Params,
    filter: String,
}

/// A parameter of a generated statement.
#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// Binds `binds` in order.
fn bind_all<'q>(mut q: AnyQuery<'q>, binds: &[Bind]) -> AnyQuery<'q> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

#[cfg(test)]
mod tests {
    #[test]
    fn search_patterns_keep_the_terms_wildcards_literal() {
        assert_eq!(super::like_pattern("50%_A"), "%50\\%\\_a%");
        assert_eq!(super::glob_pattern("A*b?"), "*a[*]b[?]*");
    }

    #[test]
    fn a_term_becomes_the_and_of_its_distinct_trigrams() {
        assert_eq!(
            super::trigram_query("Abab\"x").as_deref(),
            Some("\"aba\" AND \"bab\" AND \"ab\"\"\" AND \"b\"\"x\"")
        );
        assert_eq!(super::trigram_query("ab"), None);
        assert_eq!(
            super::trigram_query("ñoño").as_deref(),
            Some("\"ñoñ\" AND \"oño\"")
        );
    }
}
