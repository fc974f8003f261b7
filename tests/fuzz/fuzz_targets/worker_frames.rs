//! Bytes a worker (or anything on its socket) sends the supervisor, read as
//! the supervisor reads them: frame after frame until the end or an error.
//! No panic, no hang, no frame beyond MAX_FRAME; every rejection says what
//! was wrong; a result frame never decodes to success unless it says "ok".
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use openplc_runtime::python::CallOutcome;
use openplc_runtime::isolation::{MAX_FRAME, decode_result, read_frame};

fuzz_target!(|data: &[u8]| {
    let mut stream = Cursor::new(data);
    loop {
        match read_frame(&mut stream) {
            Ok(None) => break,
            Ok(Some((kind, payload))) => {
                assert!(payload.len() < MAX_FRAME);
                if kind == b'R' {
                    let (_, outcome) = decode_result(&payload);
                    let says_ok = payload.split(|&b| b == 0).nth(1) == Some(&b"ok"[..]);
                    assert_eq!(outcome == CallOutcome::Ok, says_ok);
                }
            }
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("bad frame length") || text.starts_with("frame of"),
                    "{text}"
                );
                break;
            }
        }
    }
});
