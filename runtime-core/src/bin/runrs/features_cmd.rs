//! `runrs features`: print the OCI features document (runtime-spec features.md), as
//! `runc features` does.

/// Print the document; always succeeds.
pub fn print() -> anyhow::Result<i32> {
    println!("{}", runtime_core::features_pretty());
    Ok(0)
}
