//! The write journal: a bounded multi-producer, single-consumer queue of image
//! writes in the shared mapping. Plugins (in any process) queue writes without
//! taking the image lock and are never blocked; the scan thread applies them in
//! order under the lock each cycle, so the last write wins.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Image, Table};

/// Journal depth. At a 20 ms scan, 8 plugins can each queue 256 writes per
/// cycle before a write is refused; 2048 entries × 24 bytes = 48 KiB.
pub const JOURNAL_CAPACITY: usize = 2048;

/// `journal_write_*` return: accepted.
pub const JOURNAL_OK: c_int = 0;
/// `journal_write_*` return: wrong type code for that function, index out of
/// range or bit > 7. Counted in `rejected`.
pub const JOURNAL_REJECTED: c_int = -1;
/// `journal_write_*` return: the journal is full this cycle; the write is dropped
/// and counted, the caller is never blocked.
pub const JOURNAL_FULL: c_int = -2;

/// One queued write. Data fields are written by the producer that claimed the
/// slot, then published by `seq` (release); the scan thread reads them after an
/// acquire load of `seq`.
#[repr(C)]
pub(super) struct JournalSlot {
    pub(super) seq: AtomicU64,
    table: UnsafeCell<u8>,
    bit: UnsafeCell<u8>,
    index: UnsafeCell<u32>,
    value: UnsafeCell<u64>,
}

/// Validates the type code against the tables a `journal_write_*` function
/// serves, then queues.
pub(super) fn write(code: c_int, first: Table, index: c_int, bit: c_int, value: u64) -> c_int {
    let Some(img) = super::get() else {
        return JOURNAL_REJECTED;
    };
    let ok_table = Table::from_code(code)
        .filter(|t| (*t as u8) >= first as u8 && (*t as u8) < first as u8 + 3)
        .filter(|t| first as u8 != Table::ByteIn as u8 || (*t as u8) < Table::IntIn as u8);
    match (ok_table, usize::try_from(index), usize::try_from(bit)) {
        (Some(t), Ok(i), Ok(b)) => img.journal_push(t, i, b, value),
        _ => {
            img.header()
                .journal_rejected
                .fetch_add(1, Ordering::Relaxed);
            JOURNAL_REJECTED
        }
    }
}

impl Image {
    /// Queues a write for the scan thread. Lock-free; never blocks.
    pub fn journal_push(&self, table: Table, index: usize, bit: usize, value: u64) -> c_int {
        let h = self.header();
        if index >= self.buffer_size || bit >= table.values_per_slot() {
            h.journal_rejected.fetch_add(1, Ordering::Relaxed);
            return JOURNAL_REJECTED;
        }
        let mut pos = h.journal_tail.load(Ordering::Relaxed);
        loop {
            let slot = &h.slots[(pos % JOURNAL_CAPACITY as u64) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == pos {
                match h.journal_tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `pos` gives this producer
                        // exclusive access to the slot's data until it publishes
                        // `seq = pos + 1`; the consumer reads only after that.
                        unsafe {
                            *slot.table.get() = table as u8;
                            *slot.bit.get() = bit as u8;
                            *slot.index.get() = index as u32;
                            *slot.value.get() = value;
                        }
                        slot.seq.store(pos + 1, Ordering::Release);
                        return JOURNAL_OK;
                    }
                    Err(actual) => pos = actual,
                }
            } else if seq < pos {
                // The slot still holds an entry from one lap ago: full.
                h.journal_overflows.fetch_add(1, Ordering::Relaxed);
                return JOURNAL_FULL;
            } else {
                pos = h.journal_tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Applies queued writes in order (last write wins), from `*head` on. Called
    /// by the scan thread only (single consumer), with the image lock held.
    /// Allocation-free. Returns the number applied.
    pub fn apply_journal(&self, head: &mut u64) -> u64 {
        let h = self.header();
        let mut applied = 0;
        loop {
            let slot = &h.slots[(*head % JOURNAL_CAPACITY as u64) as usize];
            if slot.seq.load(Ordering::Acquire) != *head + 1 {
                break;
            }
            // SAFETY: seq == head + 1 means a producer published this slot and
            // nobody writes it until we release it below.
            let (table, bit, index, value) = unsafe {
                (
                    *slot.table.get(),
                    *slot.bit.get(),
                    *slot.index.get(),
                    *slot.value.get(),
                )
            };
            slot.seq
                .store(*head + JOURNAL_CAPACITY as u64, Ordering::Release);
            *head += 1;
            if let Some(t) = Table::ALL.get(table as usize) {
                self.store(*t, index as usize, bit as usize, value);
            }
            applied += 1;
        }
        if applied > 0 {
            h.journal_applied.fetch_add(applied, Ordering::Relaxed);
        }
        applied
    }

    /// Writes that could not be queued because the journal was full.
    pub fn journal_overflows(&self) -> u64 {
        self.header().journal_overflows.load(Ordering::Relaxed)
    }

    /// Writes refused for a wrong type code, index or bit.
    pub fn journal_rejected(&self) -> u64 {
        self.header().journal_rejected.load(Ordering::Relaxed)
    }

    /// Writes applied by the scan thread.
    pub fn journal_applied(&self) -> u64 {
        self.header().journal_applied.load(Ordering::Relaxed)
    }
}
