//! A batch of records, lowered into guest memory.
//!
//! wasmtime's generic lowering of `list<kafka-record>` looks the guest
//! memory up again for every field it writes; measured, that was a fifth of
//! a call. [`RecordBatch`] writes each record's fixed part with one lookup
//! and copies each buffer right after the guest allocated it. The buffers
//! still need one `realloc` call each: the canonical ABI hands ownership of
//! every list and string to the guest.
//!
//! Guests whose strings are not UTF-8 take wasmtime's own path.

use std::mem::MaybeUninit;

use wasmtime::ValRaw;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext, wasmtime_environ,
};
use wasmtime::component::{ComponentType, Lower};
use wasmtime_environ::component::StringEncoding;

use super::bindings::{Header, KafkaRecord};

// Canonical ABI layout (32-bit) of `kafka-record` and `header`.
const RECORD_SIZE: usize = 80;
const RECORD_ALIGN: u32 = 8;
const HEADER_SIZE: usize = 20;
const HEADER_ALIGN: u32 = 4;
const _: () = {
    assert!(<KafkaRecord<'static> as ComponentType>::SIZE32 == RECORD_SIZE);
    assert!(<KafkaRecord<'static> as ComponentType>::ALIGN32 == RECORD_ALIGN);
    assert!(<Header<'static> as ComponentType>::SIZE32 == HEADER_SIZE);
    assert!(<Header<'static> as ComponentType>::ALIGN32 == HEADER_ALIGN);
};

/// `list<kafka-record>` as the host passes it to `process`.
pub struct RecordBatch<'r, 'a>(pub &'r [KafkaRecord<'a>]);

// SAFETY: `ABI` and `Lower` are those of `list<kafka-record>`, and
// `typecheck` delegates to the generated bindings for that very type.
unsafe impl ComponentType for RecordBatch<'_, '_> {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[KafkaRecord<'static>] as ComponentType>::typecheck(ty, types)
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
        if !matches!(cx.options().string_encoding, StringEncoding::Utf8) {
            return self.0.linear_lower_to_flat(cx, ty, dst);
        }
        let (ptr, len) = store(cx, self.0)?;
        // Pointers travel as 64-bit values, as wasmtime's own lowering does.
        dst.write([ValRaw::i64(ptr as i64), ValRaw::i64(len as i64)]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        if !matches!(cx.options().string_encoding, StringEncoding::Utf8) {
            return self.0.linear_lower_to_memory(cx, ty, offset);
        }
        let (ptr, len) = store(cx, self.0)?;
        let memory = cx.as_slice_mut();
        put_u32(memory, offset, ptr)?;
        put_u32(memory, offset + 4, len)
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
    memory.get_mut(start..start + len).ok_or_else(|| {
        wasmtime::format_err!("plugin realloc returned {start:#x} for {len} bytes, out of bounds")
    })
}

/// Copies `bytes` into a fresh guest allocation.
fn buffer<T>(cx: &mut LowerContext<'_, T>, bytes: &[u8], align: u32) -> wasmtime::Result<u32> {
    let ptr = alloc(cx, bytes.len(), align)?;
    if !bytes.is_empty() {
        at(cx.as_slice_mut(), ptr as usize, bytes.len())?.copy_from_slice(bytes);
    }
    Ok(ptr)
}

fn put_u32(memory: &mut [u8], at: usize, v: u32) -> wasmtime::Result<()> {
    memory
        .get_mut(at..at + 4)
        .ok_or_else(|| wasmtime::format_err!("write at {at:#x} out of bounds"))?
        .copy_from_slice(&v.to_le_bytes());
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

/// Guest addresses of one record's buffers.
struct Placed {
    topic: u32,
    key: u32,
    value: u32,
    headers: u32,
}

fn store<T>(
    cx: &mut LowerContext<'_, T>,
    records: &[KafkaRecord<'_>],
) -> wasmtime::Result<(u32, u32)> {
    let len = u32::try_from(records.len())
        .map_err(|_| wasmtime::format_err!("too many records for one call"))?;
    let base = array(cx, records.len(), RECORD_SIZE, RECORD_ALIGN)?;
    // Allocation calls into the guest, which may grow (move) its memory, so
    // all of them come before the one lookup of memory below.
    let mut placed = Vec::with_capacity(records.len());
    for record in records {
        placed.push(Placed {
            topic: alloc(cx, record.topic.len(), 1)?,
            key: record
                .key
                .map(|k| alloc(cx, k.len(), 1))
                .transpose()?
                .unwrap_or(0),
            value: record
                .value
                .map(|v| alloc(cx, v.len(), 1))
                .transpose()?
                .unwrap_or(0),
            headers: store_headers(cx, record.headers)?,
        });
    }
    let memory = cx.as_slice_mut();
    for (record, place) in records.iter().zip(&placed) {
        let topic = record.topic.as_bytes();
        at(memory, place.topic as usize, topic.len())?.copy_from_slice(topic);
        if let Some(key) = record.key {
            at(memory, place.key as usize, key.len())?.copy_from_slice(key);
        }
        if let Some(value) = record.value {
            at(memory, place.value as usize, value.len())?.copy_from_slice(value);
        }
    }
    for (i, (record, place)) in records.iter().zip(&placed).enumerate() {
        let mut fixed = [0u8; RECORD_SIZE];
        fixed[0..4].copy_from_slice(&place.topic.to_le_bytes());
        fixed[4..8].copy_from_slice(&(record.topic.len() as u32).to_le_bytes());
        fixed[8..12].copy_from_slice(&record.partition.to_le_bytes());
        fixed[16..24].copy_from_slice(&record.offset.to_le_bytes());
        if let Some(ts) = record.timestamp {
            fixed[24] = 1;
            fixed[32..40].copy_from_slice(&ts.to_le_bytes());
        }
        if let Some(key) = record.key {
            fixed[40] = 1;
            fixed[44..48].copy_from_slice(&place.key.to_le_bytes());
            fixed[48..52].copy_from_slice(&(key.len() as u32).to_le_bytes());
        }
        if let Some(value) = record.value {
            fixed[52] = 1;
            fixed[56..60].copy_from_slice(&place.value.to_le_bytes());
            fixed[60..64].copy_from_slice(&(value.len() as u32).to_le_bytes());
        }
        fixed[64..68].copy_from_slice(&place.headers.to_le_bytes());
        fixed[68..72].copy_from_slice(&(record.headers.len() as u32).to_le_bytes());
        if let Some(id) = record.schema_id {
            fixed[72] = 1;
            fixed[76..80].copy_from_slice(&id.to_le_bytes());
        }
        at(memory, base as usize + i * RECORD_SIZE, RECORD_SIZE)?.copy_from_slice(&fixed);
    }
    Ok((base, len))
}

fn store_headers<T>(cx: &mut LowerContext<'_, T>, headers: &[Header<'_>]) -> wasmtime::Result<u32> {
    let base = array(cx, headers.len(), HEADER_SIZE, HEADER_ALIGN)?;
    for (i, header) in headers.iter().enumerate() {
        let key = buffer(cx, header.key.as_bytes(), 1)?;
        let value = header.value.map(|v| buffer(cx, v, 1)).transpose()?;
        let mut fixed = [0u8; HEADER_SIZE];
        fixed[0..4].copy_from_slice(&key.to_le_bytes());
        fixed[4..8].copy_from_slice(&(header.key.len() as u32).to_le_bytes());
        if let (Some(ptr), Some(v)) = (value, header.value) {
            fixed[8] = 1;
            fixed[12..16].copy_from_slice(&ptr.to_le_bytes());
            fixed[16..20].copy_from_slice(&(v.len() as u32).to_le_bytes());
        }
        at(
            cx.as_slice_mut(),
            base as usize + i * HEADER_SIZE,
            HEADER_SIZE,
        )?
        .copy_from_slice(&fixed);
    }
    Ok(base)
}
