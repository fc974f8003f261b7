//! The frames between the supervisor and its worker processes, and this
//! process's one writer of them (a worker's or the zygote's).
//!
//! On a worker's control socket (a stream): a frame is a length (u32 LE,
//! counting the kind byte), a kind byte and a payload:
//!
//! | frame | direction | payload |
//! |---|---|---|
//! | `C` | supervisor → worker | function name (`init`, `start_loop`, …) |
//! | `R` | worker → supervisor | `func \0 ok|missing|raised \0 text` |
//! | `L` | worker → supervisor | level digit (1 error … 4 debug) + message |
//! | `S` | worker → supervisor | a plugin called `request_plc_stop` |
//! | `M` | worker → supervisor | the stdlib modules it imported, one per line (for the zygote) |
//!
//! The zygote's channel carries the same `L` payloads, one per packet (see
//! `zygote`).

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use crate::python::CallOutcome;

/// The result frame's name for the import, which is no lifecycle call.
pub(crate) const IMPORT: &str = "import";
/// Largest frame accepted (a traceback or a log record); larger ones mean the
/// peer is broken.
pub const MAX_FRAME: usize = 4 << 20;
/// Longest log record sent whole; a longer one is cut, with a note, so that
/// its frame stays under [`MAX_FRAME`].
const MAX_LOG: usize = MAX_FRAME - 4096;

pub(crate) fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Logs an `L` frame (level digit + message) of a worker or the zygote in
/// this process's log, the message after `prefix`.
pub(crate) fn log_frame(prefix: &str, p: &[u8]) {
    let level = match p.first() {
        Some(b'1') => log::Level::Error,
        Some(b'2') => log::Level::Warn,
        Some(b'4') => log::Level::Debug,
        _ => log::Level::Info,
    };
    let msg = String::from_utf8_lossy(p.get(1..).unwrap_or_default());
    log::log!(level, "{prefix}{msg}");
}

/// Reads one control-channel frame (length, kind, payload): `Ok(None)` at a
/// clean end of stream; a length of 0 or over [`MAX_FRAME`], or a stream that
/// ends inside a frame, is an error saying so. Public for the fuzz target.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "bad frame length {len} (1 to {MAX_FRAME} bytes)"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| {
        std::io::Error::new(e.kind(), format!("frame of {len} bytes cut short: {e}"))
    })?;
    let kind = buf.remove(0);
    Ok(Some((kind, buf)))
}

pub(crate) fn encode_result(func: &str, outcome: &CallOutcome) -> Vec<u8> {
    let (status, text) = match outcome {
        CallOutcome::Ok => ("ok", ""),
        CallOutcome::Missing => ("missing", ""),
        CallOutcome::Raised(t) => ("raised", t.as_str()),
    };
    format!("{func}\0{status}\0{text}").into_bytes()
}

/// A result frame's payload: the call's name and how it ended. A status the
/// protocol does not know becomes a failure that says so (never a success).
/// Public for the fuzz target.
pub fn decode_result(payload: &[u8]) -> (String, CallOutcome) {
    let text = String::from_utf8_lossy(payload);
    let mut parts = text.splitn(3, '\0');
    let func = parts.next().unwrap_or_default().to_string();
    let status = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().to_string();
    let outcome = match status {
        "ok" => CallOutcome::Ok,
        "missing" => CallOutcome::Missing,
        "raised" => CallOutcome::Raised(rest),
        other => CallOutcome::Raised(format!(
            "the worker sent a result with an unknown status `{}`",
            other.escape_debug()
        )),
    };
    (func, outcome)
}

/// Where this process's frames go: a worker's control socket (a stream of
/// length-prefixed frames), or the zygote's packet channel.
pub(crate) enum Sink {
    None,
    Stream(UnixStream),
    Packet(RawFd),
}

/// The process's one writer to its supervisor: log records (from any plugin
/// thread), stop requests and call results all go through it, a whole frame
/// at a time, so frames never interleave (a torn frame would make the
/// supervisor take a healthy worker for dead). A forked worker switches it
/// from the zygote's channel to its own socket before running anything else.
pub(crate) static OUT: Mutex<Sink> = Mutex::new(Sink::None);

/// Sends one frame to the supervisor.
pub(crate) fn send(kind: u8, payload: &[u8]) {
    let mut out = OUT.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *out {
        Sink::None => {}
        Sink::Stream(s) => {
            let _ = write_frame(s, kind, payload);
        }
        Sink::Packet(fd) => {
            let mut p = Vec::with_capacity(payload.len() + 1);
            p.push(kind);
            p.extend_from_slice(payload);
            let _ = crate::sys::send_packet(*fd, &p, None);
        }
    }
}

/// Sends this process's log records to the supervisor's log.
struct ForwardLogger;

static FORWARD: ForwardLogger = ForwardLogger;

impl log::Log for ForwardLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let digit = match r.level() {
            log::Level::Error => b'1',
            log::Level::Warn => b'2',
            log::Level::Info => b'3',
            _ => b'4',
        };
        let mut payload = vec![digit];
        let text = r.args().to_string();
        if text.len() < MAX_LOG {
            payload.extend_from_slice(text.as_bytes());
        } else {
            // A frame over MAX_FRAME would make the supervisor take this
            // healthy process for a broken one: the record is cut instead.
            let mut cut = MAX_LOG;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            payload.extend_from_slice(&text.as_bytes()[..cut]);
            payload.extend_from_slice(
                format!(" [... {} more bytes cut]", text.len() - cut).as_bytes(),
            );
        }
        send(b'L', &payload);
    }
    fn flush(&self) {}
}

/// Logs of this process (a worker or the zygote) go to the supervisor.
pub(crate) fn forward_logs() {
    let _ = log::set_logger(&FORWARD);
    log::set_max_level(log::LevelFilter::Debug);
}

/// Frames of this process go to the zygote channel `fd`.
pub(crate) fn send_to_packets(fd: RawFd) {
    *OUT.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Packet(fd);
}
