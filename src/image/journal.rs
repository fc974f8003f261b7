//! The write journal: bounded multi-producer, single-consumer queues of image
//! writes in the shared mapping, one ring per producer process. Plugins (in any
//! process) queue writes without taking the image lock and are never blocked;
//! the scan thread applies them in stamp order under the lock each cycle, so
//! the last write wins. A producer process that dies mid-write stalls only its
//! own ring, which the supervisor has reset when it reaps the process: the
//! dead process costs at most its own unpublished writes.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Image, Table};
use crate::config::MAX_PLUGINS;

/// Rings of the journal: one per producer process, so that a process that
/// dies between claiming a slot and publishing it (a SIGKILLed worker) stalls
/// only its own ring. Ring 0 is the supervisor's process (shared-mode Python
/// plugins, native plugins); ring `slot + 1` is the worker process of the
/// plugin in callback slot `slot`.
pub const JOURNAL_RINGS: usize = MAX_PLUGINS + 1;
/// Depth of each ring. At a 20 ms scan one producer can queue 1024 writes per
/// cycle before a write is refused; 17 rings × 1024 × 32 bytes = 544 KiB.
pub const JOURNAL_CAPACITY: usize = 1024;
/// Apply passes (scan cycles) a ring's oldest write may stay claimed but
/// unpublished before the journal counts as stalled. A live producer publishes
/// within nanoseconds; only a producer that died mid-write (and whose ring the
/// supervisor has not reset yet) or one stopped by a debugger gets here.
pub const RING_STALL_PASSES: u64 = 50;

/// `journal_write_*` return: accepted.
pub const JOURNAL_OK: c_int = 0;
/// `journal_write_*` return: wrong type code for that function, index out of
/// range or bit > 7. Counted in `rejected`.
pub const JOURNAL_REJECTED: c_int = -1;
/// `journal_write_*` return: the journal is full this cycle; the write is dropped
/// and counted, the caller is never blocked.
pub const JOURNAL_FULL: c_int = -2;

/// `Ring::reset` states: none (0), requested by the supervisor, being carried
/// out by the scan thread.
const RESET_REQUESTED: u64 = 1;
const RESET_RUNNING: u64 = 2;

/// One queued write. Data fields are written by the producer that claimed the
/// slot, then published by `seq` (release); the scan thread reads them after an
/// acquire load of `seq`.
#[repr(C)]
pub(super) struct JournalSlot {
    pub(super) seq: AtomicU64,
    /// Global order across rings (last write wins across producers too).
    stamp: UnsafeCell<u64>,
    table: UnsafeCell<u8>,
    bit: UnsafeCell<u8>,
    index: UnsafeCell<u32>,
    value: UnsafeCell<u64>,
}

/// One producer's ring: a bounded multi-producer (the threads of one process),
/// single-consumer queue with a sequence number per slot.
#[repr(C)]
pub(super) struct Ring {
    /// Next position a producer claims.
    tail: AtomicU64,
    /// Set by the supervisor once this ring's producer process is dead (and no
    /// new one is started); the scan thread resets the ring and clears it.
    reset: AtomicU64,
    /// Consecutive apply passes that found the oldest write claimed but not
    /// published (written by the scan thread).
    stalled_passes: AtomicU64,
    pub(super) slots: [JournalSlot; JOURNAL_CAPACITY],
}

impl Ring {
    /// Sets every slot free for the lap starting at `from`. Only when no
    /// producer uses the ring: at image creation, or by the consumer on reset.
    pub(super) fn init(&self, from: u64) {
        for k in 0..JOURNAL_CAPACITY as u64 {
            self.slots[((from + k) % JOURNAL_CAPACITY as u64) as usize]
                .seq
                .store(from + k, Ordering::Relaxed);
        }
        self.tail.store(from, Ordering::Release);
    }
}

/// The scan thread's read positions, one per ring (fixed size: the scan loop
/// allocates nothing).
#[derive(Debug, Default)]
pub struct JournalCursor {
    heads: [u64; JOURNAL_RINGS],
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
    /// Queues a write for the scan thread into this process's ring. Lock-free;
    /// never blocks.
    pub fn journal_push(&self, table: Table, index: usize, bit: usize, value: u64) -> c_int {
        self.journal_push_to(self.ring, table, index, bit, value)
    }

    /// Queues a write into ring `ring` (this process's ring, except in tests
    /// that play several producer processes).
    pub fn journal_push_to(
        &self,
        ring: usize,
        table: Table,
        index: usize,
        bit: usize,
        value: u64,
    ) -> c_int {
        let h = self.header();
        if index >= self.buffer_size || bit >= table.values_per_slot() || ring >= JOURNAL_RINGS {
            h.journal_rejected.fetch_add(1, Ordering::Relaxed);
            return JOURNAL_REJECTED;
        }
        let r = &h.rings[ring];
        let mut pos = r.tail.load(Ordering::Relaxed);
        loop {
            let slot = &r.slots[(pos % JOURNAL_CAPACITY as u64) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == pos {
                match r.tail.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let stamp = h.journal_stamp.fetch_add(1, Ordering::Relaxed);
                        // SAFETY: winning the CAS for `pos` gives this producer
                        // exclusive access to the slot's data until it publishes
                        // `seq = pos + 1`; the consumer reads only after that.
                        unsafe {
                            *slot.stamp.get() = stamp;
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
                pos = r.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Asks the scan thread to reset ring `ring`, whose producer process is
    /// dead: its published writes are applied, its unpublished ones (at most
    /// one per thread it had) are counted as lost. Call it only when no
    /// process produces into the ring, and start the next one once
    /// [`Image::ring_reset_done`] says so.
    pub fn request_ring_reset(&self, ring: usize) {
        if let Some(r) = self.header().rings.get(ring) {
            r.reset.store(RESET_REQUESTED, Ordering::Release);
        }
    }

    /// Waits up to `budget` for the scan thread to carry out the reset of
    /// `ring`; withdraws a request it has not started by then (a stalled scan
    /// thread, which the watchdog reports anyway). True when the ring is clean.
    pub fn await_ring_reset(&self, ring: usize, budget: std::time::Duration) -> bool {
        let Some(r) = self.header().rings.get(ring) else {
            return true;
        };
        let end = std::time::Instant::now() + budget;
        loop {
            match r.reset.load(Ordering::Acquire) {
                0 => return true,
                RESET_REQUESTED
                    if std::time::Instant::now() >= end
                        && r.reset
                            .compare_exchange(
                                RESET_REQUESTED,
                                0,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_ok() =>
                {
                    return false;
                }
                _ => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The ring whose oldest write has been claimed but unpublished for more
    /// than [`RING_STALL_PASSES`] scan cycles, if any, with that count.
    pub fn stalled_ring(&self) -> Option<(usize, u64)> {
        self.header()
            .rings
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.stalled_passes.load(Ordering::Relaxed)))
            .find(|&(_, n)| n > RING_STALL_PASSES)
    }

    /// Applies queued writes, oldest stamp first across the rings (last write
    /// wins), and carries out requested ring resets. Called by the scan thread
    /// only (single consumer), with the image lock held. Allocation-free.
    /// Returns the number applied.
    pub fn apply_journal(&self, cursor: &mut JournalCursor) -> u64 {
        let h = self.header();
        let mut applied = 0;
        for (i, r) in h.rings.iter().enumerate() {
            // Requested (1) → in progress (2) → done (0): a request the
            // supervisor withdraws in time is never half carried out.
            if r.reset.load(Ordering::Relaxed) == RESET_REQUESTED
                && r.reset
                    .compare_exchange(
                        RESET_REQUESTED,
                        RESET_RUNNING,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                applied += self.reset_ring(r, &mut cursor.heads[i]);
                r.reset.store(0, Ordering::Release);
            }
        }
        loop {
            // The published write with the lowest stamp among the rings' heads.
            let mut next: Option<(usize, u64)> = None;
            for (i, r) in h.rings.iter().enumerate() {
                let head = cursor.heads[i];
                let slot = &r.slots[(head % JOURNAL_CAPACITY as u64) as usize];
                if slot.seq.load(Ordering::Acquire) != head + 1 {
                    continue;
                }
                // SAFETY: published (seq == head + 1): the producer is done
                // with the slot and nobody writes it until we release it.
                let stamp = unsafe { *slot.stamp.get() };
                if next.is_none_or(|(_, s)| stamp < s) {
                    next = Some((i, stamp));
                }
            }
            let Some((i, _)) = next else { break };
            let r = &h.rings[i];
            self.apply_slot(r, &mut cursor.heads[i]);
            applied += 1;
        }
        for (i, r) in h.rings.iter().enumerate() {
            // Claimed but unpublished oldest write: a producer mid-write, or
            // one that died there.
            let pending = r.tail.load(Ordering::Relaxed) > cursor.heads[i];
            if pending {
                r.stalled_passes.fetch_add(1, Ordering::Relaxed);
            } else if r.stalled_passes.load(Ordering::Relaxed) != 0 {
                r.stalled_passes.store(0, Ordering::Relaxed);
            }
        }
        if applied > 0 {
            h.journal_applied.fetch_add(applied, Ordering::Relaxed);
        }
        applied
    }

    /// Applies the published slot at `*head` and frees it for the next lap.
    fn apply_slot(&self, r: &Ring, head: &mut u64) {
        let slot = &r.slots[(*head % JOURNAL_CAPACITY as u64) as usize];
        // SAFETY: the caller saw seq == head + 1: published, and nobody writes
        // the slot until the store below releases it.
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
    }

    /// Resets a ring whose producer is dead: applies what it published,
    /// counts what it claimed and never published as lost, and frees every
    /// slot from the tail on. Returns the number applied.
    fn reset_ring(&self, r: &Ring, head: &mut u64) -> u64 {
        let tail = r.tail.load(Ordering::Acquire);
        let mut applied = 0;
        let mut lost = 0;
        while *head < tail {
            let slot = &r.slots[(*head % JOURNAL_CAPACITY as u64) as usize];
            if slot.seq.load(Ordering::Acquire) == *head + 1 {
                self.apply_slot(r, head);
                applied += 1;
            } else {
                lost += 1;
                *head += 1;
            }
        }
        r.init(tail);
        r.stalled_passes.store(0, Ordering::Relaxed);
        if lost > 0 {
            self.header()
                .journal_lost
                .fetch_add(lost, Ordering::Relaxed);
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

    /// Writes claimed by a producer process that died before publishing them
    /// (at most one per thread of each dead process), discarded at the ring's
    /// reset.
    pub fn journal_lost(&self) -> u64 {
        self.header().journal_lost.load(Ordering::Relaxed)
    }
}
