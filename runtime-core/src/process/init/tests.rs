use super::*;

fn sys(errno: i32) -> SysError {
    SysError::new("mount", "x", std::io::Error::from_raw_os_error(errno))
}

/// Issue 15: init's errors travelled as a flat string, so a configuration error
/// only init can detect reached containerd as INTERNAL.
#[test]
fn init_errors_say_whose_fault_they_are() {
    let missing_source = InitError::Rootfs(rootfs::RootfsError::Mount {
        dest: "/data".into(),
        typ: "bind".into(),
        source: sys(c::ENOENT),
    });
    assert_eq!(missing_source.kind(), ErrorKind::InvalidArgument);
    let busy = InitError::Rootfs(rootfs::RootfsError::Mount {
        dest: "/data".into(),
        typ: "bind".into(),
        source: sys(c::EBUSY),
    });
    assert_eq!(busy.kind(), ErrorKind::Internal);
    let cwd_is_a_file = InitError::Sys("enter process.cwd", sys(c::ENOTDIR));
    assert_eq!(cwd_is_a_file.kind(), ErrorKind::InvalidArgument);
    let no_program = InitError::Exec(execve::ExecError::NotFound("nope".into()));
    assert_eq!(no_program.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        InitError::Sys("set user", sys(c::EPERM)).kind(),
        ErrorKind::Internal
    );
    // The kind survives the trip to the runtime and decides the error's kind there.
    let e = crate::Error::Spawn(super::super::spawn::SpawnError::Init {
        message: missing_source.to_string(),
        kind: missing_source.kind(),
    });
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}
