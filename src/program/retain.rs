//! RETAIN: a program's retained variables survive a restart and a power cut.
//!
//! The glue gives them as one snapshot of values (no addresses; see
//! `glue/openplc_program.h`). It is kept in `retain.bin` in the program
//! plugin's state directory: a header (magic, the build's signature, the
//! length), the snapshot, and an FNV-1a checksum of it. Written atomically
//! (temporary file, fsync, rename, fsync of the directory).
//!
//! - Restored when the program loads, before its first task run. A missing
//!   file: the declared initial values. A corrupt one, or one of another
//!   program build (signature or length differ): the initial values and one
//!   warning naming the file.
//! - Saved every `--retain-period` by the scan thread, which only copies the
//!   snapshot into a buffer made at load and hands it to a writer thread:
//!   the scan thread never waits for the disk and never allocates. A snapshot
//!   taken while the writer is still busy with the last one is skipped.
//! - Saved once more when the program is unloaded (stop, reload), after the
//!   scan thread left it.

use std::cell::{Cell, UnsafeCell};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::abi::{Extension, RetainRestoreFn, RetainSaveFn};

/// The file, in the plugin's state directory.
pub const FILE_NAME: &str = "retain.bin";
const MAGIC: &[u8; 8] = b"OPLCRET1";
/// Magic, signature (u64), snapshot length (u32), reserved (u32).
const HEADER: usize = 24;
const CHECKSUM: usize = 8;
/// Default `--retain-period`: a power cut loses at most this much; each save
/// is one small write and two fsyncs.
pub const DEFAULT_SAVE_PERIOD: Duration = Duration::from_secs(5);

static SAVE_PERIOD_NS: AtomicU64 = AtomicU64::new(5_000_000_000);

/// Sets how often a loaded program's RETAIN snapshot is saved.
pub fn set_save_period(d: Duration) {
    SAVE_PERIOD_NS.store(
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
        Ordering::SeqCst,
    );
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Fills the header and checksum around the snapshot in `buf`.
fn seal(buf: &mut [u8], signature: u64) {
    let len = buf.len() - HEADER - CHECKSUM;
    buf[..8].copy_from_slice(MAGIC);
    buf[8..16].copy_from_slice(&signature.to_le_bytes());
    buf[16..20].copy_from_slice(&(len as u32).to_le_bytes());
    buf[20..24].fill(0);
    let sum = fnv(&buf[HEADER..HEADER + len]);
    buf[HEADER + len..].copy_from_slice(&sum.to_le_bytes());
}

/// The snapshot inside a file's bytes, or why there is none.
fn open(bytes: &[u8], signature: u64, size: usize) -> Result<&[u8], String> {
    if bytes.len() < HEADER + CHECKSUM || &bytes[..8] != MAGIC {
        return Err("not a RETAIN file of this runtime (bad magic or too short)".into());
    }
    let sig = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let len = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default()) as usize;
    if sig != signature || len != size {
        return Err(format!(
            "written by another program build (signature {sig:#018x}, {len} bytes; this build: {signature:#018x}, {size} bytes)"
        ));
    }
    if bytes.len() != HEADER + len + CHECKSUM {
        return Err(format!(
            "truncated or padded ({} bytes, expected {})",
            bytes.len(),
            HEADER + len + CHECKSUM
        ));
    }
    let sum = u64::from_le_bytes(bytes[HEADER + len..].try_into().unwrap_or_default());
    if sum != fnv(&bytes[HEADER..HEADER + len]) {
        return Err("corrupt (checksum mismatch)".into());
    }
    Ok(&bytes[HEADER..HEADER + len])
}

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What the scan thread and the writer share.
struct Shared {
    path: PathBuf,
    label: String,
    /// Header + snapshot + checksum; written by the scan thread while
    /// `filled` is false, read by the writer while it is true.
    buf: UnsafeCell<Vec<u8>>,
    filled: AtomicBool,
    stop: AtomicBool,
    /// Saves written, and failures (the first one of a run is logged).
    saves: AtomicU64,
    failures: AtomicU64,
    /// Longest periodic save (write, fsyncs, rename), ns.
    save_max_ns: AtomicU64,
}

// SAFETY: `buf` is handed over through `filled` (Release/Acquire): only the
// scan thread touches it while false, only the writer while true.
unsafe impl Sync for Shared {}

/// A loaded program's RETAIN store.
pub struct Retain {
    shared: Arc<Shared>,
    size: usize,
    signature: u64,
    save: RetainSaveFn,
    /// Scan cycles between saves, and the cycles left until the next one.
    every: u64,
    countdown: Cell<u64>,
    writer: Option<JoinHandle<()>>,
}

// SAFETY: the `Cell` is only touched by the scan thread while the program is
// in the slot (as `Program`'s); the rest is shared through `Arc<Shared>`.
unsafe impl Send for Retain {}

impl Retain {
    /// For a program with RETAIN variables: restores them from `state_dir`
    /// (before any task ran) and starts the writer. `None` without RETAIN
    /// variables or without a state directory (logged).
    pub fn start(
        ext: &Extension,
        state_dir: Option<&Path>,
        period_ns: u64,
        label: &str,
    ) -> Option<Retain> {
        if ext.retain_size == 0 {
            return None;
        }
        let Some(dir) = state_dir else {
            log::warn!(
                "[{label}] the program has RETAIN variables but the plugin has no state directory: they start from their initial values every time"
            );
            return None;
        };
        let path = dir.join(FILE_NAME);
        restore(
            &path,
            ext.retain_signature,
            ext.retain_size,
            ext.retain_restore,
            label,
        );
        let shared = Arc::new(Shared {
            path,
            label: label.to_string(),
            buf: UnsafeCell::new(vec![0; HEADER + ext.retain_size + CHECKSUM]),
            filled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            saves: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            save_max_ns: AtomicU64::new(0),
        });
        let writer = std::thread::Builder::new()
            .name("plc-retain".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || writer(&shared)
            })
            .map_err(|e| log::error!("[{label}] cannot start the RETAIN writer thread: {e}"))
            .ok()?;
        let every = (SAVE_PERIOD_NS.load(Ordering::SeqCst) / period_ns.max(1)).max(1);
        Some(Retain {
            shared,
            size: ext.retain_size,
            signature: ext.retain_signature,
            save: ext.retain_save,
            every,
            countdown: Cell::new(every),
            writer: Some(writer),
        })
    }

    /// One scan cycle, after the tasks ran: every `every` cycles the snapshot
    /// goes to the writer. Scan thread only; no allocation, no I/O.
    pub fn tick(&self) {
        let left = self.countdown.get().saturating_sub(1);
        if left > 0 {
            self.countdown.set(left);
            return;
        }
        self.countdown.set(self.every);
        if self.shared.filled.load(Ordering::Acquire) {
            return; // the writer is still busy with the last one
        }
        // SAFETY: `filled` is false, so the writer does not touch `buf`.
        let buf = unsafe { &mut *self.shared.buf.get() };
        // SAFETY: a call into the loaded library with a buffer of `size`
        // bytes; no task runs meanwhile (this is the scan thread).
        let n = unsafe { (self.save)(buf[HEADER..].as_mut_ptr(), self.size as u32) };
        if n as usize != self.size {
            return;
        }
        seal(buf, self.signature);
        self.shared.filled.store(true, Ordering::Release);
        if let Some(w) = &self.writer {
            w.thread().unpark();
        }
    }
}

impl Drop for Retain {
    /// Stops the writer and saves once more: the program is no longer run.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.writer.take() {
            w.thread().unpark();
            let _ = w.join();
        }
        let mut buf = vec![0; HEADER + self.size + CHECKSUM];
        // SAFETY: the program is no longer run by the scan thread (it left
        // the slot before the plugin was stopped) and its library is loaded.
        let n = unsafe { (self.save)(buf[HEADER..].as_mut_ptr(), self.size as u32) };
        let label = &self.shared.label;
        let path = &self.shared.path;
        if n as usize != self.size {
            log::error!(
                "[{label}] the program gave no RETAIN snapshot; {} keeps the last one",
                path.display()
            );
            return;
        }
        seal(&mut buf, self.signature);
        match write_atomic(path, &buf) {
            Ok(()) => log::info!(
                "[{label}] RETAIN variables saved to {} ({} periodic save(s) of {} bytes before, the longest {} us)",
                path.display(),
                self.shared.saves.load(Ordering::Relaxed),
                buf.len(),
                self.shared.save_max_ns.load(Ordering::Relaxed) / 1000
            ),
            Err(e) => log::error!(
                "[{label}] cannot save RETAIN variables to {}: {e}",
                path.display()
            ),
        }
    }
}

fn restore(path: &Path, signature: u64, size: usize, restore: RetainRestoreFn, label: &str) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::info!(
                "[{label}] no RETAIN file yet ({}): initial values",
                path.display()
            );
            return;
        }
        Err(e) => {
            log::warn!(
                "[{label}] cannot read the RETAIN file {}: {e}; the declared initial values are used",
                path.display()
            );
            return;
        }
    };
    match open(&bytes, signature, size) {
        Ok(snapshot) => {
            // SAFETY: a call into the loaded library before any task ran,
            // with a buffer of the size it reported.
            if unsafe { restore(snapshot.as_ptr(), size as u32) } == 0 {
                log::info!(
                    "[{label}] RETAIN variables restored from {}",
                    path.display()
                );
            }
        }
        Err(why) => log::warn!(
            "[{label}] the RETAIN file {} is {why}; the declared initial values are used",
            path.display()
        ),
    }
}

fn writer(shared: &Shared) {
    loop {
        if shared.filled.load(Ordering::Acquire) {
            // SAFETY: `filled` is true: the scan thread does not touch `buf`.
            let buf = unsafe { &*shared.buf.get() };
            let t0 = std::time::Instant::now();
            match write_atomic(&shared.path, buf) {
                Ok(()) => {
                    shared.saves.fetch_add(1, Ordering::Relaxed);
                    let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    shared.save_max_ns.fetch_max(ns, Ordering::Relaxed);
                }
                Err(e) => {
                    if shared.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        log::error!(
                            "[{}] cannot save RETAIN variables to {}: {e} (further failures are not logged)",
                            shared.label,
                            shared.path.display()
                        );
                    }
                }
            }
            shared.filled.store(false, Ordering::Release);
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::park_timeout(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_snapshots_open_and_damage_is_named() {
        let mut buf = vec![0u8; HEADER + 3 + CHECKSUM];
        buf[HEADER..HEADER + 3].copy_from_slice(&[1, 2, 3]);
        seal(&mut buf, 42);
        assert_eq!(open(&buf, 42, 3).unwrap(), &[1, 2, 3]);
        assert!(
            open(&buf, 43, 3)
                .unwrap_err()
                .contains("another program build")
        );
        assert!(
            open(&buf, 42, 4)
                .unwrap_err()
                .contains("another program build")
        );
        let mut bad = buf.clone();
        bad[HEADER + 1] ^= 0xFF;
        assert!(open(&bad, 42, 3).unwrap_err().contains("checksum"));
        assert!(
            open(&buf[..buf.len() - 1], 42, 3)
                .unwrap_err()
                .contains("truncated")
        );
        assert!(open(b"garbage", 42, 3).unwrap_err().contains("bad magic"));
    }
}
