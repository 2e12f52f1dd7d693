//! RDT statistics: the schemata in force and the monitoring counters per L3 domain.

use super::*;

/// Monitoring data of one L3 domain (`mon_data/mon_L3_<id>`); None where the kernel
/// reports "Unavailable" or the feature is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonDomain {
    /// Domain id (the cache id).
    pub id: u32,
    /// Bytes of L3 occupied by the group's tasks.
    pub llc_occupancy: Option<u64>,
    /// Total memory bandwidth counter, bytes.
    pub mbm_total_bytes: Option<u64>,
    /// Local memory bandwidth counter, bytes.
    pub mbm_local_bytes: Option<u64>,
}

/// RDT statistics of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The control group's schemata lines.
    pub schemata: Vec<String>,
    /// The root group's schemata lines (the host's full allocation).
    pub root_schemata: Vec<String>,
    /// Per-domain monitoring data of the container's own group: its monitoring group,
    /// or the control group it created. Empty for a shared group without monitoring.
    pub monitoring: Vec<MonDomain>,
}

/// Read the container's RDT statistics.
pub fn stats(st: &RdtState) -> Result<Stats, RdtError> {
    let rc = Resctrl::at(&st.root, false);
    let lines = |p: &Path| -> Result<Vec<String>, RdtError> {
        let s = std::fs::read_to_string(p).map_err(|e| rc.io("read", p, e))?;
        Ok(s.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    };
    let mut out = Stats {
        schemata: lines(&st.group.join("schemata"))?,
        root_schemata: lines(&st.root.join("schemata"))?,
        monitoring: Vec::new(),
    };
    let own = st
        .mon_group
        .clone()
        .or_else(|| st.created_group.then(|| st.group.clone()));
    let Some(own) = own else {
        return Ok(out);
    };
    let dir = own.join("mon_data");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut domains = BTreeMap::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("mon_L3_")
            .and_then(|i| i.parse::<u32>().ok())
        else {
            continue;
        };
        let read = |f: &str| {
            std::fs::read_to_string(e.path().join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        domains.insert(
            id,
            MonDomain {
                id,
                llc_occupancy: read("llc_occupancy"),
                mbm_total_bytes: read("mbm_total_bytes"),
                mbm_local_bytes: read("mbm_local_bytes"),
            },
        );
    }
    out.monitoring = domains.into_values().collect();
    Ok(out)
}
