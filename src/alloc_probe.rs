//! A counting global allocator for proving that the scan loop does not allocate.
//!
//! The scan thread calls [`enter_steady_state`] once its set-up is done; from
//! then on every allocation made *on that thread* is counted. A test or
//! benchmark binary installs [`CountingAlloc`] as its `#[global_allocator]` and
//! reads [`steady_state_allocations`]. In the product no counting allocator is
//! installed and the marker is a thread-local store.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static STEADY: Cell<bool> = const { Cell::new(false) };
}

static STEADY_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Marks the current thread as being in its allocation-free steady state.
pub fn enter_steady_state() {
    STEADY.with(|s| s.set(true));
}

/// Allocations (alloc, zeroed alloc, realloc) counted on steady-state threads.
pub fn steady_state_allocations() -> u64 {
    STEADY_ALLOCATIONS.load(Ordering::SeqCst)
}

/// The system allocator, counting allocations made by steady-state threads.
pub struct CountingAlloc;

impl CountingAlloc {
    fn count() {
        // `try_with`: during thread teardown the thread-local may be gone.
        if STEADY.try_with(Cell::get).unwrap_or(false) {
            STEADY_ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only
// a const-initialised thread-local and an atomic, neither of which allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}
