//! Records as the host hands them to a plugin, and their lowering into
//! guest memory as the WIT `batch`.
//!
//! A batch crosses the boundary in four guest allocations whatever its
//! length: the topic, one buffer with every key, value and header, the
//! headers and the records, which point into the buffer by offset. Each
//! `realloc` is a call into the guest (about 60 ns); 0.2.0's list per
//! value cost three of them per record. [`RecordBatch`] writes all of it
//! after the allocations, with one lookup of guest memory, where
//! wasmtime's generic lowering looks memory up again for every field.

use std::mem::MaybeUninit;

use wasmtime::ValRaw;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext, bad_type_info,
};
use wasmtime::component::{ComponentType, Lower};

use super::bindings;

/// One Kafka record, borrowed from the fetch that holds its bytes. The
/// topic and partition are the batch's in WIT; here each record carries
/// them, and a run of records is cut into calls where they change.
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    /// None for a tombstone; with framed input, the body after the framing.
    pub value: Option<&'a [u8]>,
    pub headers: &'a [Header<'a>],
    /// The Schema Registry id of a framed value.
    pub schema_id: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
}

impl KafkaRecord<'_> {
    /// Bytes this record adds to a batch's `data`.
    pub(super) fn data_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum();
        self.key.map_or(0, <[u8]>::len) + self.value.map_or(0, <[u8]>::len) + headers
    }

    /// Whether the two may share a batch, which has one topic and partition.
    pub(super) fn same_partition(&self, other: &Self) -> bool {
        // Records of one fetch share their topic's allocation.
        self.partition == other.partition
            && (std::ptr::eq(self.topic, other.topic) || self.topic == other.topic)
    }
}

// Canonical ABI layout (32-bit) of `kafka-record` and `header`, and the
// flat form of `batch`: topic (2), partition, data (2), headers (2),
// records (2).
const RECORD_SIZE: usize = 64;
const RECORD_ALIGN: u32 = 8;
const HEADER_SIZE: usize = 20;
const HEADER_ALIGN: u32 = 4;
const BATCH_FLAT: usize = 9;
const _: () = {
    assert!(<bindings::KafkaRecord as ComponentType>::SIZE32 == RECORD_SIZE);
    assert!(<bindings::KafkaRecord as ComponentType>::ALIGN32 == RECORD_ALIGN);
    assert!(<bindings::Header as ComponentType>::SIZE32 == HEADER_SIZE);
    assert!(<bindings::Header as ComponentType>::ALIGN32 == HEADER_ALIGN);
    assert!(
        size_of::<<bindings::Batch as ComponentType>::Lower>() == size_of::<[ValRaw; BATCH_FLAT]>()
    );
};

/// The WIT `batch` of consecutive records of one topic and partition, as
/// the host passes it to `process`.
pub struct RecordBatch<'r, 'a>(pub &'r [KafkaRecord<'a>]);

// SAFETY: `ABI` and `Lower` are those of `batch` (checked above), and
// `typecheck` delegates to the generated bindings for that very type.
unsafe impl ComponentType for RecordBatch<'_, '_> {
    type Lower = [ValRaw; BATCH_FLAT];

    const ABI: CanonicalAbiInfo = <bindings::Batch as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <bindings::Batch as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: every write goes through `LowerContext`'s bounds-checked slice,
// into memory the guest's `realloc` just handed out.
unsafe impl Lower for RecordBatch<'_, '_> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        let mut topic = MaybeUninit::<[ValRaw; 2]>::uninit();
        self.topic()
            .linear_lower_to_flat(cx, topic_type(cx, ty), &mut topic)?;
        // SAFETY: `linear_lower_to_flat` returned Ok, so it wrote `topic`.
        let [topic_ptr, topic_len] = unsafe { topic.assume_init() };
        let placed = store(cx, self.0)?;
        // Pointers travel as 64-bit values, as wasmtime's own lowering does.
        let pointer = |v: u32| ValRaw::i64(i64::from(v));
        dst.write([
            topic_ptr,
            topic_len,
            ValRaw::i32(self.partition()),
            pointer(placed.data.0),
            pointer(placed.data.1),
            pointer(placed.headers.0),
            pointer(placed.headers.1),
            pointer(placed.records.0),
            pointer(placed.records.1),
        ]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        self.topic()
            .linear_lower_to_memory(cx, topic_type(cx, ty), offset)?;
        let placed = store(cx, self.0)?;
        let memory = cx.as_slice_mut();
        put(memory, offset + 8, &self.partition().to_le_bytes())?;
        for (i, (ptr, len)) in [placed.data, placed.headers, placed.records]
            .into_iter()
            .enumerate()
        {
            put(memory, offset + 12 + 8 * i, &ptr.to_le_bytes())?;
            put(memory, offset + 16 + 8 * i, &len.to_le_bytes())?;
        }
        Ok(())
    }
}

impl RecordBatch<'_, '_> {
    fn topic(&self) -> &str {
        self.0.first().map_or("", |r| r.topic)
    }

    fn partition(&self) -> i32 {
        self.0.first().map_or(0, |r| r.partition)
    }
}

/// The type of `batch.topic`, the first field.
fn topic_type<T>(cx: &LowerContext<'_, T>, ty: InterfaceType) -> InterfaceType {
    match ty {
        InterfaceType::Record(i) => cx.types[i].fields[0].ty,
        _ => bad_type_info(),
    }
}

/// A fresh guest allocation of `len` bytes, not yet checked against the
/// memory's bounds (see [`at`]). Empty buffers are allocated too, as the
/// canonical ABI says: componentize-py's guests free every list they are
/// given, and trap on a pointer their allocator never handed out.
fn alloc<T>(cx: &mut LowerContext<'_, T>, len: usize, align: u32) -> wasmtime::Result<u32> {
    if len > u32::MAX as usize {
        wasmtime::bail!("buffer of {len} bytes too large for a plugin");
    }
    let ptr = cx.realloc(0, 0, align, len)?;
    u32::try_from(ptr).map_err(|_| wasmtime::format_err!("plugin realloc returned {ptr:#x}"))
}

/// The `len` bytes at `ptr`, or an error if the guest's `realloc` handed
/// out memory it does not have. Memory only grows, so a buffer in bounds
/// once stays in bounds.
fn at(memory: &mut [u8], start: usize, len: usize) -> wasmtime::Result<&mut [u8]> {
    let end = start.saturating_add(len);
    memory.get_mut(start..end).ok_or_else(|| {
        wasmtime::format_err!("plugin realloc returned {start:#x} for {len} bytes, out of bounds")
    })
}

#[inline]
fn put(memory: &mut [u8], start: usize, bytes: &[u8]) -> wasmtime::Result<()> {
    at(memory, start, bytes.len())?.copy_from_slice(bytes);
    Ok(())
}

fn array<T>(
    cx: &mut LowerContext<'_, T>,
    count: usize,
    size: usize,
    align: u32,
) -> wasmtime::Result<u32> {
    let bytes = count
        .checked_mul(size)
        .ok_or_else(|| wasmtime::format_err!("list of {count} elements too large for a plugin"))?;
    alloc(cx, bytes, align)
}

fn len32(len: usize, what: &str) -> wasmtime::Result<u32> {
    u32::try_from(len).map_err(|_| wasmtime::format_err!("{what} of {len} too large for a plugin"))
}

/// Guest addresses and lengths of a batch's three lists.
struct Placed {
    data: (u32, u32),
    headers: (u32, u32),
    records: (u32, u32),
}

/// Appends to the batch's `data`, handing out spans.
struct Data {
    base: usize,
    next: u32,
}

impl Data {
    /// Copies `bytes` in and writes their span (`start`, `len`) at `span`.
    fn push(&mut self, memory: &mut [u8], bytes: &[u8], span: &mut [u8]) -> wasmtime::Result<()> {
        put(memory, self.base + self.next as usize, bytes)?;
        let len = bytes.len() as u32;
        span[0..4].copy_from_slice(&self.next.to_le_bytes());
        span[4..8].copy_from_slice(&len.to_le_bytes());
        self.next += len;
        Ok(())
    }
}

fn store<T>(cx: &mut LowerContext<'_, T>, records: &[KafkaRecord<'_>]) -> wasmtime::Result<Placed> {
    let data_len = len32(
        records.iter().map(KafkaRecord::data_len).sum(),
        "batch data",
    )?;
    let header_count = len32(
        records.iter().map(|r| r.headers.len()).sum(),
        "header count",
    )?;
    let record_count = len32(records.len(), "record count")?;
    // Allocation calls into the guest, which may grow (move) its memory, so
    // all of them come before the one lookup of memory below.
    let data = alloc(cx, data_len as usize, 1)?;
    let headers = array(cx, header_count as usize, HEADER_SIZE, HEADER_ALIGN)?;
    let base = array(cx, records.len(), RECORD_SIZE, RECORD_ALIGN)?;
    let memory = cx.as_slice_mut();
    at(memory, data as usize, data_len as usize)?;
    at(
        memory,
        headers as usize,
        header_count as usize * HEADER_SIZE,
    )?;
    at(memory, base as usize, records.len() * RECORD_SIZE)?;

    let mut bytes = Data {
        base: data as usize,
        next: 0,
    };
    let mut header_at = 0u32;
    for (i, record) in records.iter().enumerate() {
        let mut fixed = [0u8; RECORD_SIZE];
        fixed[0..8].copy_from_slice(&record.offset.to_le_bytes());
        if let Some(ts) = record.timestamp {
            fixed[8] = 1;
            fixed[16..24].copy_from_slice(&ts.to_le_bytes());
        }
        if let Some(key) = record.key {
            fixed[24] = 1;
            bytes.push(memory, key, &mut fixed[28..36])?;
        }
        if let Some(value) = record.value {
            fixed[36] = 1;
            bytes.push(memory, value, &mut fixed[40..48])?;
        }
        fixed[48..52].copy_from_slice(&header_at.to_le_bytes());
        fixed[52..56].copy_from_slice(&(record.headers.len() as u32).to_le_bytes());
        for header in record.headers {
            let mut h = [0u8; HEADER_SIZE];
            bytes.push(memory, header.key.as_bytes(), &mut h[0..8])?;
            if let Some(value) = header.value {
                h[8] = 1;
                bytes.push(memory, value, &mut h[12..20])?;
            }
            put(
                memory,
                headers as usize + header_at as usize * HEADER_SIZE,
                &h,
            )?;
            header_at += 1;
        }
        if let Some(id) = record.schema_id {
            fixed[56] = 1;
            fixed[60..64].copy_from_slice(&id.to_le_bytes());
        }
        put(memory, base as usize + i * RECORD_SIZE, &fixed)?;
    }
    Ok(Placed {
        data: (data, data_len),
        headers: (headers, header_count),
        records: (base, record_count),
    })
}
