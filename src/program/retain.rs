//! RETAIN: a program's retained variables kept in a file under its plugin's
//! state directory (`plugin_state`), `<state>/plugins/<name>/retain.bin`.
//!
//! - Restored once, when the program is loaded (before its first task run).
//!   A missing file: initial values, silently. A corrupt file (bad magic,
//!   length or checksum) or one written by another build of the program (its
//!   build identity differs): the declared initial values and one warning
//!   naming the file; the next save replaces it.
//! - Saved periodically (`retain_period_ms` in the program plugin's config
//!   file, default [`DEFAULT_PERIOD_MS`]; 0: only on stop) and on stop. The
//!   scan thread never waits for the disk: after a cycle's tasks, when a save
//!   is due and the writer thread is idle, it copies the values into a buffer
//!   allocated at load (the glue's `retain_save`, no allocation) and wakes the
//!   writer; when the writer is still busy, that save is skipped (counted).
//! - Written atomically: a temporary file in the same directory, fsync,
//!   rename over `retain.bin`, fsync of the directory. A power cut leaves the
//!   old file or the new one, never a mix.
//!
//! File format (little-endian): `OPLCRET1`, u32 length + the build identity,
//! u32 length + the values (the glue's snapshot), u64 FNV-1a of everything
//! before it.

use std::cell::{Cell, UnsafeCell};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};

use super::ext2::RetainFns;

/// Saves per period when the config file does not say.
pub const DEFAULT_PERIOD_MS: u64 = 1000;
/// The retain file's name in the plugin's state directory.
pub const FILE_NAME: &str = "retain.bin";
/// A rejected file (corrupt, another build) is renamed to this extension.
pub const REJECTED_EXT: &str = "bin.rejected";
const MAGIC: &[u8; 8] = b"OPLCRET1";

/// Periodic saves written by every writer of this process (tests, bench).
static PERIODIC_SAVES: AtomicU64 = AtomicU64::new(0);

/// Periodic saves written in this process so far.
pub fn periodic_saves() -> u64 {
    PERIODIC_SAVES.load(Ordering::Relaxed)
}

const IDLE: u8 = 0;
const FULL: u8 = 1;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file's bytes for `values` of build `build_id`, into `out`.
pub fn encode(build_id: &str, values: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(build_id.len() as u32).to_le_bytes());
    out.extend_from_slice(build_id.as_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    out.extend_from_slice(values);
    let sum = fnv1a(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// The values in a file's bytes, if it is whole and of build `build_id`;
/// else why not.
pub fn decode<'a>(build_id: &str, bytes: &'a [u8], size: usize) -> Result<&'a [u8], String> {
    let corrupt = |why: &str| Err(format!("it is corrupt ({why})"));
    if bytes.len() < MAGIC.len() + 16 || &bytes[..MAGIC.len()] != MAGIC {
        return corrupt("not a retain file");
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if fnv1a(body) != u64::from_le_bytes(sum.try_into().unwrap_or_default()) {
        return corrupt("checksum mismatch");
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let Some(id_len) = u32_at(8) else {
        return corrupt("truncated");
    };
    let Some(id) = body.get(12..12 + id_len) else {
        return corrupt("truncated");
    };
    let Some(n) = u32_at(12 + id_len) else {
        return corrupt("truncated");
    };
    let Some(values) = body.get(16 + id_len..16 + id_len + n) else {
        return corrupt("truncated");
    };
    if 16 + id_len + n != body.len() {
        return corrupt("trailing bytes");
    }
    if id != build_id.as_bytes() {
        return Err(format!(
            "it was written by another build of the program ({}, this one is {build_id})",
            String::from_utf8_lossy(id)
        ));
    }
    if n != size {
        return corrupt("wrong length");
    }
    Ok(values)
}

/// Writes `bytes` to `path` atomically: `path.tmp`, fsync, rename, fsync of
/// the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("bin.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `retain_period_ms` from a program plugin's config file (`KEY = VALUE`
/// lines, `#` comments); `None` when the file does not set it.
pub fn parse_config(path: &Path) -> Result<Option<u64>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read its config file {}: {e}", path.display()))?;
    let mut period = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{at}: expected KEY = VALUE, got '{line}'"));
        };
        match key.trim() {
            "retain_period_ms" => {
                let v = value.trim();
                period = Some(v.parse::<u64>().map_err(|_| {
                    format!(
                        "{at}: retain_period_ms = {v}: expected milliseconds (0: save only on stop)"
                    )
                })?);
            }
            k => return Err(format!("{at}: unknown key '{k}' (known: retain_period_ms)")),
        }
    }
    Ok(period)
}

/// What the scan thread and the writer thread share.
struct Shared {
    state: AtomicU8,
    /// The snapshot: written by the scan thread while `state` is IDLE, read
    /// by the writer while it is FULL.
    buf: UnsafeCell<Box<[u8]>>,
    stop: AtomicBool,
    saves: AtomicU64,
    skipped: AtomicU64,
    /// How long the last snapshot took on the scan thread, ns.
    snap_ns: AtomicU64,
}

// SAFETY: `buf` is only touched by the side that `state` gives it to (see
// above); everything else is atomic.
unsafe impl Sync for Shared {}

/// A program's retained variables and their file.
pub struct Retain {
    path: PathBuf,
    build_id: String,
    fns: RetainFns,
    count: u32,
    /// Scan cycles between saves; 0: only on stop.
    every: u64,
    /// Scan thread: the relative tick of the last snapshot.
    last: Cell<u64>,
    shared: Arc<Shared>,
    writer: Option<(Thread, JoinHandle<()>)>,
}

impl Retain {
    /// Restores the values from `dir/retain.bin` (logging what happened, as
    /// `[label]`) and starts the writer when `period_ms` > 0, for a program
    /// running every `period_ns`. `None` when the program retains nothing.
    pub fn start(
        fns: RetainFns,
        build_id: &str,
        dir: Option<&Path>,
        period_ms: u64,
        period_ns: u64,
        label: &str,
    ) -> Option<Retain> {
        // SAFETY: plain calls into the loaded library.
        let (count, size) = unsafe { ((fns.count)(), (fns.size)() as usize) };
        if count == 0 {
            return None;
        }
        let Some(dir) = dir else {
            log::warn!(
                "[{label}] the program has {count} RETAIN variable(s) but no state directory to keep them in ($STATE_DIRECTORY or /var/lib/openplc): they start from their initial values at every start"
            );
            return None;
        };
        let path = dir.join(FILE_NAME);
        restore(&fns, build_id, &path, size, count, label);
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            buf: UnsafeCell::new(vec![0u8; size].into_boxed_slice()),
            stop: AtomicBool::new(false),
            saves: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            snap_ns: AtomicU64::new(0),
        });
        let every = (period_ms * 1_000_000).div_ceil(period_ns.max(1));
        let writer = if every > 0 {
            let (s, p, id, l) = (
                Arc::clone(&shared),
                path.clone(),
                build_id.to_string(),
                label.to_string(),
            );
            let spawned = std::thread::Builder::new()
                .name("retain-writer".into())
                .spawn(move || writer_loop(&s, &p, &id, &l));
            match spawned {
                Ok(h) => Some((h.thread().clone(), h)),
                Err(e) => {
                    log::error!(
                        "[{label}] cannot start the RETAIN writer thread ({e}): RETAIN values are saved only on stop"
                    );
                    None
                }
            }
        } else {
            None
        };
        log::info!(
            "[{label}] {count} RETAIN variable(s) ({size} bytes) kept in {}; saved {}and on stop",
            path.display(),
            if writer.is_some() {
                format!("every {period_ms} ms ")
            } else {
                String::new()
            }
        );
        Some(Retain {
            path,
            build_id: build_id.to_string(),
            fns,
            count,
            every: if writer.is_some() { every } else { 0 },
            last: Cell::new(0),
            shared,
            writer,
        })
    }

    /// After a cycle's tasks, relative tick `rel`, under the image lock:
    /// snapshots the values when a save is due and the writer is idle. Scan
    /// thread only; no allocation, no wait.
    pub fn after_tasks(&self, rel: u64) {
        let Some((thread, _)) = &self.writer else {
            return;
        };
        if rel < self.last.get() {
            // The program was started again: ticks count from 0.
            self.last.set(0);
        }
        if rel - self.last.get() < self.every {
            return;
        }
        self.last.set(rel);
        if self.shared.state.load(Ordering::Acquire) != IDLE {
            self.shared.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let t0 = crate::sys::monotonic_ns();
        // SAFETY: IDLE gives the buffer to this thread; it holds retain_size()
        // bytes, what the glue writes.
        unsafe { (self.fns.save)((*self.shared.buf.get()).as_mut_ptr()) };
        let dt = crate::sys::monotonic_ns().saturating_sub(t0);
        self.shared.snap_ns.store(dt, Ordering::Relaxed);
        self.shared.state.store(FULL, Ordering::Release);
        thread.unpark();
    }

    /// Periodic saves written so far, and skipped because the writer was
    /// busy.
    pub fn saves(&self) -> (u64, u64) {
        (
            self.shared.saves.load(Ordering::Relaxed),
            self.shared.skipped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Retain {
    /// On stop (the scan thread no longer runs the program): the writer
    /// finishes, then the current values are written synchronously.
    fn drop(&mut self) {
        if let Some((thread, handle)) = self.writer.take() {
            self.shared.stop.store(true, Ordering::SeqCst);
            thread.unpark();
            let _ = handle.join();
        }
        // SAFETY: the writer is gone and the scan thread no longer runs the
        // program: this thread owns the buffer; a call into the loaded
        // library.
        let values = unsafe {
            let buf = &mut *self.shared.buf.get();
            (self.fns.save)(buf.as_mut_ptr());
            &**buf
        };
        let mut bytes = Vec::new();
        encode(&self.build_id, values, &mut bytes);
        match write_atomic(&self.path, &bytes) {
            Ok(()) => log::info!(
                "saved {} RETAIN variable(s) to {} on stop",
                self.count,
                self.path.display()
            ),
            Err(e) => log::error!(
                "cannot save the RETAIN variables to {}: {e}; the last periodic save stays",
                self.path.display()
            ),
        }
    }
}

fn restore(fns: &RetainFns, build_id: &str, path: &Path, size: usize, count: u32, label: &str) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::info!(
                "[{label}] no RETAIN file {} yet: the RETAIN variables start from their initial values",
                path.display()
            );
            return;
        }
        Err(e) => {
            log::warn!(
                "[{label}] cannot read the RETAIN file {}: {e}; the RETAIN variables start from their initial values",
                path.display()
            );
            return;
        }
    };
    match decode(build_id, &bytes, size) {
        Ok(values) => {
            // SAFETY: `values` holds retain_size() bytes; a call into the
            // loaded library before any task ran.
            let rc = unsafe { (fns.restore)(values.as_ptr(), values.len() as u32) };
            if rc == 0 {
                log::info!(
                    "[{label}] restored {count} RETAIN variable(s) from {}",
                    path.display()
                );
            } else {
                log::warn!(
                    "[{label}] the program refused the RETAIN file {} (length {}); the RETAIN variables start from their initial values",
                    path.display(),
                    values.len()
                );
            }
        }
        Err(why) => {
            // Kept aside for a look, and so that a stop before the first save
            // does not destroy it.
            let aside = path.with_extension(REJECTED_EXT);
            let kept = match std::fs::rename(path, &aside) {
                Ok(()) => format!(" (kept as {})", aside.display()),
                Err(e) => format!(" (could not keep it as {}: {e})", aside.display()),
            };
            log::warn!(
                "[{label}] RETAIN file {}: {why}; the RETAIN variables start from their initial values{kept}",
                path.display()
            );
        }
    }
}

fn writer_loop(shared: &Shared, path: &Path, build_id: &str, label: &str) {
    let mut bytes = Vec::new();
    // Failing saves are logged when they start failing and when they
    // recover, not once per period.
    let mut failing = 0u64;
    loop {
        if shared.state.load(Ordering::Acquire) == FULL {
            // SAFETY: FULL gives the buffer to this thread until IDLE.
            encode(build_id, unsafe { &*shared.buf.get() }, &mut bytes);
            let snap_ns = shared.snap_ns.load(Ordering::Relaxed);
            shared.state.store(IDLE, Ordering::Release);
            let t0 = std::time::Instant::now();
            match write_atomic(path, &bytes) {
                Ok(()) => {
                    let n = shared.saves.fetch_add(1, Ordering::Relaxed) + 1;
                    PERIODIC_SAVES.fetch_add(1, Ordering::Relaxed);
                    if failing > 0 {
                        log::info!(
                            "[{label}] RETAIN saves to {} work again after {failing} failed save(s)",
                            path.display()
                        );
                        failing = 0;
                    }
                    if n == 1 {
                        log::info!("[{label}] first periodic RETAIN save to {}", path.display());
                    }
                    log::debug!(
                        "[{label}] RETAIN save {n} written to {} ({} bytes; snapshot {snap_ns} ns on the scan thread, write and fsync {} us)",
                        path.display(),
                        bytes.len(),
                        t0.elapsed().as_micros()
                    );
                }
                Err(e) => {
                    if failing == 0 {
                        log::error!(
                            "[{label}] cannot save the RETAIN variables to {}: {e}; the file keeps the last good save (logged again when saves work)",
                            path.display()
                        );
                    }
                    failing += 1;
                }
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_damage_is_named() {
        let mut b = Vec::new();
        encode("abc", &[1, 2, 3, 4], &mut b);
        assert_eq!(decode("abc", &b, 4), Ok(&[1u8, 2, 3, 4][..]));
        let other = decode("xyz", &b, 4).unwrap_err();
        assert!(
            other.contains("another build") && other.contains("abc"),
            "{other}"
        );
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(decode("abc", &c, 4).is_err(), "flipped byte {i} accepted");
        }
        assert!(decode("abc", &b[..b.len() - 1], 4).is_err());
        assert!(decode("abc", b"", 4).unwrap_err().contains("corrupt"));
        assert!(decode("abc", &b, 5).unwrap_err().contains("wrong length"));
    }

    #[test]
    fn config_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("retain-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("prog.conf");
        std::fs::write(&p, "# saves\nretain_period_ms = 250\n").unwrap();
        assert_eq!(parse_config(&p), Ok(Some(250)));
        std::fs::write(&p, "\nretain_period = 250\n").unwrap();
        let e = parse_config(&p).unwrap_err();
        assert!(
            e.contains("prog.conf:2") && e.contains("retain_period"),
            "{e}"
        );
        std::fs::write(&p, "retain_period_ms = soon\n").unwrap();
        assert!(parse_config(&p).unwrap_err().contains("prog.conf:1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
