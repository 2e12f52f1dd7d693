//! Mount options: an fstab-style option string (a line of the corpus is one mount's
//! options, comma-separated, as in config.json's `options` and containerd's rootfs
//! mounts) through [`flags::parse`], [`flags::check_option`] and, for overlay data,
//! [`compact_lowerdirs`]. Properties: no flag is both set and cleared, every option is
//! either interpreted or passed on as data (in order), and a compacted `lowerdir=`
//! names the same layers.

use runrs_fuzzkit::sig;

use crate::bundle::compact_lowerdirs;
use crate::rootfs::flags;

fn check_options(line: &str) -> u64 {
    let options: Vec<String> = line.split(',').map(str::to_string).collect();
    let o = flags::parse(&options);
    assert_eq!(
        o.flags & o.cleared,
        0,
        "{options:?}: set and cleared: {o:?}"
    );
    assert_eq!(o.rec_set & o.rec_clear, 0, "{options:?}: {o:?}");
    let known = flags::known_options();
    let data: Vec<&String> = options
        .iter()
        .filter(|x| known.binary_search(&x.as_str()).is_err())
        .collect();
    assert_eq!(
        o.data.iter().collect::<Vec<_>>(),
        data,
        "{options:?}: data options"
    );
    for x in &options {
        let _ = flags::check_option(x);
        if let Some(p) = flags::propagation(x) {
            assert!(o.propagation.contains(&p), "{x}: propagation lost");
        }
    }
    let described = crate::sys::describe_mount_flags(o.flags);
    assert!(!described.is_empty());
    let data = o.data_string().unwrap_or_default();
    let compacted = compact_lowerdirs(&data).map(|(dir, short)| {
        assert_ne!(dir, "/", "{data}");
        check_compacted(&data, &dir, &short);
    });
    sig(&(
        o.flags.count_ones(),
        o.cleared.count_ones(),
        o.propagation.len().min(3),
        o.rec_set.count_ones(),
        o.tmpcopyup,
        o.data.len().min(4),
        compacted.is_some(),
    ))
}

/// Every layer of the compacted `lowerdir=` is the original one, or the original one
/// relative to `dir`; every other option is unchanged.
fn check_compacted(data: &str, dir: &str, short: &str) {
    let before: Vec<&str> = data.split(',').collect();
    let after: Vec<&str> = short.split(',').collect();
    assert_eq!(before.len(), after.len(), "{data} -> {short}");
    let mut first = true;
    for (b, a) in before.iter().zip(&after) {
        match (b.strip_prefix("lowerdir="), a.strip_prefix("lowerdir=")) {
            (Some(lb), Some(la)) => {
                // Only the first lowerdir= counts (overlayfs takes one; compaction
                // rewrites any later one with the first's layers).
                if first {
                    let layers: Vec<&str> = lb.split(':').collect();
                    let rel: Vec<&str> = la.split(':').collect();
                    assert_eq!(layers.len(), rel.len(), "{data} -> {short}");
                    for (l, r) in layers.iter().zip(&rel) {
                        assert!(
                            l == r || *l == format!("{dir}/{r}"),
                            "layer {l} became {r} under {dir}"
                        );
                    }
                }
                first = false;
            }
            (None, None) => assert_eq!(b, a),
            _ => panic!("{data} -> {short}: lowerdir moved"),
        }
    }
}

fn check(data: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(data);
    let mut s = 0u64;
    for line in text.lines() {
        s = s.wrapping_mul(31).wrapping_add(check_options(line));
    }
    s | 1
}

#[test]
fn fuzz_mount_options() {
    let mut words = flags::known_options();
    words.extend([
        "idmap",
        "ridmap",
        "lowerdir=",
        "upperdir=",
        "workdir=",
        "mode=755",
        "size=65536k",
        ",",
        ":",
        "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/",
        "/fs",
    ]);
    super::target("mount_options")
        .dict(&words)
        .max_len(8 * 1024)
        .run(check);
}
