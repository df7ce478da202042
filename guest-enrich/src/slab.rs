//! A size-class allocator for the plugin's many small, short-lived
//! allocations.
//!
//! Every call allocates a handful of small buffers per record (the host's
//! copies of topic and value, the uuid string, the row) and frees them all
//! when the call returns. With the default allocator that was a fifth of the
//! plugin's time; popping and pushing per-size free lists costs a few
//! instructions. Freed small blocks are kept for reuse, never returned; the
//! host replaces an instance whose memory grew past its recycle mark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

const GRAIN: usize = 16;
const CLASSES: usize = 32;
/// Larger or more aligned requests go to the system allocator.
const MAX_SMALL: usize = GRAIN * CLASSES;

pub struct Slab;

struct FreeLists(UnsafeCell<[*mut u8; CLASSES]>);

// SAFETY: plugins run single-threaded (wasm32-wasip2 has no threads).
unsafe impl Sync for FreeLists {}

static FREE: FreeLists = FreeLists(UnsafeCell::new([ptr::null_mut(); CLASSES]));

fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_SMALL && layout.align() <= GRAIN)
        .then(|| layout.size().max(1).div_ceil(GRAIN) - 1)
}

unsafe impl GlobalAlloc for Slab {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded; free blocks hold the next pointer.
        unsafe {
            let lists = &mut *FREE.0.get();
            let head = lists[c];
            if head.is_null() {
                System.alloc(Layout::from_size_align_unchecked((c + 1) * GRAIN, GRAIN))
            } else {
                lists[c] = *(head as *mut *mut u8);
                head
            }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: `block` came from `alloc` with the same class, and is at
        // least GRAIN bytes, enough for the next pointer.
        unsafe {
            let lists = &mut *FREE.0.get();
            *(block as *mut *mut u8) = lists[c];
            lists[c] = block;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            (Some(a), Some(b)) if a == b => block,
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => unsafe {
                let moved = self.alloc(new);
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                moved
            },
        }
    }
}
