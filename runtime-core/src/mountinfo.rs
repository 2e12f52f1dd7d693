//! Fields of /proc/<pid>/mountinfo (proc_pid_mountinfo(5)). A leaf: the cgroup hierarchy
//! reader and the rootfs code both read mount points from it.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// A mountinfo path field with its octal escapes undone (`\040` space, `\011` tab,
/// `\012` newline, `\134` backslash), byte for byte.
pub(crate) fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|x| (b'0'..=b'7').contains(x)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, x| a * 8 + u32::from(x - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (x, _) => {
                out.push(x);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_undone() {
        assert_eq!(unescape("/a\\040b\\011c"), PathBuf::from("/a b\tc"));
        assert_eq!(unescape("/x\\134y"), PathBuf::from("/x\\y"));
        assert_eq!(unescape("/plain\\04"), PathBuf::from("/plain\\04"));
    }
}
