//! A linearizability checker for a set of independent KV v2 registers.
//!
//! Each key of a KV v2 mount is modelled as one register whose state is
//! `(version, value)`: `version` counts the successful writes so far (0 while
//! the key is absent), `value` is the last value written. Three operations:
//!
//! * `Read` returns the state (`None` when the key is absent);
//! * `Write(v)` always succeeds and returns the new version (`version + 1`);
//! * `Cas { expected, v }` succeeds (returning `version + 1`) only when the
//!   current version equals `expected`, else fails with [`CasMismatch`] and
//!   changes nothing (`expected == 0` means "only if absent", as in Vault).
//!
//! A history is a set of [`Op`]s, each with the times it was invoked and
//! completed. An op whose outcome is unknown (error, timeout, lost reply) is
//! *indeterminate*: `complete` and `output` are `None`; it may have taken
//! effect at any instant after its invocation, or never. A request that was
//! certainly never sent (connection refused) is simply not recorded.
//!
//! The history is linearizable when, for every key independently (keys are
//! independent registers, so the check composes per key), the ops can be put
//! in a total order that (1) respects real time — an op that completed before
//! another was invoked comes first — and (2) is a legal run of the model
//! producing exactly the recorded outputs. Indeterminate ops may be placed
//! anywhere after their invocation, or left out.
//!
//! The search is Wing & Gong's backtracking with Lowe's memoization (as in
//! Porcupine): events sorted by time in a doubly linked list, a call is
//! "lifted" when linearized, and a (set of linearized ops, state) pair seen
//! before is never explored again. The number of explored configurations is
//! capped ([`Checker::max_states`]); past it the check answers
//! [`CheckError::TooLarge`] instead of running for hours.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Read,
    Write(String),
    Cas { expected: u64, value: String },
}

/// A check-and-set that was refused because the version did not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CasMismatch;

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `None`: the key is absent; else `(version, value)`.
    Read(Option<(u64, String)>),
    /// The version the write created.
    Write(u64),
    /// The version the CAS created, or the refusal.
    Cas(Result<u64, CasMismatch>),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Unique within a history; errors name ops by it.
    pub id: usize,
    pub client: usize,
    pub key: String,
    /// Nanoseconds since the start of the history.
    pub invoke: u64,
    /// `None`: indeterminate (no answer).
    pub complete: Option<u64>,
    pub input: Input,
    /// `None` exactly when `complete` is `None`.
    pub output: Option<Output>,
}

impl Op {
    /// A completed op.
    pub fn done(
        id: usize,
        client: usize,
        key: &str,
        span: (u64, u64),
        input: Input,
        output: Output,
    ) -> Op {
        Op {
            id,
            client,
            key: key.to_string(),
            invoke: span.0,
            complete: Some(span.1),
            input,
            output: Some(output),
        }
    }

    /// An op whose outcome is unknown.
    pub fn indeterminate(id: usize, client: usize, key: &str, invoke: u64, input: Input) -> Op {
        Op {
            id,
            client,
            key: key.to_string(),
            invoke,
            complete: None,
            input,
            output: None,
        }
    }

    pub fn is_indeterminate(&self) -> bool {
        self.complete.is_none()
    }
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} client {} {:?} ", self.id, self.client, self.key)?;
        match &self.input {
            Input::Read => write!(f, "read")?,
            Input::Write(v) => write!(f, "write({v:?})")?,
            Input::Cas { expected, value } => write!(f, "cas(expected {expected}, {value:?})")?,
        }
        match &self.output {
            None => write!(f, " -> ?")?,
            Some(Output::Read(None)) => write!(f, " -> absent")?,
            Some(Output::Read(Some((v, s)))) => write!(f, " -> (version {v}, {s:?})")?,
            Some(Output::Write(v)) => write!(f, " -> version {v}")?,
            Some(Output::Cas(Ok(v))) => write!(f, " -> version {v}")?,
            Some(Output::Cas(Err(_))) => write!(f, " -> cas mismatch")?,
        }
        match self.complete {
            Some(c) => write!(f, " [{} .. {}]", secs(self.invoke), secs(c)),
            None => write!(f, " [{} .. never answered]", secs(self.invoke)),
        }
    }
}

/// Records a history from concurrent clients: `invoke` before sending,
/// then `complete` with the answer, `discard` when the request was
/// certainly not sent, or nothing at all (the op stays indeterminate).
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    ops: Arc<Mutex<Vec<Option<Op>>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// `t` on this history's clock (nanoseconds since it started).
    pub fn at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Record the invocation; returns the op id.
    pub fn invoke(&self, client: usize, key: &str, input: Input) -> usize {
        let mut ops = self.ops.lock();
        let id = ops.len();
        let invoke = self.now();
        ops.push(Some(Op::indeterminate(id, client, key, invoke, input)));
        id
    }

    /// Record the answer of op `id`.
    pub fn complete(&self, id: usize, output: Output) {
        let t = self.now();
        if let Some(Some(op)) = self.ops.lock().get_mut(id) {
            op.complete = Some(t.max(op.invoke));
            op.output = Some(output);
        }
    }

    /// Forget op `id`: the request never reached a server.
    pub fn discard(&self, id: usize) {
        if let Some(slot) = self.ops.lock().get_mut(id) {
            *slot = None;
        }
    }

    /// The recorded ops (discarded ones left out).
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().iter().flatten().cloned().collect()
    }
}

/// Per-key figures of a successful check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySummary {
    pub key: String,
    pub ops: usize,
    pub reads: usize,
    pub writes: usize,
    pub cas_ok: usize,
    pub cas_mismatch: usize,
    /// Writes/CAS without an answer (indeterminate reads are not counted:
    /// they constrain nothing and are dropped).
    pub indeterminate: usize,
    /// Configurations the search explored.
    pub states: usize,
}

/// What a successful check saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub keys: Vec<KeySummary>,
}

impl Summary {
    pub fn total_ops(&self) -> usize {
        self.keys.iter().map(|k| k.ops).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{:?}: {} ops ({} reads, {} writes, {} cas ok, {} cas mismatch, {} indeterminate), {} states explored",
                k.key, k.ops, k.reads, k.writes, k.cas_ok, k.cas_mismatch, k.indeterminate, k.states
            )?;
        }
        Ok(())
    }
}

/// Why a history was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// No linearization exists; `detail` names the point where every
    /// ordering got stuck.
    NotLinearizable { key: String, detail: String },
    /// The search was abandoned after exploring `states` configurations.
    TooLarge {
        key: String,
        ops: usize,
        states: usize,
    },
    /// An op that makes no sense (output of the wrong kind, times reversed).
    Malformed { op: usize, detail: String },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotLinearizable { key, detail } => {
                write!(f, "key {key:?} is not linearizable: {detail}")
            }
            CheckError::TooLarge { key, ops, states } => write!(
                f,
                "key {key:?}: history too large to check ({ops} ops, gave up after {states} states)"
            ),
            CheckError::Malformed { op, detail } => write!(f, "op #{op} is malformed: {detail}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// The checker, with its search budget.
#[derive(Clone, Copy, Debug)]
pub struct Checker {
    /// Explored (linearized set, state) configurations allowed per key.
    pub max_states: usize,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            max_states: 2_000_000,
        }
    }
}

/// Check `ops` with the default budget.
pub fn check(ops: &[Op]) -> Result<Summary, CheckError> {
    Checker::default().check(ops)
}

/// Value id of "absent".
const NONE: u32 = u32::MAX;
/// End of the event list.
const NIL: usize = usize::MAX;
/// The list's head sentinel.
const HEAD: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct State {
    version: u64,
    value: u32,
}

#[derive(Clone, Copy, Debug)]
enum LIn {
    Read,
    Write(u32),
    Cas(u64, u32),
}

#[derive(Clone, Copy, Debug)]
enum LOut {
    Read(u64, u32),
    Write(u64),
    CasOk(u64),
    CasErr,
    Unknown,
}

/// The model: the state after applying `input` with answer `output` to `s`,
/// or `None` if that answer is impossible in `s`.
fn step(s: State, input: LIn, output: LOut) -> Option<State> {
    match (input, output) {
        (LIn::Read, LOut::Read(v, x)) => (s.version == v && s.value == x).then_some(s),
        (LIn::Read, LOut::Unknown) => Some(s),
        (LIn::Write(x), LOut::Write(v)) => (v == s.version + 1).then_some(State {
            version: v,
            value: x,
        }),
        (LIn::Write(x), LOut::Unknown) => Some(State {
            version: s.version + 1,
            value: x,
        }),
        (LIn::Cas(e, x), LOut::CasOk(v)) => (s.version == e && v == e + 1).then_some(State {
            version: v,
            value: x,
        }),
        (LIn::Cas(e, _), LOut::CasErr) => (s.version != e).then_some(s),
        (LIn::Cas(e, x), LOut::Unknown) => Some(if s.version == e {
            State {
                version: e + 1,
                value: x,
            }
        } else {
            s
        }),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn is_subset(&self, of: &Bits) -> bool {
        self.0.iter().zip(&of.0).all(|(a, b)| a & !b == 0)
    }
}

/// The deepest point the search reached before it had to backtrack.
struct Stuck {
    /// Determinate ops ordered.
    depth: usize,
    /// Indeterminate ops ordered too.
    extra: usize,
    op: usize,
    state: State,
    last: Vec<usize>,
    pending: Vec<usize>,
}

impl Checker {
    /// Check every key; the first failing key (in key order) is reported.
    pub fn check(&self, ops: &[Op]) -> Result<Summary, CheckError> {
        let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
        for op in ops {
            validate(op)?;
            // An unanswered read constrains nothing.
            if op.is_indeterminate() && op.input == Input::Read {
                continue;
            }
            by_key.entry(op.key.as_str()).or_default().push(op);
        }
        let mut summary = Summary::default();
        for (key, ops) in by_key {
            summary.keys.push(self.check_key(key, &ops)?);
        }
        Ok(summary)
    }

    fn check_key(&self, key: &str, ops: &[&Op]) -> Result<KeySummary, CheckError> {
        let n = ops.len();
        let mut sum = KeySummary {
            key: key.to_string(),
            ops: n,
            ..KeySummary::default()
        };
        // Intern the values written; a read of anything else is impossible.
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        for op in ops {
            if let Input::Write(v) | Input::Cas { value: v, .. } = &op.input {
                ids.entry(v.as_str()).or_insert_with(|| {
                    names.push(v.as_str());
                    (names.len() - 1) as u32
                });
            }
        }
        let mut inputs = Vec::with_capacity(n);
        let mut outputs = Vec::with_capacity(n);
        for op in ops {
            let input = match &op.input {
                Input::Read => LIn::Read,
                Input::Write(v) => LIn::Write(ids[v.as_str()]),
                Input::Cas { expected, value } => LIn::Cas(*expected, ids[value.as_str()]),
            };
            let output = match &op.output {
                None => {
                    sum.indeterminate += 1;
                    LOut::Unknown
                }
                Some(Output::Read(None)) => {
                    sum.reads += 1;
                    LOut::Read(0, NONE)
                }
                Some(Output::Read(Some((v, s)))) => {
                    sum.reads += 1;
                    let Some(&x) = ids.get(s.as_str()) else {
                        return Err(CheckError::NotLinearizable {
                            key: key.to_string(),
                            detail: format!("op {op} read a value that was never written"),
                        });
                    };
                    LOut::Read(*v, x)
                }
                Some(Output::Write(v)) => {
                    sum.writes += 1;
                    LOut::Write(*v)
                }
                Some(Output::Cas(Ok(v))) => {
                    sum.cas_ok += 1;
                    LOut::CasOk(*v)
                }
                Some(Output::Cas(Err(_))) => {
                    sum.cas_mismatch += 1;
                    LOut::CasErr
                }
            };
            inputs.push(input);
            outputs.push(output);
        }

        // Events: (time, 0 = call / 1 = return, op). At equal times calls
        // come first, so touching ops count as concurrent (the lenient side).
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, 0, i));
            events.push((op.complete.unwrap_or(u64::MAX), 1, i));
        }
        events.sort_unstable();
        // Doubly linked list over nodes 1..=2n; node 0 is the head.
        let len = events.len() + 1;
        let mut next = vec![NIL; len];
        let mut prev = vec![NIL; len];
        let mut node_op = vec![0usize; len];
        let mut node_is_call = vec![false; len];
        let mut call_node = vec![0usize; n];
        let mut ret_node = vec![0usize; n];
        for (k, &(_, kind, i)) in events.iter().enumerate() {
            let node = k + 1;
            prev[node] = k;
            next[k] = node;
            node_op[node] = i;
            node_is_call[node] = kind == 0;
            if kind == 0 {
                call_node[i] = node;
            } else {
                ret_node[i] = node;
            }
        }

        // Answered ops must all be ordered; unanswered ones may be. Each op
        // has a slot in the bitset of its kind.
        let determinate = ops.iter().filter(|o| !o.is_indeterminate()).count();
        let mut slot = vec![0usize; n];
        let (mut nd, mut ni) = (0, 0);
        for (i, op) in ops.iter().enumerate() {
            if op.is_indeterminate() {
                slot[i] = ni;
                ni += 1;
            } else {
                slot[i] = nd;
                nd += 1;
            }
        }
        let unanswered = |i: usize| ops[i].is_indeterminate();

        let mut remaining = determinate;
        let mut state = State {
            version: 0,
            value: NONE,
        };
        let mut det = Bits::new(nd);
        let mut ind = Bits::new(ni);
        // Configurations seen: (answered ops ordered, state) -> the sets of
        // unanswered ops ordered with them. A configuration is skipped when
        // one with a subset of those was seen: that one had every option
        // this one has (unanswered ops are optional), and it either failed
        // or is an ancestor still exploring them.
        let mut seen: HashMap<(Bits, State), Vec<Bits>> = HashMap::new();
        let mut explored = 0usize;
        // (call node, state before it, pass) of every op ordered so far.
        let mut stack: Vec<(usize, State, u8)> = Vec::new();
        let mut stuck: Option<Stuck> = None;
        // Candidates are the calls before the first remaining return: pass 0
        // tries the answered ones, pass 1 the unanswered ones.
        let mut entry = next[HEAD];
        let mut pass = 0u8;

        macro_rules! unlink {
            ($x:expr) => {{
                let x = $x;
                next[prev[x]] = next[x];
                if next[x] != NIL {
                    prev[next[x]] = prev[x];
                }
            }};
        }
        macro_rules! relink {
            ($x:expr) => {{
                let x = $x;
                next[prev[x]] = x;
                if next[x] != NIL {
                    prev[next[x]] = x;
                }
            }};
        }

        loop {
            if remaining == 0 {
                sum.states = explored;
                return Ok(sum);
            }
            if entry != NIL && node_is_call[entry] {
                let i = node_op[entry];
                if unanswered(i) == (pass == 1) {
                    if let Some(s2) = step(state, inputs[i], outputs[i]) {
                        let (mut d2, mut i2) = (det.clone(), ind.clone());
                        if unanswered(i) {
                            i2.set(slot[i]);
                        } else {
                            d2.set(slot[i]);
                        }
                        let sets = seen.entry((d2.clone(), s2)).or_default();
                        if !sets.iter().any(|s| s.is_subset(&i2)) {
                            sets.push(i2.clone());
                            explored += 1;
                            if explored > self.max_states {
                                return Err(CheckError::TooLarge {
                                    key: key.to_string(),
                                    ops: n,
                                    states: explored,
                                });
                            }
                            stack.push((entry, state, pass));
                            state = s2;
                            det = d2;
                            ind = i2;
                            if !unanswered(i) {
                                remaining -= 1;
                            }
                            unlink!(call_node[i]);
                            unlink!(ret_node[i]);
                            entry = next[HEAD];
                            pass = 0;
                            continue;
                        }
                    }
                }
                entry = next[entry];
                continue;
            }
            // The end of the candidates: the first remaining return (an
            // answered op's, since unanswered ones return "never"), or the
            // end of the list.
            if pass == 0 {
                pass = 1;
                entry = next[HEAD];
                continue;
            }
            if entry != NIL && !unanswered(node_op[entry]) {
                // An answered op returned and no order places it before.
                // Rank stuck points by answered ops ordered, then by fewest
                // unanswered ones (the plainer explanation).
                let depth = determinate - remaining;
                let extra = stack.len() - depth;
                if stuck
                    .as_ref()
                    .is_none_or(|s| depth > s.depth || (depth == s.depth && extra < s.extra))
                {
                    let mut pending = Vec::new();
                    let mut e = next[HEAD];
                    while e != entry && e != NIL {
                        if node_is_call[e] {
                            pending.push(ops[node_op[e]].id);
                        }
                        e = next[e];
                    }
                    let last = stack
                        .iter()
                        .rev()
                        .take(3)
                        .map(|&(c, _, _)| ops[node_op[c]].id)
                        .collect();
                    stuck = Some(Stuck {
                        depth,
                        extra,
                        op: node_op[entry],
                        state,
                        last,
                        pending,
                    });
                }
            }
            // Backtrack: undo the newest choice and try the next candidate.
            let Some((call, s, p)) = stack.pop() else {
                let st = stuck.expect("a failed search records where it got stuck");
                return Err(CheckError::NotLinearizable {
                    key: key.to_string(),
                    detail: describe(ops, &names, &st),
                });
            };
            let i = node_op[call];
            if unanswered(i) {
                ind.clear(slot[i]);
            } else {
                det.clear(slot[i]);
                remaining += 1;
            }
            state = s;
            relink!(ret_node[i]);
            relink!(call_node[i]);
            entry = next[call];
            pass = p;
        }
    }
}

fn describe(ops: &[&Op], names: &[&str], st: &Stuck) -> String {
    let value = if st.state.value == NONE {
        "absent".to_string()
    } else {
        format!("{:?}", names[st.state.value as usize])
    };
    let by_id: HashMap<usize, &Op> = ops.iter().map(|o| (o.id, *o)).collect();
    let mut s = format!(
        "at best {} of the {} answered ops can be ordered (with {} unanswered ones); then, in state (version {}, value {}), op {} must take effect before it returns, but neither it nor any other pending op can",
        st.depth,
        ops.iter().filter(|o| !o.is_indeterminate()).count(),
        st.extra,
        st.state.version,
        value,
        ops[st.op],
    );
    if !st.last.is_empty() {
        s.push_str("\n  the last ops ordered before it (newest first):");
        for id in &st.last {
            s.push_str(&format!("\n    {}", by_id[id]));
        }
    }
    let others: Vec<&usize> = st
        .pending
        .iter()
        .filter(|&&id| id != ops[st.op].id)
        .collect();
    if !others.is_empty() {
        s.push_str("\n  other ops pending at that point:");
        for id in others.iter().take(8) {
            s.push_str(&format!("\n    {}", by_id[id]));
        }
        if others.len() > 8 {
            s.push_str(&format!("\n    ... and {} more", others.len() - 8));
        }
    }
    s
}

fn validate(op: &Op) -> Result<(), CheckError> {
    let bad = |detail: &str| {
        Err(CheckError::Malformed {
            op: op.id,
            detail: detail.to_string(),
        })
    };
    match (op.complete, &op.output) {
        (None, None) => {}
        (Some(c), Some(out)) => {
            if c < op.invoke {
                return bad("completed before it was invoked");
            }
            let kinds_match = matches!(
                (&op.input, out),
                (Input::Read, Output::Read(_))
                    | (Input::Write(_), Output::Write(_))
                    | (Input::Cas { .. }, Output::Cas(_))
            );
            if !kinds_match {
                return bad("output does not match the kind of input");
            }
        }
        _ => return bad("an op has an output exactly when it has a completion time"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn w(v: &str) -> Input {
        Input::Write(v.to_string())
    }
    fn cas(expected: u64, v: &str) -> Input {
        Input::Cas {
            expected,
            value: v.to_string(),
        }
    }
    fn read(version: u64, v: &str) -> Output {
        Output::Read(Some((version, v.to_string())))
    }

    /// (client, key, invoke, complete, input, output)
    type Row<'a> = (usize, &'a str, u64, Option<u64>, Input, Option<Output>);

    /// Ops from rows, numbered in order.
    fn hist(rows: Vec<Row<'_>>) -> Vec<Op> {
        rows.into_iter()
            .enumerate()
            .map(|(id, (client, key, a, b, input, output))| Op {
                id,
                client,
                key: key.to_string(),
                invoke: a,
                complete: b,
                input,
                output,
            })
            .collect()
    }

    #[test]
    fn valid_concurrent_history_passes() {
        let h = hist(vec![
            (2, "x", 0, Some(3), Input::Read, Some(Output::Read(None))),
            (0, "x", 0, Some(10), w("a"), Some(Output::Write(1))),
            // Concurrent with the write: may see either.
            (1, "x", 5, Some(15), Input::Read, Some(read(1, "a"))),
            (2, "x", 4, Some(6), Input::Read, Some(Output::Read(None))),
            (2, "x", 12, Some(20), cas(1, "b"), Some(Output::Cas(Ok(2)))),
            // Concurrent with the CAS, before it takes effect.
            (3, "x", 13, Some(14), Input::Read, Some(read(1, "a"))),
            // Concurrent with the CAS, after it takes effect.
            (1, "x", 16, Some(30), Input::Read, Some(read(2, "b"))),
            (
                0,
                "x",
                21,
                Some(25),
                cas(1, "c"),
                Some(Output::Cas(Err(CasMismatch))),
            ),
            (3, "x", 22, Some(24), w("d"), Some(Output::Write(3))),
            (0, "x", 26, Some(27), cas(3, "e"), Some(Output::Cas(Ok(4)))),
            // A second, independent key with its own versions.
            (4, "y", 1, Some(2), cas(0, "p"), Some(Output::Cas(Ok(1)))),
            (
                4,
                "y",
                3,
                Some(4),
                cas(0, "q"),
                Some(Output::Cas(Err(CasMismatch))),
            ),
            (5, "y", 3, Some(9), Input::Read, Some(read(1, "p"))),
        ]);
        let s = check(&h).expect("linearizable");
        assert_eq!(s.keys.len(), 2);
        assert_eq!(s.total_ops(), h.len());
        assert_eq!(s.keys[0].cas_ok, 2);
        assert_eq!(s.keys[0].cas_mismatch, 1);
    }

    #[test]
    fn lost_update_is_rejected() {
        // Both CAS expected version 1 and both claim to have made version 2.
        let h = hist(vec![
            (0, "k", 0, Some(1), w("a"), Some(Output::Write(1))),
            (1, "k", 2, Some(10), cas(1, "x"), Some(Output::Cas(Ok(2)))),
            (2, "k", 3, Some(11), cas(1, "y"), Some(Output::Cas(Ok(2)))),
        ]);
        let e = check(&h).unwrap_err();
        assert!(
            matches!(&e, CheckError::NotLinearizable { key, .. } if key == "k"),
            "{e}"
        );
        // Same with distinct versions: the second CAS expected 1, found 2.
        let h = hist(vec![
            (0, "k", 0, Some(1), w("a"), Some(Output::Write(1))),
            (1, "k", 2, Some(10), cas(1, "x"), Some(Output::Cas(Ok(2)))),
            (2, "k", 3, Some(11), cas(1, "y"), Some(Output::Cas(Ok(3)))),
        ]);
        let e = check(&h).unwrap_err();
        assert!(matches!(e, CheckError::NotLinearizable { .. }), "{e}");
    }

    #[test]
    fn stale_read_is_rejected() {
        let h = hist(vec![
            (0, "k", 0, Some(1), w("a"), Some(Output::Write(1))),
            (0, "k", 2, Some(3), w("b"), Some(Output::Write(2))),
            // Starts after "b" was acknowledged, still returns "a".
            (1, "k", 4, Some(5), Input::Read, Some(read(1, "a"))),
        ]);
        let e = check(&h).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\"k\""), "{text}");
        assert!(text.contains("#2"), "names the stale read: {text}");
        assert!(text.contains("version 2"), "names the state: {text}");
    }

    #[test]
    fn indeterminate_write_later_observed_passes() {
        let h = hist(vec![
            (0, "k", 0, Some(1), w("a"), Some(Output::Write(1))),
            // No answer, but it did take effect...
            (1, "k", 2, None, w("b"), None),
            // ...and another one that never did.
            (2, "k", 3, None, w("never"), None),
            (3, "k", 10, Some(11), Input::Read, Some(read(2, "b"))),
            (3, "k", 12, Some(13), cas(2, "c"), Some(Output::Cas(Ok(3)))),
            (0, "k", 14, Some(15), Input::Read, Some(read(3, "c"))),
            // An unanswered read is ignored.
            (1, "k", 16, None, Input::Read, None),
        ]);
        let s = check(&h).expect("linearizable");
        assert_eq!(s.keys[0].indeterminate, 2);
    }

    #[test]
    fn indeterminate_write_cannot_act_before_its_invocation() {
        let h = hist(vec![
            (0, "k", 0, Some(1), Input::Read, Some(read(1, "b"))),
            (1, "k", 5, None, w("b"), None),
        ]);
        assert!(check(&h).is_err());
    }

    #[test]
    fn read_of_value_never_written_is_rejected() {
        let h = hist(vec![
            (0, "k", 0, Some(1), w("a"), Some(Output::Write(1))),
            (1, "k", 2, Some(3), Input::Read, Some(read(1, "ghost"))),
        ]);
        let e = check(&h).unwrap_err();
        assert!(e.to_string().contains("never written"), "{e}");
        // Right value, impossible version.
        let h = hist(vec![
            (0, "k", 0, Some(1), w("a"), Some(Output::Write(1))),
            (1, "k", 2, Some(3), Input::Read, Some(read(7, "a"))),
        ]);
        assert!(check(&h).is_err());
    }

    #[test]
    fn malformed_ops_are_reported() {
        let h = hist(vec![(
            0,
            "k",
            5,
            Some(1),
            Input::Read,
            Some(Output::Read(None)),
        )]);
        assert!(matches!(
            check(&h),
            Err(CheckError::Malformed { op: 0, .. })
        ));
        let h = hist(vec![(
            0,
            "k",
            0,
            Some(1),
            Input::Read,
            Some(Output::Write(1)),
        )]);
        assert!(matches!(
            check(&h),
            Err(CheckError::Malformed { op: 0, .. })
        ));
    }

    #[test]
    fn search_budget_is_enforced() {
        // 20 unanswered writes, then a read of a version nobody can reach:
        // the search must try (nearly) every subset; the budget stops it.
        let mut rows = Vec::new();
        for i in 0..20 {
            rows.push((i, "k", i as u64, None, w(&format!("v{i}")), None));
        }
        rows.push((99, "k", 100, Some(101), Input::Read, Some(read(25, "v3"))));
        let h = hist(rows);
        let e = Checker { max_states: 1000 }.check(&h).unwrap_err();
        assert!(matches!(e, CheckError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn recorder_keeps_answers_and_drops_discarded() {
        let r = Recorder::new();
        let a = r.invoke(0, "k", w("a"));
        let b = r.invoke(1, "k", Input::Read);
        let c = r.invoke(2, "k", w("c"));
        r.complete(a, Output::Write(1));
        r.discard(b);
        let ops = r.ops();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].output, Some(Output::Write(1)));
        assert!(ops[1].is_indeterminate());
        assert_eq!(ops[1].id, c);
        check(&ops).expect("linearizable");
    }

    /// A history produced by real atomic registers: each op takes effect
    /// at a random instant inside its interval; one op in `lost_one_in` gets
    /// no answer (and took effect or not, at random).
    fn generate(
        rng: &mut StdRng,
        clients: usize,
        per_client: usize,
        keys: &[&str],
        lost_one_in: u32,
    ) -> Vec<Op> {
        // (take-effect time, op) for every op.
        let mut planned: Vec<(u64, Op)> = Vec::new();
        let mut id = 0;
        for c in 0..clients {
            let mut t = rng.gen_range(0..50u64);
            for _ in 0..per_client {
                let key = keys[rng.gen_range(0..keys.len())];
                let dur = rng.gen_range(1..200u64);
                let at = t + rng.gen_range(0..dur);
                let value = format!("c{c}n{id}");
                let input = match rng.gen_range(0..3) {
                    0 => Input::Read,
                    1 => Input::Write(value),
                    // The expected version is filled in below.
                    _ => cas(0, &value),
                };
                let mut op = Op::done(id, c, key, (t, t + dur), input, Output::Write(0));
                if rng.gen_ratio(1, lost_one_in) {
                    op.complete = None;
                }
                planned.push((at, op));
                id += 1;
                t += dur + rng.gen_range(0..30u64);
            }
        }
        planned.sort_by_key(|(at, op)| (*at, op.id));
        let mut regs: HashMap<String, (u64, Option<String>)> = HashMap::new();
        let mut ops = Vec::new();
        for (_, mut op) in planned {
            let r = regs.entry(op.key.clone()).or_insert((0, None));
            let applies = op.complete.is_some() || rng.gen_bool(0.5);
            let out = match &mut op.input {
                Input::Read => Output::Read(r.1.clone().map(|v| (r.0, v))),
                Input::Write(v) => {
                    if applies {
                        *r = (r.0 + 1, Some(v.clone()));
                    }
                    Output::Write(r.0)
                }
                Input::Cas { expected, value } => {
                    // Mostly the right version, as a client that just read.
                    *expected = if rng.gen_bool(0.6) {
                        r.0
                    } else {
                        r.0.saturating_sub(1)
                    };
                    if r.0 == *expected {
                        if applies {
                            *r = (r.0 + 1, Some(value.clone()));
                        }
                        Output::Cas(Ok(r.0))
                    } else {
                        Output::Cas(Err(CasMismatch))
                    }
                }
            };
            op.output = op.complete.map(|_| out);
            ops.push(op);
        }
        ops.sort_by_key(|o| o.id);
        ops
    }

    /// Histories of real registers always pass, and quickly.
    #[test]
    fn random_linearizable_histories_pass() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..20 {
            let ops = generate(&mut rng, 6, 100, &["a", "b"], 30);
            let started = Instant::now();
            let s = check(&ops).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(s.keys.len(), 2);
            assert!(s.keys.iter().all(|k| k.cas_ok > 0 && k.cas_mismatch > 0));
            assert!(
                started.elapsed().as_secs() < 10,
                "round {round} took {:?}",
                started.elapsed()
            );
        }
    }

    /// The size of the chaos scenario (6 clients, a few hundred ops per key,
    /// some unanswered) checks within the default budget.
    #[test]
    fn chaos_sized_history_is_checked_in_budget() {
        let mut rng = StdRng::seed_from_u64(11);
        let ops = generate(&mut rng, 6, 300, &["a", "b", "c"], 15);
        let s = check(&ops).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.total_ops(),
            ops.iter()
                .filter(|o| !(o.is_indeterminate() && o.input == Input::Read))
                .count()
        );
    }

    /// A read appended after everything else, returning a state older than
    /// one already acknowledged, is always caught.
    #[test]
    fn injected_stale_reads_are_caught() {
        let mut rng = StdRng::seed_from_u64(3);
        for round in 0..20 {
            let mut ops = generate(&mut rng, 4, 60, &["a"], 20);
            // The newest acknowledged version, and some older state.
            let mut states: Vec<(u64, String)> = ops
                .iter()
                .filter_map(|o| match (&o.input, &o.output) {
                    (Input::Read, Some(Output::Read(Some(s)))) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            states.sort();
            let newest = ops
                .iter()
                .filter_map(|o| match &o.output {
                    Some(Output::Write(v)) | Some(Output::Cas(Ok(v))) => Some(*v),
                    Some(Output::Read(Some((v, _)))) => Some(*v),
                    _ => None,
                })
                .max()
                .unwrap();
            let Some(stale) = states.iter().find(|(v, _)| *v < newest).cloned() else {
                continue;
            };
            let end = ops.iter().filter_map(|o| o.complete).max().unwrap() + 1;
            let id = ops.len();
            ops.push(Op::done(
                id,
                99,
                "a",
                (end, end + 1),
                Input::Read,
                Output::Read(Some(stale)),
            ));
            match check(&ops) {
                Err(CheckError::NotLinearizable { detail, .. }) => {
                    assert!(
                        detail.contains(&format!("#{id}")),
                        "round {round}: {detail}"
                    )
                }
                other => panic!("round {round}: stale read accepted: {other:?}"),
            }
        }
    }

    /// Reference semantics by brute force: try every order of every subset
    /// of the unanswered ops (tiny histories only).
    fn brute_force(ops: &[Op]) -> bool {
        fn apply(state: &(u64, Option<String>), op: &Op) -> Option<(u64, Option<String>)> {
            let next = |v: &str| (state.0 + 1, Some(v.to_string()));
            match (&op.input, &op.output) {
                (Input::Read, Some(Output::Read(r))) => {
                    let now = state.1.clone().map(|v| (state.0, v));
                    (now == *r).then(|| state.clone())
                }
                (Input::Read, None) => Some(state.clone()),
                (Input::Write(v), Some(Output::Write(n))) => (*n == state.0 + 1).then(|| next(v)),
                (Input::Write(v), None) => Some(next(v)),
                (Input::Cas { expected, value }, out) => {
                    let matches = state.0 == *expected;
                    match out {
                        Some(Output::Cas(Ok(n))) => {
                            (matches && *n == state.0 + 1).then(|| next(value))
                        }
                        Some(Output::Cas(Err(_))) => (!matches).then(|| state.clone()),
                        None if matches => Some(next(value)),
                        None => Some(state.clone()),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        fn go(ops: &[Op], done: &mut Vec<bool>, state: (u64, Option<String>)) -> bool {
            let all = ops
                .iter()
                .zip(done.iter())
                .all(|(o, d)| *d || o.is_indeterminate());
            if all {
                return true;
            }
            for i in 0..ops.len() {
                if done[i] {
                    continue;
                }
                // No answered op left may have returned before i started.
                let blocked = ops.iter().enumerate().any(|(j, p)| {
                    !done[j] && j != i && p.complete.is_some_and(|c| c < ops[i].invoke)
                });
                if blocked {
                    continue;
                }
                if let Some(s2) = apply(&state, &ops[i]) {
                    done[i] = true;
                    if go(ops, done, s2) {
                        done[i] = false;
                        return true;
                    }
                    done[i] = false;
                }
            }
            false
        }
        let mut done = vec![false; ops.len()];
        go(ops, &mut done, (0, None))
    }

    /// The checker agrees with brute force on thousands of tiny random
    /// histories, valid or not.
    #[test]
    fn agrees_with_brute_force() {
        let mut rng = StdRng::seed_from_u64(42);
        let (mut ok, mut bad) = (0, 0);
        for case in 0..4000 {
            let n = rng.gen_range(1..=6);
            let mut ops = Vec::new();
            for id in 0..n {
                let a = rng.gen_range(0..20u64);
                let b = a + rng.gen_range(0..8u64);
                let value = format!("v{}", rng.gen_range(0..n));
                let version = rng.gen_range(0..4u64);
                let input = match rng.gen_range(0..3) {
                    0 => Input::Read,
                    1 => Input::Write(format!("v{id}")),
                    _ => cas(rng.gen_range(0..3), &format!("v{id}")),
                };
                let output = match &input {
                    Input::Read if rng.gen_bool(0.2) => Output::Read(None),
                    Input::Read => Output::Read(Some((version, value))),
                    Input::Write(_) => Output::Write(version),
                    Input::Cas { .. } if rng.gen_bool(0.3) => Output::Cas(Err(CasMismatch)),
                    Input::Cas { .. } => Output::Cas(Ok(version)),
                };
                let mut op = Op::done(id, id, "k", (a, b), input, output);
                if rng.gen_ratio(1, 4) {
                    op.complete = None;
                    op.output = None;
                }
                ops.push(op);
            }
            let expected = brute_force(&ops);
            let got = check(&ops);
            assert_eq!(
                got.is_ok(),
                expected,
                "case {case}: checker says {got:?}, brute force {expected}; history: {ops:#?}"
            );
            if expected {
                ok += 1;
            } else {
                bad += 1;
            }
        }
        assert!(ok > 300 && bad > 300, "{ok} valid, {bad} invalid");
    }
}
