//! Id maps of a user namespace an unprivileged runtime writes: what it may write itself
//! (its own id, size 1; user_namespaces(7)) and the setuid helpers (newuidmap,
//! newgidmap from the uidmap package) that write the rest after checking /etc/subuid and
//! /etc/subgid. A leaf: used by the preflight checks and by spawn.

use std::path::PathBuf;

/// Whether `maps` maps only the id `own`, with size 1 (what an unprivileged process may
/// write itself).
pub fn own_id_only(maps: &[[u32; 3]], own: u32) -> bool {
    maps.len() == 1 && maps[0][1] == own && maps[0][2] == 1
}

/// The setuid id-mapping helper `name` (newuidmap, newgidmap): on PATH, else in /usr/bin.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_id_only_is_one_id_of_size_one() {
        assert!(own_id_only(&[[0, 1000, 1]], 1000));
        assert!(!own_id_only(&[[0, 1000, 2]], 1000));
        assert!(!own_id_only(&[[0, 1000, 1], [1, 100_000, 10]], 1000));
        assert!(tool("no-such-id-map-tool").is_none());
    }
}
