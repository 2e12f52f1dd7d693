//! Signal names and numbers as `runrs kill` takes them (`9`, `KILL`, `SIGRTMIN+3`, …).
//! Property: whatever is accepted is a real signal (1..=SIGRTMAX) or the number 0 (the
//! liveness check), and each accepted name is also accepted with the other case and
//! with/without `SIG`.

use runrs_fuzzkit::{shape, sig};

use crate::container::parse_signal;

fn check(data: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(data);
    match parse_signal(&s) {
        Ok(n) => {
            assert!(
                (1..=crate::sys::sigrtmax()).contains(&n) || (n == 0 && s.parse::<i32>() == Ok(0)),
                "{s:?} was accepted as signal {n}"
            );
            if s.parse::<i32>().is_err() {
                let up = s.to_ascii_uppercase();
                let bare = up.strip_prefix("SIG").unwrap_or(&up);
                for alias in [bare.to_string(), format!("SIG{bare}"), bare.to_lowercase()] {
                    assert_eq!(parse_signal(&alias).ok(), Some(n), "{s:?} vs {alias:?}");
                }
            }
            sig(&n)
        }
        Err(e) => shape(&e.to_string()),
    }
}

#[test]
fn fuzz_signal() {
    super::target("signal")
        .dict(&[
            "SIG", "RTMIN", "RTMAX", "+", "-", "KILL", "TERM", "HUP", "USR1", "CHLD", "IOT",
        ])
        .max_len(64)
        .run(check);
}
