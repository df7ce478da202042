//! A plugin's answer, lifted straight from guest memory into one arena.
//!
//! wasmtime's generic lifting of an `answer` allocates a `Vec` per list
//! and a `String` per string value, and looks the guest memory up again for
//! every element: measured, that was more than half of the cost of a call
//! (see docs/plugin-runtime.md). [`Lifted`] reads the canonical ABI layout
//! of exactly this one type, and appends each outcome to the worker's
//! [`Outcomes`] (strings and bytes into one buffer), so it costs a few bounds
//! checks and a memcpy per value and no copy afterwards.
//!
//! wasmtime's `Lift` trait builds a value from nothing, so the target
//! arena (and the number of records the answer is for) is lent to the
//! lift through a thread-local for the duration of one synchronous call
//! ([`lift_into`]).
//!
//! The type is checked against the generated bindings at link time, so a
//! change to the WIT that this decoder does not follow fails loudly when a
//! plugin is loaded, and the layout constants are asserted at compile time.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::ValRaw;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, wasmtime_environ,
};
use wasmtime::component::{ComponentType, Lift};
use wasmtime_environ::component::StringEncoding;

use super::bindings;

// Canonical ABI layout (32-bit) of the WIT types this module decodes.
const OUTCOME_SIZE: usize = 12;
const OUTCOME_ALIGN: usize = 4;
const OUTCOME_PAYLOAD: usize = 4;
const VALUE_SIZE: usize = 16;
const VALUE_ALIGN: usize = 8;
const VALUE_PAYLOAD: usize = 8;
const ANSWER_FLAT: usize = 4;
const _: () = {
    assert!(
        size_of::<<bindings::Answer as ComponentType>::Lower>()
            == size_of::<[ValRaw; ANSWER_FLAT]>()
    );
    assert!(<bindings::Outcome as ComponentType>::SIZE32 == OUTCOME_SIZE);
    assert!(<bindings::Outcome as ComponentType>::ALIGN32 as usize == OUTCOME_ALIGN);
    assert!(<bindings::Value as ComponentType>::SIZE32 == VALUE_SIZE);
    assert!(<bindings::Value as ComponentType>::ALIGN32 as usize == VALUE_ALIGN);
};

/// Most bytes one answer may make the host copy. Bounds what a hostile
/// plugin can make the host allocate by pointing many values at one large
/// string.
const MAX_ANSWER_BYTES: usize = 256 << 20;
/// Most bytes an arena takes from answers: spans are 32-bit, and the
/// gigabyte left is room for the reasons the host adds itself.
const MAX_ARENA_BYTES: usize = 3 << 30;
/// Most values (all rows together) one answer may hold.
const MAX_ANSWER_VALUES: usize = 16 << 20;

/// One value of a kept row, borrowed from [`Outcomes`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    String(&'a str),
    Bytes(&'a [u8]),
    Boolean(bool),
    Int32(i32),
    Int64(i64),
    Float64(f64),
    TimestampMs(i64),
}

/// One record's outcome, borrowed from [`Outcomes`].
#[derive(Debug, Clone, Copy)]
pub enum OutcomeRef<'a> {
    Keep(Row<'a>),
    Drop(&'a str),
}

/// A kept row: one value per declared column.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    cells: &'a [Cell],
    bytes: &'a [u8],
}

impl<'a> Row<'a> {
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<ValueRef<'a>> {
        self.cells.get(i).map(|c| c.resolve(self.bytes))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = ValueRef<'a>> + 'a {
        let bytes = self.bytes;
        self.cells.iter().map(move |c| c.resolve(bytes))
    }
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    /// Validated UTF-8.
    String(Span),
    Bytes(Span),
    Boolean(bool),
    Int32(i32),
    Int64(i64),
    Float64(f64),
    TimestampMs(i64),
}

impl Cell {
    fn resolve(self, bytes: &[u8]) -> ValueRef<'_> {
        match self {
            Cell::Null => ValueRef::Null,
            // SAFETY: string spans are validated as UTF-8 when they are
            // copied in, and the arena is append-only.
            Cell::String(s) => {
                ValueRef::String(unsafe { std::str::from_utf8_unchecked(&bytes[s.range()]) })
            }
            Cell::Bytes(s) => ValueRef::Bytes(&bytes[s.range()]),
            Cell::Boolean(b) => ValueRef::Boolean(b),
            Cell::Int32(v) => ValueRef::Int32(v),
            Cell::Int64(v) => ValueRef::Int64(v),
            Cell::Float64(v) => ValueRef::Float64(v),
            Cell::TimestampMs(v) => ValueRef::TimestampMs(v),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Keep {
        first: u32,
        len: u32,
    },
    /// Validated UTF-8.
    Drop(Span),
}

/// A position in [`Outcomes`], valid only for the arena it was taken from
/// and only until that arena is next truncated: spans are resolved without
/// a UTF-8 check, so a truncation to a foreign or outdated position could
/// leave a span over bytes written later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    arena: u64,
    entries: usize,
    cells: usize,
    bytes: usize,
}

/// Tags arenas: every arena, clone and truncation gets a fresh one.
fn next_arena() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The outcomes of a run of records, in record order.
#[derive(Debug)]
pub struct Outcomes {
    /// Which marks may be used here (see [`Mark`]).
    arena: u64,
    entries: Vec<Entry>,
    cells: Vec<Cell>,
    bytes: Vec<u8>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Self {
            arena: next_arena(),
            entries: Vec::new(),
            cells: Vec::new(),
            bytes: Vec::new(),
        }
    }
}

impl Clone for Outcomes {
    /// A clone grows apart from its original: marks of one must not be used
    /// on the other.
    fn clone(&self) -> Self {
        Self {
            arena: next_arena(),
            entries: self.entries.clone(),
            cells: self.cells.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

impl Outcomes {
    /// Room for `records` more outcomes.
    pub fn reserve(&mut self, records: usize) {
        self.entries.reserve(records);
    }

    /// Empties the arena for reuse, keeping its capacity; every mark
    /// taken before is outdated by it.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.cells.clear();
        self.bytes.clear();
        self.arena = next_arena();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<OutcomeRef<'_>> {
        self.entries.get(i).map(|e| self.resolve(*e))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = OutcomeRef<'_>> + '_ {
        self.entries.iter().map(|e| self.resolve(*e))
    }

    pub fn kept(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, Entry::Keep { .. }))
            .count()
    }

    fn resolve(&self, entry: Entry) -> OutcomeRef<'_> {
        match entry {
            Entry::Keep { first, len } => OutcomeRef::Keep(Row {
                cells: &self.cells[first as usize..(first + len) as usize],
                bytes: &self.bytes,
            }),
            // SAFETY: validated when copied in.
            Entry::Drop(s) => {
                OutcomeRef::Drop(unsafe { std::str::from_utf8_unchecked(&self.bytes[s.range()]) })
            }
        }
    }

    /// Appends a kept row; what the native comparison and tests build.
    pub fn push_keep<'v>(&mut self, values: impl IntoIterator<Item = ValueRef<'v>>) {
        let first = self.cells.len() as u32;
        for value in values {
            let cell = match value {
                ValueRef::Null => Cell::Null,
                ValueRef::String(s) => Cell::String(self.push_bytes(s.as_bytes())),
                ValueRef::Bytes(b) => Cell::Bytes(self.push_bytes(b)),
                ValueRef::Boolean(b) => Cell::Boolean(b),
                ValueRef::Int32(v) => Cell::Int32(v),
                ValueRef::Int64(v) => Cell::Int64(v),
                ValueRef::Float64(v) => Cell::Float64(v),
                ValueRef::TimestampMs(v) => Cell::TimestampMs(v),
            };
            self.cells.push(cell);
        }
        let len = self.cells.len() as u32 - first;
        self.entries.push(Entry::Keep { first, len });
    }

    /// Where the arena ends now, to roll back to or check from.
    pub fn mark(&self) -> Mark {
        Mark {
            arena: self.arena,
            entries: self.entries.len(),
            cells: self.cells.len(),
            bytes: self.bytes.len(),
        }
    }

    /// Panics unless `mark` was taken here since the last truncation: then,
    /// and only then, it is a prefix of what the arena holds.
    fn check_mark(&self, mark: Mark) {
        assert!(
            mark.arena == self.arena,
            "a mark of another arena, or one taken before a truncation"
        );
        debug_assert!(
            mark.entries <= self.entries.len()
                && mark.cells <= self.cells.len()
                && mark.bytes <= self.bytes.len()
        );
    }

    /// Forgets everything appended since `mark`. Every mark taken before
    /// is outdated by it.
    pub fn truncate(&mut self, mark: Mark) {
        self.check_mark(mark);
        self.entries.truncate(mark.entries);
        self.cells.truncate(mark.cells);
        self.bytes.truncate(mark.bytes);
        self.arena = next_arena();
    }

    /// Turns kept rows appended since `mark` that `check` rejects into drops
    /// with its reason.
    pub fn check_since(&mut self, mark: Mark, check: impl Fn(&Row<'_>) -> Result<(), String>) {
        self.check_mark(mark);
        for i in mark.entries..self.entries.len() {
            if let OutcomeRef::Keep(row) = self.resolve(self.entries[i])
                && let Err(reason) = check(&row)
            {
                let span = self.push_bytes(reason.as_bytes());
                self.entries[i] = Entry::Drop(span);
            }
        }
    }

    /// Puts a drop at each of `drops`' indices (ascending, positions in
    /// the result), the outcomes already here filling the others in order.
    /// Every mark taken before is outdated by it.
    pub fn interleave_drops(&mut self, drops: &[(usize, String)]) {
        if drops.is_empty() {
            return;
        }
        let ours = std::mem::take(&mut self.entries);
        let total = ours.len() + drops.len();
        let mut ours = ours.into_iter();
        let mut drops = drops.iter().peekable();
        let mut entries = Vec::with_capacity(total);
        for i in 0..total {
            let entry = match drops.next_if(|(at, _)| *at == i) {
                Some((_, reason)) => Entry::Drop(self.push_bytes(reason.as_bytes())),
                None => ours
                    .next()
                    .expect("drop indices are ascending positions in the result"),
            };
            entries.push(entry);
        }
        assert!(
            drops.next().is_none(),
            "drop indices are ascending positions in the result"
        );
        self.entries = entries;
        self.arena = next_arena();
    }

    pub fn push_drop(&mut self, reason: &str) {
        let span = self.push_bytes(reason.as_bytes());
        self.entries.push(Entry::Drop(span));
    }

    /// Panics past 4 GiB, which spans cannot address: answers stop well
    /// short of it ([`MAX_ARENA_BYTES`]), and what the host appends itself
    /// is a reason per record.
    fn push_bytes(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len();
        assert!(
            start + bytes.len() <= u32::MAX as usize,
            "outcome arena past 4 GiB"
        );
        self.bytes.extend_from_slice(bytes);
        Span {
            start: start as u32,
            len: bytes.len() as u32,
        }
    }
}

/// The arena an answer is lifted into, and how many records it answers.
struct Target {
    out: Outcomes,
    records: usize,
}

thread_local! {
    static TARGET: RefCell<Option<Target>> = const { RefCell::new(None) };
}

/// Runs `call` (one synchronous plugin call over `records` records) with
/// `target` as the arena that a [`Lifted`] result is decoded into.
pub fn lift_into<R>(target: &mut Outcomes, records: usize, call: impl FnOnce() -> R) -> R {
    let out = std::mem::take(target);
    TARGET.with(|slot| *slot.borrow_mut() = Some(Target { out, records }));
    let result = call();
    *target = TARGET
        .with(|slot| slot.borrow_mut().take())
        .expect("lift target is back")
        .out;
    result
}

/// The result of `process`: how many outcomes were appended to the arena
/// lent by [`lift_into`].
#[derive(Debug)]
pub struct Lifted {
    pub count: usize,
}

// SAFETY: `ABI` and `Lower` are those of `answer` (checked above), and
// `typecheck` delegates to the generated bindings for that very type.
unsafe impl ComponentType for Lifted {
    type Lower = [ValRaw; ANSWER_FLAT];

    const ABI: CanonicalAbiInfo = <bindings::Answer as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <bindings::Answer as ComponentType>::typecheck(ty, types)
    }
}

/// Where an answer's two lists are in guest memory: (pointer, length).
#[derive(Clone, Copy)]
struct Lists {
    outcomes: (u32, u32),
    values: (u32, u32),
}

// SAFETY: every read is bounds-checked against the guest memory slice.
unsafe impl Lift for Lifted {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let [a, b, c, d] = src.map(|v| v.get_u32());
        decode(
            cx,
            Lists {
                outcomes: (a, b),
                values: (c, d),
            },
        )
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let at = |i| u32_at(bytes, i);
        decode(
            cx,
            Lists {
                outcomes: (at(0), at(4)),
                values: (at(8), at(12)),
            },
        )
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The bytes of a list of `count` elements of `size` at `ptr`, checked.
fn slice(
    memory: &[u8],
    ptr: u32,
    count: u32,
    size: usize,
    align: usize,
) -> wasmtime::Result<&[u8]> {
    let start = ptr as usize;
    let len = (count as usize)
        .checked_mul(size)
        .ok_or_else(|| wasmtime::format_err!("list length {count} overflows"))?;
    if !start.is_multiple_of(align) {
        wasmtime::bail!("list pointer {ptr:#x} is not aligned to {align}");
    }
    memory
        .get(start..start.saturating_add(len))
        .filter(|_| start.checked_add(len).is_some())
        .ok_or_else(|| {
            wasmtime::format_err!(
                "list at {ptr:#x} of {count} elements runs past the end of memory ({} bytes)",
                memory.len()
            )
        })
}

struct Decoder<'m, 'o> {
    memory: &'m [u8],
    encoding: StringEncoding,
    out: &'o mut Outcomes,
    start: Mark,
}

fn decode(cx: &mut LiftContext<'_>, lists: Lists) -> wasmtime::Result<Lifted> {
    TARGET.with(|slot| {
        let mut slot = slot.borrow_mut();
        let target = slot
            .as_mut()
            .ok_or_else(|| wasmtime::format_err!("plugin answer lifted outside lift_into"))?;
        decode_into(cx, lists, target.records, &mut target.out)
    })
}

fn decode_into(
    cx: &mut LiftContext<'_>,
    lists: Lists,
    records: usize,
    out: &mut Outcomes,
) -> wasmtime::Result<Lifted> {
    let memory = cx.memory();
    let encoding = cx.options().string_encoding;
    let (ptr, len) = lists.outcomes;
    if len as usize != records {
        // Refused by the caller whatever it holds: not worth a copy.
        return Ok(Lifted {
            count: len as usize,
        });
    }
    let list = slice(memory, ptr, len, OUTCOME_SIZE, OUTCOME_ALIGN)?;
    let (ptr, count) = lists.values;
    let values = slice(memory, ptr, count, VALUE_SIZE, VALUE_ALIGN)?;
    if count as usize > MAX_ANSWER_VALUES {
        wasmtime::bail!("answer holds more than {MAX_ANSWER_VALUES} values");
    }
    // Before anything is copied: every case is one `outcome` has, and the
    // rows' lengths add up to the values there are.
    let mut rows: u64 = 0;
    for outcome in list.chunks_exact(OUTCOME_SIZE) {
        match outcome[0] {
            0 => rows += u64::from(u32_at(outcome, OUTCOME_PAYLOAD)),
            1 => {}
            other => wasmtime::bail!("outcome has invalid case {other}"),
        }
    }
    if rows != u64::from(count) {
        let plural = if rows == 1 { "value" } else { "values" };
        wasmtime::bail!("the kept rows need {rows} {plural}, and the answer has {count}");
    }
    let strings: usize = values
        .chunks_exact(VALUE_SIZE)
        .filter(|v| matches!(v[0], 1 | 2))
        .map(|v| u32_at(v, VALUE_PAYLOAD + 4) as usize)
        .sum();
    let start = out.mark();
    out.entries.reserve(len as usize);
    out.cells.reserve(count as usize);
    out.bytes.reserve(strings.min(MAX_ANSWER_BYTES));
    let mut d = Decoder {
        memory,
        encoding,
        out,
        start,
    };
    let mut rest = values;
    for outcome in list.chunks_exact(OUTCOME_SIZE) {
        let payload = &outcome[OUTCOME_PAYLOAD..];
        if outcome[0] == 0 {
            let (row, after) = rest.split_at(u32_at(payload, 0) as usize * VALUE_SIZE);
            rest = after;
            d.keep(row)?;
        } else {
            let span = d.string(u32_at(payload, 0), u32_at(payload, 4))?;
            d.out.entries.push(Entry::Drop(span));
        }
    }
    Ok(Lifted {
        count: len as usize,
    })
}

impl Decoder<'_, '_> {
    /// A kept row: the values of one row, in guest memory.
    fn keep(&mut self, values: &[u8]) -> wasmtime::Result<()> {
        let first = self.out.cells.len() as u32;
        for value in values.chunks_exact(VALUE_SIZE) {
            let p = &value[VALUE_PAYLOAD..];
            let cell = match value[0] {
                0 => Cell::Null,
                1 => Cell::String(self.string(u32_at(p, 0), u32_at(p, 4))?),
                2 => Cell::Bytes(self.bytes(u32_at(p, 0), u32_at(p, 4))?),
                3 => Cell::Boolean(p[0] != 0),
                4 => Cell::Int32(u32_at(p, 0) as i32),
                5 => Cell::Int64(u64_at(p, 0) as i64),
                6 => Cell::Float64(f64::from_bits(u64_at(p, 0))),
                7 => Cell::TimestampMs(u64_at(p, 0) as i64),
                other => wasmtime::bail!("value has invalid case {other}"),
            };
            self.out.cells.push(cell);
        }
        let len = self.out.cells.len() as u32 - first;
        self.out.entries.push(Entry::Keep { first, len });
        Ok(())
    }

    fn reserve(&self, len: usize) -> wasmtime::Result<()> {
        if self.out.bytes.len() - self.start.bytes + len > MAX_ANSWER_BYTES {
            wasmtime::bail!("answer holds more than {MAX_ANSWER_BYTES} bytes");
        }
        // Spans are 32-bit; a caller that keeps appending must start over.
        if self.out.bytes.len() + len > MAX_ARENA_BYTES {
            wasmtime::bail!("outcome arena full; process fewer records at a time");
        }
        Ok(())
    }

    fn bytes(&mut self, ptr: u32, len: u32) -> wasmtime::Result<Span> {
        let src = slice(self.memory, ptr, len, 1, 1)?;
        self.reserve(src.len())?;
        Ok(self.out.push_bytes(src))
    }

    fn string(&mut self, ptr: u32, len: u32) -> wasmtime::Result<Span> {
        match self.encoding {
            StringEncoding::Utf8 => {
                let src = slice(self.memory, ptr, len, 1, 1)?;
                std::str::from_utf8(src)
                    .map_err(|e| wasmtime::format_err!("string at {ptr:#x} is not UTF-8: {e}"))?;
                self.reserve(src.len())?;
                Ok(self.out.push_bytes(src))
            }
            StringEncoding::Utf16 => self.utf16(ptr, len),
            StringEncoding::CompactUtf16 => {
                const UTF16_TAG: u32 = 1 << 31;
                if len & UTF16_TAG != 0 {
                    self.utf16(ptr, len & !UTF16_TAG)
                } else {
                    let text = latin1(slice(self.memory, ptr, len, 1, 1)?);
                    self.reserve(text.len())?;
                    Ok(self.out.push_bytes(text.as_bytes()))
                }
            }
        }
    }

    fn utf16(&mut self, ptr: u32, units: u32) -> wasmtime::Result<Span> {
        let text = utf16(slice(self.memory, ptr, units, 2, 2)?)
            .map_err(|e| wasmtime::format_err!("string at {ptr:#x} is not UTF-16: {e}"))?;
        self.reserve(text.len())?;
        Ok(self.out.push_bytes(text.as_bytes()))
    }
}

/// Little-endian UTF-16 code units, as the canonical ABI stores them.
fn utf16(units: &[u8]) -> Result<String, std::char::DecodeUtf16Error> {
    char::decode_utf16(
        units
            .chunks_exact(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]])),
    )
    .collect()
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_roll_back_and_checks_turn_rows_into_drops() {
        let mut a = Outcomes::default();
        a.push_drop("first");
        let mark = a.mark();
        a.push_keep([ValueRef::String("hello"), ValueRef::Int64(7)]);
        a.push_keep([ValueRef::Bytes(b"x")]);
        assert_eq!(a.len(), 3);
        a.check_since(mark, |row| {
            if row.len() == 2 {
                Ok(())
            } else {
                Err(format!("{} values", row.len()))
            }
        });
        let all: Vec<String> = a
            .iter()
            .map(|o| match o {
                OutcomeRef::Keep(row) => format!("{row:?}"),
                OutcomeRef::Drop(reason) => reason.to_owned(),
            })
            .collect();
        assert_eq!(all, ["first", "[String(\"hello\"), Int64(7)]", "1 values"]);
        assert_eq!(a.kept(), 1);

        a.truncate(mark);
        assert_eq!(a.len(), 1);
        a.push_keep([ValueRef::Boolean(true)]);
        assert_eq!(format!("{:?}", a.get(1)), "Some(Keep([Boolean(true)]))");
    }

    #[test]
    #[should_panic(expected = "a mark of another arena")]
    fn a_mark_of_another_arena_is_refused() {
        // Without the check this truncation would leave the drop's span
        // over bytes pushed later, which need not be UTF-8.
        let mut other = Outcomes::default();
        other.push_drop("ab");
        let foreign = other.mark();
        let mut a = Outcomes::default();
        a.push_drop("héllo");
        a.truncate(foreign);
    }

    #[test]
    #[should_panic(expected = "taken before a truncation")]
    fn a_mark_outdated_by_a_truncation_is_refused() {
        let mut a = Outcomes::default();
        let start = a.mark();
        a.push_drop("first");
        a.push_drop("second");
        let later = a.mark();
        a.truncate(start);
        a.push_drop("a much longer reason");
        a.push_keep([ValueRef::Bytes(&[0xff; 64])]);
        a.truncate(later);
    }

    #[test]
    #[should_panic(expected = "a mark of another arena")]
    fn a_clone_has_marks_of_its_own() {
        let a = Outcomes::default();
        let mut b = a.clone();
        b.check_since(a.mark(), |_| Ok(()));
    }

    #[test]
    fn decodes_the_other_string_encodings() {
        let units: Vec<u8> = "héllo €𝄞"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(utf16(&units).unwrap(), "héllo €𝄞");
        assert!(utf16(&[0x00, 0xd8]).is_err(), "a lone surrogate");
        assert_eq!(latin1(&[b'c', 0xe9, b'!']), "cé!");
    }

    #[test]
    fn slices_are_bounds_and_alignment_checked() {
        let memory = [0u8; 64];
        assert!(slice(&memory, 0, 4, 16, 8).is_ok());
        assert!(slice(&memory, 8, 4, 16, 8).is_err(), "runs past the end");
        assert!(slice(&memory, 4, 1, 16, 8).is_err(), "misaligned");
        assert!(
            slice(&memory, u32::MAX, u32::MAX, 16, 1).is_err(),
            "overflow"
        );
        assert!(
            slice(&memory, 64, 0, 16, 8).is_ok(),
            "empty list at the end"
        );
    }
}
