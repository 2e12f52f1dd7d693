use super::*;

fn spec(env: &[&str]) -> Spec {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": env},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]
    }))
    .expect("spec")
}

#[test]
fn prepare_mounts_dir_and_sets_env_like_runc() {
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let mut s = spec(&["PATH=/bin", "NOTIFY_SOCKET=relative"]);
    let e = prepare(&mut s.clone(), dir.path()).expect_err("relative");
    assert!(e.to_string().contains("NOTIFY_SOCKET \"relative\""), "{e}");
    s = spec(&["PATH=/bin"]);
    prepare(&mut s, dir.path()).expect("prepare");
    assert!(dir.path().join(SOCKET_DIR).is_dir());
    let m = s
        .mounts()
        .as_ref()
        .expect("mounts")
        .last()
        .expect("one")
        .clone();
    assert_eq!(m.destination(), Path::new("/run/notify"));
    assert_eq!(
        m.source().as_deref(),
        Some(dir.path().join("notify").as_path())
    );
    assert!(m
        .options()
        .as_ref()
        .expect("opts")
        .contains(&"ro".to_string()));
    let env = s
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .expect("env");
    assert_eq!(
        env,
        vec!["PATH=/bin", "NOTIFY_SOCKET=/run/notify/notify.sock"]
    );
}

#[test]
fn container_path_honours_the_containers_own_value() {
    let s = spec(&["NOTIFY_SOCKET=/run/systemd/notify"]);
    assert_eq!(
        container_path(&s).expect("path"),
        Path::new("/run/systemd/notify")
    );
    assert!(container_path(&spec(&["NOTIFY_SOCKET=/sock"])).is_err());
}

#[test]
fn messages() {
    let m = Message::parse(b"STATUS=warming up\nX_CUSTOM=1\nREADY=1\nMAINPID=7\nBARRIER=1");
    assert!(m.ready);
    assert_eq!(m.status.as_deref(), Some("warming up"));
    assert_eq!(
        m.lines,
        vec![
            ("STATUS".into(), "warming up".into()),
            ("READY".into(), "1".into()),
            ("MAINPID".into(), "7".into())
        ]
    );
    assert!(!Message::parse(b"READY=0").ready);
    assert_eq!(
        Message::parse(b"EXTEND_TIMEOUT_USEC=5000000").extend_usec,
        Some(5_000_000)
    );
}

#[test]
#[allow(clippy::disallowed_methods, reason = "test scratch directory")]
fn translates_nspid_with_a_fake_proc() {
    let proc = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    for (host, nspid) in [(4100, "4100\t1"), (4101, "4101\t7"), (4102, "4102")] {
        let d = proc.path().join(host.to_string());
        std::fs::create_dir(&d).expect("dir");
        std::fs::write(d.join("status"), format!("Name:\tsh\nNSpid:\t{nspid}\n")).expect("w");
    }
    let c = [4100, 4101, 4102];
    assert_eq!(translate_pid(7, &c, proc.path()), Some(4101));
    assert_eq!(translate_pid(1, &c, proc.path()), Some(4100));
    assert_eq!(translate_pid(4102, &c, proc.path()), Some(4102));
    assert_eq!(translate_pid(9, &c, proc.path()), None);
}

#[test]
fn annotation_opt_in() {
    let mut s = spec(&[]);
    assert!(!requested(&s).expect("absent"));
    for (v, want) in [("true", Some(true)), ("false", Some(false)), ("1", None)] {
        let mut a = std::collections::HashMap::new();
        a.insert(ANNOTATION.to_string(), v.to_string());
        s.set_annotations(Some(a));
        assert_eq!(requested(&s).ok(), want, "{v}");
    }
}

#[test]
fn host_addresses() {
    assert!(HostSocket::parse("/run/systemd/notify").is_ok());
    assert!(HostSocket::parse("@/org/freedesktop/systemd1/notify/1").is_ok());
    let e = HostSocket::parse("notify")
        .expect_err("relative")
        .to_string();
    assert!(e.contains("NOTIFY_SOCKET \"notify\""), "{e}");
}

#[test]
fn relays_and_translates_without_a_container() {
    // A listener bound like create/start would, a "container" that is this test,
    // and a host socket that records what it receives.
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let mut s = spec(&[]);
    prepare(&mut s, dir.path()).expect("prepare");
    let l = Listener::bind(dir.path(), &s)
        .expect("bind")
        .expect("prepared");
    let host_path = dir.path().join("host.sock");
    let host = UnixDatagram::bind(&host_path).expect("host");
    let me = std::process::id() as i32;
    let sender = UnixDatagram::unbound().expect("sock");
    let target = dir.path().join("notify/notify.sock");
    sender.send_to(b"STATUS=starting", &target).expect("send");
    sender
        .send_to(format!("READY=1\nMAINPID={me}").as_bytes(), &target)
        .expect("send");
    // A pidfd of a process that stays alive for the test: ourselves.
    let pidfd = sys::pidfd_open(me).expect("pidfd");
    let hs = HostSocket::parse(host_path.to_str().expect("utf8")).expect("host");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        // Everything that arrives within a second of the last message.
        host.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        while let Ok(n) = host.recv(&mut b) {
            got.push(String::from_utf8_lossy(&b[..n]).into_owned());
        }
        got
    });
    let ready = l
        .wait_ready(&WaitFor {
            id: "runrs-ops-unit",
            init_pid: 1,
            init: pidfd.as_fd(),
            cgroup_pids: &|| vec![me],
            host: Some(&hs),
            timeout: Some(Duration::from_secs(30)),
            proc_root: Path::new("/proc"),
        })
        .expect("ready");
    assert_eq!(
        ready,
        Ready {
            main_pid: me,
            status: Some("starting".into())
        }
    );
    let got = reader.join().expect("reader");
    assert_eq!(got[0], "STATUS=starting");
    assert_eq!(got[1], format!("READY=1\nMAINPID={me}"));
    // No sd_notify barrier (runc 1.1 sends none): nothing follows READY and MAINPID.
    assert_eq!(got.len(), 2, "{got:?}");
}

#[test]
fn times_out() {
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let mut s = spec(&[]);
    prepare(&mut s, dir.path()).expect("prepare");
    let l = Listener::bind(dir.path(), &s)
        .expect("bind")
        .expect("prepared");
    let pidfd = sys::pidfd_open(std::process::id() as i32).expect("pidfd");
    let e = l
        .wait_ready(&WaitFor {
            id: "runrs-ops-unit",
            init_pid: 1,
            init: pidfd.as_fd(),
            cgroup_pids: &Vec::new,
            host: None,
            timeout: Some(Duration::from_millis(50)),
            proc_root: Path::new("/proc"),
        })
        .expect_err("times out");
    assert!(matches!(e, NotifyError::Timeout { .. }), "{e}");
}

#[test]
fn the_ready_timeout_annotation_overrides_the_default() {
    let with = |v: &str| {
        let mut s = spec(&[]);
        s.set_annotations(Some(
            [(TIMEOUT_ANNOTATION.to_string(), v.to_string())].into(),
        ));
        ready_timeout(&s)
    };
    assert_eq!(ready_timeout(&spec(&[])).expect("none"), None);
    assert_eq!(with("5").expect("5"), Some(Some(Duration::from_secs(5))));
    assert_eq!(with("0").expect("0"), Some(None));
    let e = with("5s").expect_err("5s");
    assert!(matches!(e, NotifyError::BadTimeout(_)), "{e}");
    assert!(e.to_string().contains(TIMEOUT_ANNOTATION), "{e}");
}
