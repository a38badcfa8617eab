//! Linearizability checker for histories of shoal's key-value API.
//!
//! Every key is an independent register: its state is `Option<String>` (`None`
//! while the key is absent), a write sets it, a delete clears it, and a read
//! returns it. Linearizability is compositional (Herlihy & Wing), so a history
//! is linearizable exactly when the sub-history of every key is; each key is
//! therefore checked on its own, and keys are spread over worker threads.
//!
//! A key is checked with the Wing–Gong–Lowe search, in the form porcupine
//! uses. Call and return events are sorted by time (a call sorts before a
//! return at the same instant, so touching intervals count as concurrent:
//! the checker errs towards accepting) and threaded on a doubly linked list.
//! Walking from the head, the search tries to linearize each operation whose
//! call it meets: if the model accepts the operation in the current state,
//! both its events are unlinked and the walk restarts from the head. Meeting
//! a return means that operation should already have taken effect, so the
//! search backtracks: it relinks the most recently linearized operation and
//! tries the next candidate after it. Every (set of linearized operations,
//! register state) pair is remembered, and a pair seen before is never
//! explored again; that turns the exponential search into one bounded by the
//! reachable configurations, which on a history with bounded concurrency is
//! roughly the number of operations times the subsets of concurrently pending
//! ones.
//!
//! Operations whose outcome is unknown (the client timed out, or got an error
//! that does not say whether the command was applied) are treated as Knossos
//! and porcupine treat them: the return is at +infinity, so the operation may
//! take effect at any point after its call, or never. "Never" costs nothing:
//! a search that has linearized every operation with a known outcome stops
//! with success, leaving the unknown ones to take effect after everything
//! else, where nothing observes them. Unknown reads constrain nothing and are
//! dropped.
//!
//! Two exchange arguments cut the search down without losing any
//! linearization; both rest on writes and deletes always being accepted and
//! only reads observing the state.
//! * A read can be moved earlier, to any point after its call that has the
//!   state it returned, without breaking real-time order or any other op. So
//!   when a candidate read matches the state it is the only branch tried, and
//!   if it fails, the configuration that offered it fails too. Without this
//!   every pending read doubles the configurations at each point in time.
//! * An unknown write or delete can be moved later at will (nothing bounds it
//!   from above) and dropped if no read sees it. In a valid linearization it
//!   is either unobserved, or followed by a read of its value, so it can
//!   always be moved to right before that read. So it is only tried when a
//!   read of its value is a candidate, which the first rule then takes next;
//!   one no read ever returns is dropped before the search. Unknown ops with
//!   the same value differ only in their calls, so a linearization can always
//!   use them in call order, and only the earliest unused one is tried.
//!   Without these, every unknown delete, whose "value" (absent) is read all
//!   through a history, would double the configurations from its call on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::num::NonZero;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a client asked the store to do with a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// Store an object whose data carries this value.
    Write(String),
    /// A linearizable GET of the key.
    Read,
    /// Remove the key.
    Delete,
}

/// What the client learned about its operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    /// The write was acknowledged.
    WriteOk,
    /// The delete was acknowledged.
    DeleteOk,
    /// The read returned this value (`None`: the key was absent).
    ReadOk(Option<String>),
    /// No answer, or an ambiguous error: the operation may or may not have taken effect.
    Unknown,
}

/// One client operation on one key, with its real-time interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    /// The client (process) that issued the operation.
    pub client: u64,
    /// The key the operation touched.
    pub key: String,
    /// What was asked.
    pub op: Op,
    /// When the request was sent, in nanoseconds on the runner's monotonic clock.
    pub call_ns: u64,
    /// When the answer arrived, on the same clock; ignored when the outcome is unknown.
    pub return_ns: u64,
    /// What came back.
    pub outcome: Outcome,
}

/// The result of checking a history, or one key of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Verdict {
    /// Some total order of the operations respects real time and the register semantics.
    Linearizable,
    /// No such order exists for this key; `detail` explains where the search got stuck.
    NotLinearizable {
        /// The key whose sub-history is not linearizable.
        key: String,
        /// A human-readable account of the longest linearizable prefix and the op that failed.
        detail: String,
    },
    /// No verdict: time or memory ran out, another key failed first, or the history was malformed.
    Unknown {
        /// Why no verdict could be given.
        reason: String,
    },
}

/// The verdict for one key of a history.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// How many operations on this key the history holds (before unknown reads are dropped).
    pub ops: usize,
    /// The key's verdict.
    pub verdict: Verdict,
}

/// Checks a whole history within `budget` (shared by all keys); any failing key decides it.
// The runner reports per key (check_per_key); this one-verdict form is for callers to come.
#[allow(dead_code)]
pub fn check(history: &[Operation], budget: Duration) -> Verdict {
    let deadline = Instant::now().checked_add(budget);
    let groups = group_by_key(history);
    // One failing key decides the whole history, so the others can stop early.
    let cancel = AtomicBool::new(false);
    let verdicts = map_keys(&groups, |key, ops| {
        let verdict = check_key(key, ops, deadline, &cancel);
        if matches!(verdict, Verdict::NotLinearizable { .. }) {
            cancel.store(true, Ordering::Relaxed);
        }
        verdict
    });
    if let Some(failure) = verdicts
        .iter()
        .find(|v| matches!(v, Verdict::NotLinearizable { .. }))
    {
        return failure.clone();
    }
    let undecided: Vec<String> = groups
        .iter()
        .zip(&verdicts)
        .filter_map(|((key, _), verdict)| match verdict {
            Verdict::Unknown { reason } => Some(format!("key {key:?}: {reason}")),
            _ => None,
        })
        .collect();
    match undecided.first() {
        None => Verdict::Linearizable,
        Some(first) => Verdict::Unknown {
            reason: format!(
                "{} of {} keys undecided; first {first}",
                undecided.len(),
                groups.len()
            ),
        },
    }
}

/// Checks every key of a history separately, each with its own `budget`; reports are sorted by key.
pub fn check_per_key(history: &[Operation], budget: Duration) -> Vec<KeyReport> {
    let groups = group_by_key(history);
    let never = AtomicBool::new(false);
    let verdicts = map_keys(&groups, |key, ops| {
        check_key(key, ops, Instant::now().checked_add(budget), &never)
    });
    groups
        .iter()
        .zip(verdicts)
        .map(|((key, ops), verdict)| KeyReport {
            key: (*key).to_owned(),
            ops: ops.len(),
            verdict,
        })
        .collect()
}

/// A BTreeMap so reports come out sorted by key, and runs are reproducible.
fn group_by_key(history: &[Operation]) -> Vec<(&str, Vec<&Operation>)> {
    let mut groups: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        groups.entry(op.key.as_str()).or_default().push(op);
    }
    groups.into_iter().collect()
}

/// Runs `f` on every key over a pool of threads and returns the verdicts in key order.
fn map_keys<F>(groups: &[(&str, Vec<&Operation>)], f: F) -> Vec<Verdict>
where
    F: Fn(&str, &[&Operation]) -> Verdict + Sync,
{
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZero::get)
        .min(groups.len());
    if workers <= 1 {
        return groups.iter().map(|(key, ops)| f(key, ops)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Verdict)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((key, ops)) = groups.get(i) else {
                            return done;
                        };
                        done.push((i, f(key, ops)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, verdict)| verdict).collect()
}

fn check_key(
    key: &str,
    ops: &[&Operation],
    deadline: Option<Instant>,
    cancel: &AtomicBool,
) -> Verdict {
    let history = match KeyHistory::new(ops) {
        Ok(history) => history,
        Err(reason) => return Verdict::Unknown { reason },
    };
    match history.search(deadline, cancel) {
        Search::Linearizable => Verdict::Linearizable,
        Search::Stuck { best } => Verdict::NotLinearizable {
            key: key.to_owned(),
            detail: history.describe_failure(&best),
        },
        Search::OutOfBudget { explored, why } => Verdict::Unknown {
            reason: format!(
                "search stopped after exploring {explored} configurations of {} ops: {why}",
                history.ops.len(),
            ),
        },
    }
}

/// Interned value id of the absent state; written values get ids from 1.
const ABSENT: u32 = 0;
/// End of the event list.
const NIL: usize = usize::MAX;
/// The list head sentinel's slot in the event arrays.
const HEAD: usize = 0;
/// How many search steps between looks at the clock, which is slower than a step.
const CLOCK_EVERY: u64 = 256;
/// Past this the memo would crowd out the cluster the runner shares the host with.
const MEMO_BYTES: usize = 1 << 30;

/// An operation reduced to what the model needs: deletes are writes of `ABSENT`.
#[derive(Clone, Copy)]
enum Step {
    Write(u32),
    Read(u32),
}

/// One key's sub-history, prepared for the search.
struct KeyHistory<'a> {
    /// Operations kept for the search; their index is their id in the bitset.
    ops: Vec<&'a Operation>,
    steps: Vec<Step>,
    /// Outcome unknown: may be left out of the linearization.
    unknown: Vec<bool>,
    /// Value id minus one to its text, for the failure report.
    names: Vec<&'a str>,
    /// Operations dropped before the search (unknown reads, unobserved unknown writes).
    dropped: usize,
}

enum Search {
    Linearizable,
    /// No linearization exists; `best` is a longest linearizable prefix (op ids in order).
    Stuck {
        best: Vec<usize>,
    },
    OutOfBudget {
        explored: usize,
        why: &'static str,
    },
}

impl<'a> KeyHistory<'a> {
    fn new(all: &[&'a Operation]) -> Result<Self, String> {
        for op in all {
            let consistent = matches!(
                (&op.op, &op.outcome),
                (_, Outcome::Unknown)
                    | (Op::Write(_), Outcome::WriteOk)
                    | (Op::Delete, Outcome::DeleteOk)
                    | (Op::Read, Outcome::ReadOk(_))
            );
            if !consistent {
                return Err(format!(
                    "malformed history: outcome does not match the op: {}",
                    render_op(op)
                ));
            }
            if !matches!(op.outcome, Outcome::Unknown) && op.return_ns < op.call_ns {
                return Err(format!(
                    "malformed history: returns before its call: {}",
                    render_op(op)
                ));
            }
        }

        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        let mut intern = |value: Option<&'a str>| match value {
            None => ABSENT,
            Some(v) => *ids.entry(v).or_insert_with(|| {
                names.push(v);
                u32::try_from(names.len()).expect("fewer than 2^32 distinct values")
            }),
        };
        let mut candidates = Vec::new();
        for &op in all {
            let step = match (&op.op, &op.outcome) {
                // An unanswered read constrains nothing.
                (Op::Read, Outcome::Unknown) => continue,
                (Op::Read, Outcome::ReadOk(seen)) => Step::Read(intern(seen.as_deref())),
                (Op::Write(v), _) => Step::Write(intern(Some(v))),
                (Op::Delete, _) => Step::Write(ABSENT),
                (Op::Read, _) => unreachable!("validated above"),
            };
            candidates.push((op, step));
        }
        let mut reads_of = vec![0u32; names.len() + 1];
        for (_, step) in &candidates {
            if let Step::Read(v) = step {
                reads_of[*v as usize] += 1;
            }
        }

        let mut history = KeyHistory {
            ops: Vec::new(),
            steps: Vec::new(),
            unknown: Vec::new(),
            names,
            dropped: all.len() - candidates.len(),
        };
        for (op, step) in candidates {
            let unknown = matches!(op.outcome, Outcome::Unknown);
            if let (true, Step::Write(v)) = (unknown, step)
                && reads_of[v as usize] == 0
            {
                // Nobody saw it, so "it never happened" is always a valid explanation.
                history.dropped += 1;
                continue;
            }
            history.ops.push(op);
            history.steps.push(step);
            history.unknown.push(unknown);
        }
        Ok(history)
    }

    fn search(&self, deadline: Option<Instant>, cancel: &AtomicBool) -> Search {
        let n = self.ops.len();
        let completed = self.unknown.iter().filter(|u| !**u).count();
        let events = self.events();

        // Slot 0 is the head; event k of `events` lives in slot k + 1.
        let slots = events.len() + 1;
        let mut next: Vec<usize> = (1..=slots)
            .map(|i| if i == slots { NIL } else { i })
            .collect();
        let mut prev: Vec<usize> = (0..slots).map(|i| i.wrapping_sub(1)).collect();
        let mut op_of = vec![0usize; slots];
        let mut is_call = vec![false; slots];
        let mut return_slot = vec![0usize; n];
        for (k, event) in events.iter().enumerate() {
            op_of[k + 1] = event.op;
            is_call[k + 1] = event.is_call;
            if !event.is_call {
                return_slot[event.op] = k + 1;
            }
        }
        let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, s: usize| {
            next[prev[s]] = next[s];
            if next[s] != NIL {
                prev[next[s]] = prev[s];
            }
        };
        // Dancing links: relinking in the reverse order of unlinking restores the list.
        let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, s: usize| {
            next[prev[s]] = s;
            if next[s] != NIL {
                prev[next[s]] = s;
            }
        };

        // The bitset of linearized ops, plus one word for the register state:
        // the whole buffer is the memo key, so a lookup allocates nothing.
        let words = n.div_ceil(64);
        let mut linearized = vec![0u64; words + 1];
        let mut seen: HashSet<Box<[u64]>> = HashSet::new();
        // Key, boxed-slice pointer and hash-table slack, roughly.
        let entry_bytes = 8 * (words + 1) + 40;
        let mut explored = 0usize;
        // (call slot, state before it) for each linearized op, in order.
        let mut stack: Vec<(usize, u32)> = Vec::new();
        let mut best: Vec<usize> = Vec::new();
        // `best` matches the stack on its first `agree` ops, so recording a
        // new longest prefix copies only what changed since the last one.
        let mut agree = 0usize;
        let mut state = ABSENT;
        let mut completed_done = 0usize;
        let mut steps_taken = 0u64;

        if completed == 0 {
            return Search::Linearizable;
        }
        // The candidates are the calls ahead of the first return in the list.
        let candidate_read = |next: &[usize], value: u32| {
            let mut s = next[HEAD];
            while s != NIL && is_call[s] {
                if matches!(self.steps[op_of[s]], Step::Read(v) if v == value) {
                    return Some(s);
                }
                s = next[s];
            }
            None
        };
        // Unknown ops of one value are interchangeable but for their calls: a
        // linearization that uses a later-called one (or several) can use them
        // in call order instead. So only the earliest unused one is tried.
        let earlier_unknown_twin = |next: &[usize], slot: usize, value: u32| {
            let mut s = next[HEAD];
            while s != slot {
                let o = op_of[s];
                if is_call[s]
                    && self.unknown[o]
                    && matches!(self.steps[o], Step::Write(v) if v == value)
                {
                    return true;
                }
                s = next[s];
            }
            false
        };
        // A candidate read that matches the state can always go first: moving
        // a read earlier, to a point after its call, breaks neither real-time
        // order nor what any op observes. So when one exists it is the only
        // branch tried, and its failure is the failure of the configuration.
        let mut slot = candidate_read(&next, state).unwrap_or(next[HEAD]);
        loop {
            if steps_taken.is_multiple_of(CLOCK_EVERY)
                && (cancel.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d))
            {
                let why = if cancel.load(Ordering::Relaxed) {
                    "another key already failed"
                } else {
                    "time budget exhausted"
                };
                return Search::OutOfBudget { explored, why };
            }
            steps_taken += 1;

            let mut fail = !is_call[slot];
            if !fail {
                let op = op_of[slot];
                let is_read = matches!(self.steps[op], Step::Read(_));
                let after = match self.steps[op] {
                    // An unknown write only matters right before a read of its
                    // value (see the module comment), and that read must
                    // already be a candidate to go next.
                    Step::Write(v)
                        if self.unknown[op]
                            && (candidate_read(&next, v).is_none()
                                || earlier_unknown_twin(&next, slot, v)) =>
                    {
                        None
                    }
                    Step::Write(v) => Some(v),
                    Step::Read(v) => (v == state).then_some(v),
                };
                let Some(after) = after else {
                    slot = next[slot];
                    continue;
                };
                set_bit(&mut linearized, op);
                linearized[words] = u64::from(after);
                let fresh = !seen.contains(linearized.as_slice());
                if fresh {
                    if explored.saturating_mul(entry_bytes) >= MEMO_BYTES {
                        return Search::OutOfBudget {
                            explored,
                            why: "memo reached its memory cap",
                        };
                    }
                    seen.insert(linearized.clone().into_boxed_slice());
                    explored += 1;
                    stack.push((slot, state));
                    state = after;
                    if !self.unknown[op] {
                        completed_done += 1;
                        if completed_done == completed {
                            // The unknown ops still pending can take effect
                            // after everything else, or never.
                            return Search::Linearizable;
                        }
                    }
                    unlink(&mut next, &mut prev, slot);
                    unlink(&mut next, &mut prev, return_slot[op]);
                    if stack.len() > best.len() {
                        best.truncate(agree);
                        best.extend(stack[agree..].iter().map(|(s, _)| op_of[*s]));
                        agree = stack.len();
                    }
                    slot = candidate_read(&next, state).unwrap_or(next[HEAD]);
                    continue;
                }
                // Every configuration in the memo has failed: a success ends
                // the search, and none on the current path can be revisited
                // because each extends the path's set.
                clear_bit(&mut linearized, op);
                fail = is_read;
                if !fail {
                    slot = next[slot];
                }
            }
            // A return reached unlinearized (always of a completed op: unknown
            // ones return at +infinity, behind every finite return), or a
            // matching read whose branch already failed.
            while fail {
                let Some((call, before)) = stack.pop() else {
                    return Search::Stuck { best };
                };
                let op = op_of[call];
                agree = agree.min(stack.len());
                clear_bit(&mut linearized, op);
                state = before;
                if !self.unknown[op] {
                    completed_done -= 1;
                }
                relink(&mut next, &mut prev, return_slot[op]);
                relink(&mut next, &mut prev, call);
                if !matches!(self.steps[op], Step::Read(_)) {
                    fail = false;
                    slot = next[call];
                }
            }
        }
    }

    /// Call and return events in the order the search walks them.
    fn events(&self) -> Vec<Event> {
        let mut events = Vec::with_capacity(2 * self.ops.len());
        for (id, op) in self.ops.iter().enumerate() {
            events.push(Event {
                time: u128::from(op.call_ns),
                is_call: true,
                op: id,
            });
            events.push(Event {
                time: if self.unknown[id] {
                    u128::MAX
                } else {
                    u128::from(op.return_ns)
                },
                is_call: false,
                op: id,
            });
        }
        // Calls first at equal times: touching intervals are treated as concurrent.
        events.sort_by_key(|e| (e.time, !e.is_call, e.op));
        events
    }

    fn describe_failure(&self, best: &[usize]) -> String {
        let mut state = ABSENT;
        let mut placed = vec![false; self.ops.len()];
        for &op in best {
            placed[op] = true;
            if let Step::Write(v) = self.steps[op] {
                state = v;
            }
        }
        let events = self.events();
        let mut call_rank = vec![0usize; self.ops.len()];
        let mut return_rank = vec![0usize; self.ops.len()];
        for (rank, event) in events.iter().enumerate() {
            if event.is_call {
                call_rank[event.op] = rank;
            } else {
                return_rank[event.op] = rank;
            }
        }
        // The op whose return comes first had to be placed next; the search
        // accepts every write, so it is a read the prefix's state contradicts.
        let blocked = (0..self.ops.len())
            .filter(|&op| !placed[op] && !self.unknown[op])
            .min_by_key(|&op| return_rank[op]);

        let completed = self.unknown.iter().filter(|u| !**u).count();
        let mut out = format!(
            "no order of the {} ops on this key respects both real time and register semantics \
             ({completed} with known outcome, {} unknown-outcome writes/deletes that may or may not \
             have happened; {} more dropped as unconstraining)\n",
            self.ops.len(),
            self.ops.len() - completed,
            self.dropped,
        );
        let _ = writeln!(
            out,
            "longest linearizable prefix: {} ops, after which the key holds {}",
            best.len(),
            self.render_value(state)
        );
        const TAIL: usize = 5;
        if !best.is_empty() {
            let _ = writeln!(out, "  last ops of that prefix:");
            for &op in &best[best.len().saturating_sub(TAIL)..] {
                let _ = writeln!(out, "    {}", render_op(self.ops[op]));
            }
        }
        let Some(blocked) = blocked else {
            // Unreachable when the search reports failure; say so rather than panic.
            out.push_str("(every op with a known outcome fits in that prefix: checker bug)");
            return out;
        };
        let _ = writeln!(
            out,
            "first op that could not be placed: {}",
            render_op(self.ops[blocked])
        );
        if let Step::Read(v) = self.steps[blocked] {
            self.explain_read(&mut out, blocked, v, state);
        }
        const PENDING: usize = 8;
        let mut pending: Vec<usize> = (0..self.ops.len())
            .filter(|&op| op != blocked && !placed[op] && call_rank[op] < return_rank[blocked])
            .collect();
        pending.sort_by_key(|&op| call_rank[op]);
        if !pending.is_empty() {
            let _ = writeln!(
                out,
                "  ops concurrent with it and not in the prefix ({} shown of {}):",
                pending.len().min(PENDING),
                pending.len()
            );
            for &op in pending.iter().take(PENDING) {
                let _ = writeln!(out, "    {}", render_op(self.ops[op]));
            }
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// Names the writes the read could have seen and, for each, a write that
    /// real time puts between it and the read: usually the whole story of a
    /// stale read.
    fn explain_read(&self, out: &mut String, read: usize, v: u32, state: u32) {
        let read_call = self.ops[read].call_ns;
        let writers: Vec<usize> = (0..self.ops.len())
            .filter(|&w| matches!(self.steps[w], Step::Write(x) if x == v))
            .collect();
        if v != ABSENT && writers.is_empty() {
            let _ = writeln!(
                out,
                "  it read {}, which no write on this key ever wrote",
                self.render_value(v)
            );
            return;
        }
        let _ = writeln!(
            out,
            "  it read {}; after that prefix the key held {}",
            self.render_value(v),
            self.render_value(state)
        );
        // When each write is known to have taken effect, and what shows it: a
        // completed write by its return; an unknown one only once a read
        // returned its value, and only if no other write wrote that value.
        let mut writers_of = vec![0u32; self.names.len() + 1];
        let mut first_read: Vec<Option<(u64, usize)>> = vec![None; self.names.len() + 1];
        for (z, step) in self.steps.iter().enumerate() {
            match *step {
                Step::Write(x) => writers_of[x as usize] += 1,
                // Reads kept for the search all completed.
                Step::Read(x) => {
                    let seen = (self.ops[z].return_ns, z);
                    let first = &mut first_read[x as usize];
                    if first.is_none_or(|f| seen < f) {
                        *first = Some(seen);
                    }
                }
            }
        }
        let effective_by = |y: usize| match self.steps[y] {
            Step::Read(_) => None,
            Step::Write(_) if !self.unknown[y] => Some((self.ops[y].return_ns, None)),
            Step::Write(x) if x != ABSENT && writers_of[x as usize] == 1 => {
                first_read[x as usize].map(|(by, z)| (by, Some(z)))
            }
            Step::Write(_) => None,
        };
        // The latest such write after `after_ns` that landed before the read
        // was called, described with the evidence that it had landed.
        let overwritten_after = |after_ns: Option<u64>| {
            let (_, y, witness) = (0..self.ops.len())
                .filter(|&y| matches!(self.steps[y], Step::Write(x) if x != v))
                .filter(|&y| after_ns.is_none_or(|t| t < self.ops[y].call_ns))
                .filter_map(|y| effective_by(y).map(|(by, witness)| (by, y, witness)))
                .filter(|(by, _, _)| *by < read_call)
                .max()?;
            Some(match witness {
                None => format!(
                    "was overwritten by {}, which completed before the read was called",
                    render_op(self.ops[y])
                ),
                Some(witness) => format!(
                    "was overwritten by {},\n    which had taken effect before the read was called, as {} shows",
                    render_op(self.ops[y]),
                    render_op(self.ops[witness])
                ),
            })
        };
        let initial = (v == ABSENT).then(|| {
            (
                "the initial absent state".to_owned(),
                overwritten_after(None),
            )
        });
        // Each source costs a pass over the history, so only the shown ones are examined.
        const SOURCES: usize = 3;
        let read_return = self.ops[read].return_ns;
        let sources = initial.into_iter().chain(writers.iter().map(|&w| {
            let separated = if self.ops[w].call_ns > read_return {
                Some("was only called after the read returned".to_owned())
            } else if self.unknown[w] {
                // It may land at any time after its call, so nothing provably follows it.
                None
            } else {
                overwritten_after(Some(self.ops[w].return_ns))
            };
            (render_op(self.ops[w]), separated)
        }));
        for (source, separated) in sources.take(SOURCES) {
            let why = separated.as_deref().unwrap_or(
                "is not overwritten by any single write known to land before the read; \
                 the conflict involves several concurrent ops",
            );
            let _ = writeln!(out, "  possible source {source}\n    {why}");
        }
        let total = writers.len() + usize::from(v == ABSENT);
        if total > SOURCES {
            let _ = writeln!(out, "  ({} more possible sources)", total - SOURCES);
        }
    }

    fn render_value(&self, id: u32) -> String {
        match id {
            ABSENT => "nothing (absent)".to_owned(),
            id => format!("{:?}", self.names[id as usize - 1]),
        }
    }
}

struct Event {
    time: u128,
    is_call: bool,
    op: usize,
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

fn render_op(op: &Operation) -> String {
    let what = match &op.op {
        Op::Write(v) => format!("write {v:?}"),
        Op::Read => "read".to_owned(),
        Op::Delete => "delete".to_owned(),
    };
    let result = match &op.outcome {
        Outcome::WriteOk | Outcome::DeleteOk => "ok".to_owned(),
        Outcome::ReadOk(None) => "-> absent".to_owned(),
        Outcome::ReadOk(Some(v)) => format!("-> {v:?}"),
        Outcome::Unknown => "outcome unknown".to_owned(),
    };
    let returned = match op.outcome {
        Outcome::Unknown => "?".to_owned(),
        _ => format!("{} ns", op.return_ns),
    };
    format!(
        "client {} {what} {result} [call {} ns, return {returned}]",
        op.client, op.call_ns
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(10);

    fn op(
        client: u64,
        key: &str,
        op: Op,
        call_ns: u64,
        return_ns: u64,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            client,
            key: key.to_owned(),
            op,
            call_ns,
            return_ns,
            outcome,
        }
    }

    fn write(client: u64, value: &str, call: u64, ret: u64) -> Operation {
        op(
            client,
            "k",
            Op::Write(value.to_owned()),
            call,
            ret,
            Outcome::WriteOk,
        )
    }

    fn write_unknown(client: u64, value: &str, call: u64) -> Operation {
        op(
            client,
            "k",
            Op::Write(value.to_owned()),
            call,
            0,
            Outcome::Unknown,
        )
    }

    fn read(client: u64, seen: Option<&str>, call: u64, ret: u64) -> Operation {
        op(
            client,
            "k",
            Op::Read,
            call,
            ret,
            Outcome::ReadOk(seen.map(str::to_owned)),
        )
    }

    fn delete(client: u64, call: u64, ret: u64) -> Operation {
        op(client, "k", Op::Delete, call, ret, Outcome::DeleteOk)
    }

    fn assert_fails(history: &[Operation], key: &str) -> String {
        match check(history, BUDGET) {
            Verdict::NotLinearizable { key: k, detail } => {
                assert_eq!(k, key);
                detail
            }
            other => panic!("expected a failure on {key:?}, got {other:?}"),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            read(1, None, 0, 5),
            write(1, "a", 10, 20),
            read(2, Some("a"), 30, 40),
            write(2, "b", 50, 60),
            read(1, Some("b"), 70, 80),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(check(&[], BUDGET), Verdict::Linearizable);
        assert!(check_per_key(&[], BUDGET).is_empty());
    }

    #[test]
    fn stale_read_after_completed_write_fails() {
        let h = [
            write(1, "a", 0, 10),
            write(1, "b", 20, 30),
            read(2, Some("a"), 40, 50),
        ];
        let detail = assert_fails(&h, "k");
        assert!(
            detail.contains("longest linearizable prefix: 2 ops"),
            "{detail}"
        );
        assert!(
            detail.contains("client 2 read -> \"a\" [call 40 ns, return 50 ns]"),
            "{detail}"
        );
        assert!(
            detail.contains("after that prefix the key held \"b\""),
            "{detail}"
        );
        assert!(
            detail
                .contains("was overwritten by client 1 write \"b\" ok [call 20 ns, return 30 ns]"),
            "{detail}"
        );
    }

    #[test]
    fn read_overlapping_a_write_may_see_either_value() {
        for seen in ["a", "b"] {
            let h = [
                write(1, "a", 0, 10),
                write(1, "b", 20, 50),
                read(2, Some(seen), 30, 40),
                // A later read pins the final value without ruling out either.
                read(3, Some("b"), 60, 70),
            ];
            assert_eq!(check(&h, BUDGET), Verdict::Linearizable, "read saw {seen}");
        }
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        let h = [write(1, "a", 0, 10), read(2, None, 10, 20)];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        let h = [write(1, "a", 0, 10), read(2, None, 11, 20)];
        assert_fails(&h, "k");
    }

    #[test]
    fn read_of_a_value_never_written_fails() {
        let h = [write(1, "a", 0, 10), read(2, Some("z"), 20, 30)];
        let detail = assert_fails(&h, "k");
        assert!(
            detail.contains("which no write on this key ever wrote"),
            "{detail}"
        );
    }

    #[test]
    fn read_of_a_value_before_its_write_was_called_fails() {
        let h = [read(2, Some("a"), 0, 10), write(1, "a", 20, 30)];
        let detail = assert_fails(&h, "k");
        assert!(
            detail.contains("was only called after the read returned"),
            "{detail}"
        );
    }

    #[test]
    fn unknown_write_later_observed_is_linearizable() {
        let h = [
            write(1, "a", 0, 10),
            write_unknown(1, "b", 20),
            // The client timed out and moved on; the write landed later.
            read(2, Some("a"), 100, 110),
            read(2, Some("b"), 120, 130),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_never_observed_is_linearizable() {
        let h = [
            write(1, "a", 0, 10),
            write_unknown(1, "b", 20),
            read(2, Some("a"), 100, 110),
            read(3, Some("a"), 200, 210),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn unknown_write_cannot_take_effect_before_its_call() {
        let h = [
            write(1, "a", 0, 10),
            read(2, Some("b"), 20, 30),
            write_unknown(1, "b", 40),
        ];
        assert_fails(&h, "k");
    }

    #[test]
    fn older_value_after_an_observed_unknown_write_fails() {
        let h = [
            write(1, "a", 0, 10),
            write_unknown(1, "b", 20),
            read(2, Some("b"), 30, 40),
            read(3, Some("a"), 50, 60),
        ];
        let detail = assert_fails(&h, "k");
        assert!(detail.contains("client 3 read -> \"a\""), "{detail}");
        assert!(
            detail.contains("which had taken effect before the read was called, as client 2 read"),
            "{detail}"
        );
    }

    #[test]
    fn unknown_read_constrains_nothing() {
        let h = [
            write(1, "a", 0, 10),
            op(2, "k", Op::Read, 20, 30, Outcome::ReadOk(None)),
        ];
        assert_fails(&h, "k");
        let h = [
            write(1, "a", 0, 10),
            op(2, "k", Op::Read, 20, 0, Outcome::Unknown),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn delete_semantics() {
        let ok = [
            write(1, "a", 0, 10),
            delete(1, 20, 30),
            read(2, None, 40, 50),
            write(2, "b", 60, 70),
            read(1, Some("b"), 80, 90),
        ];
        assert_eq!(check(&ok, BUDGET), Verdict::Linearizable);

        let resurrected = [
            write(1, "a", 0, 10),
            delete(1, 20, 30),
            read(2, Some("a"), 40, 50),
        ];
        let detail = assert_fails(&resurrected, "k");
        assert!(detail.contains("the key held nothing (absent)"), "{detail}");
        assert!(
            detail.contains("was overwritten by client 1 delete ok"),
            "{detail}"
        );

        for seen in [None, Some("a")] {
            let concurrent = [
                write(1, "a", 0, 10),
                delete(1, 20, 50),
                read(2, seen, 30, 40),
            ];
            assert_eq!(
                check(&concurrent, BUDGET),
                Verdict::Linearizable,
                "{seen:?}"
            );
        }

        let unknown_delete = |call| op(1, "k", Op::Delete, call, 0, Outcome::Unknown);
        let observed = [
            write(1, "a", 0, 10),
            unknown_delete(20),
            read(2, None, 30, 40),
        ];
        assert_eq!(check(&observed, BUDGET), Verdict::Linearizable);
        let unobserved = [
            write(1, "a", 0, 10),
            unknown_delete(20),
            read(2, Some("a"), 30, 40),
        ];
        assert_eq!(check(&unobserved, BUDGET), Verdict::Linearizable);
        let undone = [
            write(1, "a", 0, 10),
            unknown_delete(20),
            read(2, None, 30, 40),
            read(3, Some("a"), 50, 60),
        ];
        assert_fails(&undone, "k");
    }

    #[test]
    fn keys_are_checked_independently() {
        let on = |key: &str, mut o: Operation| {
            o.key = key.to_owned();
            o
        };
        let h = [
            on("a", write(1, "x", 0, 10)),
            on("b", write(1, "x", 0, 10)),
            on("c", write(1, "x", 0, 10)),
            on("a", write(2, "y", 20, 30)),
            on("b", write(2, "y", 20, 30)),
            // "c" never saw "y" written, so reading "x" there is fine.
            on("a", read(3, Some("y"), 40, 50)),
            on("b", read(3, Some("x"), 40, 50)),
            on("c", read(3, Some("x"), 40, 50)),
        ];
        let detail = assert_fails(&h, "b");
        assert!(detail.contains("the key held \"y\""), "{detail}");

        let reports = check_per_key(&h, BUDGET);
        let summary: Vec<(&str, usize, bool)> = reports
            .iter()
            .map(|r| (r.key.as_str(), r.ops, r.verdict == Verdict::Linearizable))
            .collect();
        assert_eq!(summary, [("a", 3, true), ("b", 3, false), ("c", 2, true)]);
    }

    #[test]
    fn malformed_history_is_unknown_not_a_violation() {
        let h = [op(1, "k", Op::Read, 0, 10, Outcome::WriteOk)];
        assert!(matches!(check(&h, BUDGET), Verdict::Unknown { .. }));
        let h = [write(1, "a", 10, 5)];
        assert!(matches!(check(&h, BUDGET), Verdict::Unknown { .. }));
    }

    /// splitmix64: deterministic test histories without depending on rand's API.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    /// Clients run against a true atomic register: each op takes effect at a
    /// random instant inside its interval, so the history is linearizable by
    /// construction. An op whose client gave up took effect only half the
    /// time, and possibly long after the client stopped waiting, as a Raft
    /// command can commit after its proposer timed out.
    fn simulate(
        seed: u64,
        clients: u64,
        ops_per_client: u64,
        keys: u64,
        unknown_pct: u64,
    ) -> Vec<Operation> {
        let mut rng = Rng(seed);
        let mut planned = Vec::new();
        for client in 0..clients {
            let mut t = rng.below(50);
            for i in 0..ops_per_client {
                let call_ns = t + rng.below(40);
                let return_ns = call_ns + 1 + rng.below(200);
                let key = format!("k{}", rng.below(keys));
                let op = match rng.below(100) {
                    0..45 => Op::Write(format!("c{client}-{i}")),
                    45..50 => Op::Delete,
                    _ => Op::Read,
                };
                let unknown = rng.below(100) < unknown_pct;
                let happened = !unknown || rng.below(2) == 0;
                let late = if unknown { 2_000 } else { 0 };
                let effect_ns = call_ns + rng.below(return_ns - call_ns + 1 + late);
                planned.push((
                    effect_ns, happened, unknown, op, client, key, call_ns, return_ns,
                ));
                t = return_ns;
            }
        }
        planned.sort_by_key(|p| p.0);
        let mut registers: HashMap<String, Option<String>> = HashMap::new();
        let mut history = Vec::new();
        for (_, happened, unknown, op, client, key, call_ns, return_ns) in planned {
            let register = registers.entry(key.clone()).or_default();
            let outcome = match &op {
                Op::Write(v) => {
                    if happened {
                        *register = Some(v.clone());
                    }
                    Outcome::WriteOk
                }
                Op::Delete => {
                    if happened {
                        *register = None;
                    }
                    Outcome::DeleteOk
                }
                Op::Read => Outcome::ReadOk(register.clone()),
            };
            let outcome = if unknown { Outcome::Unknown } else { outcome };
            history.push(Operation {
                client,
                key,
                op,
                call_ns,
                return_ns,
                outcome,
            });
        }
        history.sort_by_key(|o| o.call_ns);
        history
    }

    /// Makes one completed read in the second half return the value of a write
    /// that a later completed write had overwritten before the read began.
    fn make_one_read_stale(history: &mut [Operation]) -> usize {
        let known_write =
            |o: &Operation| matches!((&o.op, &o.outcome), (Op::Write(_), Outcome::WriteOk));
        let latest_write_before = |history: &[Operation], t: u64| {
            history
                .iter()
                .filter(|o| known_write(o) && o.return_ns < t)
                .max_by_key(|o| o.return_ns)
                .map(|o| (o.call_ns, o.op.clone()))
        };
        for r in history.len() / 2..history.len() {
            if !matches!(history[r].outcome, Outcome::ReadOk(_)) {
                continue;
            }
            let Some((newer_call, _)) = latest_write_before(history, history[r].call_ns) else {
                continue;
            };
            let Some((_, Op::Write(stale))) = latest_write_before(history, newer_call) else {
                continue;
            };
            history[r].outcome = Outcome::ReadOk(Some(stale));
            return r;
        }
        panic!("no read to make stale");
    }

    #[test]
    fn generated_register_history_is_linearizable_and_one_stale_read_breaks_it() {
        let mut history = simulate(7, 8, 250, 1, 4);
        assert_eq!(history.len(), 2000);
        let unknown = history
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Unknown))
            .count();
        assert!(unknown > 20, "only {unknown} unknown ops");

        let started = Instant::now();
        assert_eq!(check(&history, BUDGET), Verdict::Linearizable);
        let clean = started.elapsed();

        let r = make_one_read_stale(&mut history);
        let started = Instant::now();
        let detail = assert_fails(&history, "k0");
        let broken = started.elapsed();
        let client = history[r].client;
        assert!(
            detail.contains(&format!("client {client} read")),
            "{detail}"
        );
        assert!(
            clean + broken < Duration::from_secs(3),
            "{clean:?} + {broken:?}"
        );
    }

    /// Twenty long reads overlap, all of one value, and a stale read follows.
    /// Taking a matching read at once, and never leaving it for later, keeps
    /// that linear; otherwise each subset of the twenty gets explored.
    #[test]
    fn concurrent_reads_are_not_permuted() {
        let mut h = vec![write(1, "a", 0, 5)];
        h.extend((0..20).map(|c| read(10 + c, Some("a"), 10 + c, 1_000 + c)));
        h.push(write(1, "b", 1_100, 1_110));
        let budget = Duration::from_secs(2);
        assert_eq!(check(&h, budget), Verdict::Linearizable);
        h.push(read(2, Some("a"), 1_200, 1_210));
        let verdict = check(&h, budget);
        assert!(
            matches!(verdict, Verdict::NotLinearizable { .. }),
            "{verdict:?}"
        );
    }

    /// Thirty unknown deletes are pending while twenty-five rounds each need
    /// one of them to land; a stale read at the end forces the search to rule
    /// out every assignment. Trying only the earliest of interchangeable
    /// unknown ops keeps that linear; trying each would visit ~2^30 subsets.
    #[test]
    fn interchangeable_unknown_deletes_stay_cheap() {
        let mut h: Vec<Operation> = (0..30)
            .map(|c| op(100 + c, "k", Op::Delete, c, 0, Outcome::Unknown))
            .collect();
        for i in 0..25 {
            let (t, v) = (100 + 60 * i, format!("v{i}"));
            h.push(write(1, &v, t, t + 10));
            h.push(read(2, Some(&v), t + 20, t + 30));
            h.push(read(2, None, t + 40, t + 50));
        }
        let budget = Duration::from_secs(2);
        assert_eq!(check(&h, budget), Verdict::Linearizable);
        h.push(read(3, Some("v3"), 10_000, 10_010));
        let verdict = check(&h, budget);
        assert!(
            matches!(verdict, Verdict::NotLinearizable { .. }),
            "{verdict:?}"
        );
    }

    /// Twenty unknown writes are pending from the start and each is read once,
    /// in turn; a second read of the first one is stale. Trying an unknown
    /// write only when a read of its value is due keeps that linear; trying
    /// each whenever it is pending would visit ~2^20 subsets.
    #[test]
    fn unknown_writes_wait_for_their_readers() {
        let mut h: Vec<Operation> = (0..20)
            .map(|c| write_unknown(100 + c, &format!("u{c}"), c))
            .collect();
        for i in 0..20 {
            let t = 100 + 20 * i;
            h.push(read(1, Some(&format!("u{i}")), t, t + 10));
        }
        let budget = Duration::from_secs(2);
        assert_eq!(check(&h, budget), Verdict::Linearizable);
        h.push(read(2, Some("u0"), 1_000, 1_010));
        let verdict = check(&h, budget);
        assert!(
            matches!(verdict, Verdict::NotLinearizable { .. }),
            "{verdict:?}"
        );
    }

    #[test]
    fn generated_multi_key_history_is_linearizable() {
        let history = simulate(11, 8, 250, 5, 4);
        assert_eq!(check(&history, BUDGET), Verdict::Linearizable);
        let reports = check_per_key(&history, BUDGET);
        assert_eq!(reports.len(), 5);
        assert_eq!(reports.iter().map(|r| r.ops).sum::<usize>(), history.len());
        assert!(reports.iter().all(|r| r.verdict == Verdict::Linearizable));
    }

    #[test]
    fn zero_budget_gives_unknown() {
        let history = simulate(3, 8, 50, 1, 4);
        assert!(matches!(
            check(&history, Duration::ZERO),
            Verdict::Unknown { .. }
        ));
        let reports = check_per_key(&history, Duration::ZERO);
        assert!(matches!(reports[0].verdict, Verdict::Unknown { .. }));
    }

    /// The definition, searched naively: some set of ops containing every
    /// completed one, in some order that respects real time, replays on the
    /// register. Unknown ops may be left out; unknown reads accept any value.
    fn brute_force(ops: &[Operation]) -> bool {
        fn ret(o: &Operation) -> u64 {
            match o.outcome {
                Outcome::Unknown => u64::MAX,
                _ => o.return_ns,
            }
        }
        fn go(ops: &[Operation], left: &mut Vec<usize>, state: Option<String>) -> bool {
            if left
                .iter()
                .all(|&i| matches!(ops[i].outcome, Outcome::Unknown))
            {
                return true;
            }
            for pos in 0..left.len() {
                let x = &ops[left[pos]];
                if left.iter().any(|&y| ret(&ops[y]) < x.call_ns) {
                    continue;
                }
                let after = match (&x.op, &x.outcome) {
                    (Op::Write(v), _) => Some(v.clone()),
                    (Op::Delete, _) => None,
                    (Op::Read, Outcome::ReadOk(seen)) if *seen != state => continue,
                    (Op::Read, _) => state.clone(),
                };
                let i = left.remove(pos);
                let found = go(ops, left, after);
                left.insert(pos, i);
                if found {
                    return true;
                }
            }
            false
        }
        go(ops, &mut (0..ops.len()).collect(), None)
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = Rng(42);
        let values = ["a", "b", "c"];
        let (mut good, mut bad) = (0, 0);
        for round in 0..2000 {
            let len = 1 + rng.below(8);
            let history: Vec<Operation> = (0..len)
                .map(|i| {
                    let call = rng.below(20);
                    let ret = call + rng.below(10);
                    let value = values[rng.below(3) as usize].to_owned();
                    let (o, outcome) = match rng.below(10) {
                        0..3 => (
                            Op::Write(values[i as usize % 3].to_owned()),
                            Outcome::WriteOk,
                        ),
                        3..5 => (Op::Delete, Outcome::DeleteOk),
                        _ => {
                            let seen = (rng.below(4) > 0).then_some(value);
                            (Op::Read, Outcome::ReadOk(seen))
                        }
                    };
                    let outcome = if rng.below(3) == 0 {
                        Outcome::Unknown
                    } else {
                        outcome
                    };
                    op(i, "k", o, call, ret, outcome)
                })
                .collect();
            let expected = brute_force(&history);
            let got = check(&history, BUDGET);
            assert_eq!(
                got == Verdict::Linearizable,
                expected,
                "round {round}: {got:?} for {history:#?}"
            );
            if expected { good += 1 } else { bad += 1 }
        }
        // Both answers must be well represented or the comparison proves little.
        assert!(good > 500 && bad > 500, "{good} linearizable, {bad} not");
    }

    #[test]
    fn history_round_trips_through_json() {
        let h = vec![
            write(1, "a", 0, 10),
            write_unknown(2, "b", 5),
            read(3, None, 1, 2),
        ];
        let json = serde_json::to_string(&h).unwrap();
        let back: Vec<Operation> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
