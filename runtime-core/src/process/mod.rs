//! Process creation: the parent side ([`spawn`]), the re-exec'd init ([`init`]), their
//! protocol ([`sync`]), and the pieces init applies to itself (console, user, execve).

pub mod binary;
pub mod cgroup_join;
pub mod console;
mod exec_init;
pub mod execve;
pub mod init;
pub mod spawn;
pub mod sync;
#[cfg(test)]
mod tests_seccomp;
pub mod user;
