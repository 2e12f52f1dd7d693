//! systemd's Manager interface over D-Bus (org.freedesktop.systemd1(5)) with zbus:
//! the system bus, or systemd's private socket when no bus daemon runs (as runc's
//! go-systemd does), or a user's instance (`user.rs`). Every call here blocks the
//! calling thread (runtime-core is synchronous; zbus runs its connection on its own
//! small executor) and waits for the unit's job with a timeout, so a caller never hangs
//! on a stuck systemd.
//!
//! Only binaries that opt in link this (the runrs CLI, through
//! [`super::call::link_dbus`]); the shim reaches systemd through that binary (`call.rs`).

use std::time::Duration;

use futures_lite::StreamExt;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::call::{Call, Request};
use super::{Prop, UserBus};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// systemd's own socket, for a host with systemd but no D-Bus daemon.
const PRIVATE: &str = "unix:path=/run/systemd/private";
/// How long a job (start, stop) may take (runc waits 30 s too).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong talking to systemd.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// Neither the system bus nor the private socket answered.
    #[error("connect to systemd: system bus: {bus}; {PRIVATE}: {private}")]
    Connect {
        /// The system bus' error.
        bus: String,
        /// The private socket's error.
        private: String,
    },
    /// The user's instance did not answer.
    #[error("connect to the user's systemd at {address} as uid {uid}: {reason}")]
    ConnectUser {
        /// The bus address.
        address: String,
        /// The uid authenticated as.
        uid: u32,
        /// zbus' error.
        reason: String,
    },
    /// A method call failed.
    #[error("{method}: {source}")]
    Call {
        /// The Manager method.
        method: &'static str,
        /// zbus' error (systemd's error name and message for a method error).
        #[source]
        source: Box<zbus::Error>,
    },
    /// The job ended in something other than "done".
    #[error("the systemd job ended with result {0:?} (see `journalctl -u <unit>`)")]
    Job(String),
    /// The job did not end in time.
    #[error("no answer from systemd's job within {}s", JOB_TIMEOUT.as_secs())]
    Timeout,
}

fn call_err(method: &'static str) -> impl FnOnce(zbus::Error) -> DbusError {
    move |source| DbusError::Call {
        method,
        source: Box::new(source),
    }
}

/// The name of a D-Bus error reply, if the error is one.
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

async fn connect(user: Option<&UserBus>) -> Result<zbus::Connection, DbusError> {
    if let Some(u) = user {
        let conn = match zbus::connection::Builder::address(u.address.as_str()) {
            Ok(b) if u.p2p => b.p2p().user_id(u.uid).build().await,
            Ok(b) => b.user_id(u.uid).build().await,
            Err(e) => Err(e),
        };
        return conn.map_err(|e| DbusError::ConnectUser {
            address: u.address.clone(),
            uid: u.uid,
            reason: e.to_string(),
        });
    }
    let bus = match zbus::connection::Builder::system() {
        Ok(b) => b.build().await,
        Err(e) => Err(e),
    };
    let bus_err = match bus {
        Ok(c) => return Ok(c),
        Err(e) => e.to_string(),
    };
    let private = match zbus::connection::Builder::address(PRIVATE) {
        Ok(b) => b.p2p().build().await,
        Err(e) => Err(e),
    };
    private.map_err(|e| DbusError::Connect {
        bus: bus_err,
        private: e.to_string(),
    })
}

async fn manager(conn: &zbus::Connection) -> Result<zbus::Proxy<'static>, DbusError> {
    zbus::Proxy::new(conn, DEST, PATH, MANAGER)
        .await
        .map_err(call_err("create the Manager proxy"))
}

fn value(p: &Prop) -> Value<'static> {
    match p.clone() {
        Prop::Bool(b) => Value::from(b),
        Prop::U64(v) => Value::from(v),
        Prop::Str(s) => Value::from(s),
        Prop::U32s(v) => Value::from(v),
        Prop::Bytes(v) => Value::from(v),
        Prop::DeviceAllow(v) => Value::from(v),
    }
}

fn values(props: &[(String, Prop)]) -> Vec<(&str, Value<'static>)> {
    props.iter().map(|(k, v)| (k.as_str(), value(v))).collect()
}

/// Carry out one request: ManagerCgroup's answer, or empty.
pub(super) fn run(r: &Request) -> Result<String, DbusError> {
    let user = r.user.as_ref();
    match &r.call {
        Call::ManagerCgroup => manager_cgroup(user),
        Call::Start { name, props, reuse } => start_unit(user, name, props, *reuse).map(empty),
        Call::Set { name, props } => set_properties(user, name, props).map(empty),
        Call::Stop { name } => stop_unit(user, name).map(empty),
    }
}

fn empty(_: ()) -> String {
    String::new()
}

/// The Manager's ControlGroup property.
fn manager_cgroup(user: Option<&UserBus>) -> Result<String, DbusError> {
    zbus::block_on(async {
        let conn = connect(user).await?;
        let what = "get the Manager's ControlGroup";
        // Uncached: a cached proxy would fetch every Manager property first.
        let m: zbus::Proxy<'_> = zbus::proxy::Builder::new(&conn)
            .destination(DEST)
            .and_then(|b| b.path(PATH))
            .and_then(|b| b.interface(MANAGER))
            .map_err(call_err(what))?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(call_err(what))?;
        m.get_property::<String>("ControlGroup")
            .await
            .map_err(call_err(what))
    })
}

/// Run a Manager method that returns a job, and wait for the job to end.
async fn run_job<B>(
    conn: &zbus::Connection,
    method: &'static str,
    body: &B,
) -> Result<(), DbusError>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    let m = manager(conn).await?;
    // Signals flow only to subscribed clients; subscribe and listen before the call
    // so the job's end cannot be missed.
    let mut removed = m
        .receive_signal("JobRemoved")
        .await
        .map_err(call_err("listen for JobRemoved"))?;
    m.call_method("Subscribe", &())
        .await
        .map_err(call_err("Subscribe"))?;
    let job: OwnedObjectPath = m.call(method, body).await.map_err(call_err(method))?;
    let wait = async {
        while let Some(msg) = removed.next().await {
            let Ok((_id, path, _unit, result)) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == job {
                return if result == "done" {
                    Ok(())
                } else {
                    Err(DbusError::Job(result))
                };
            }
        }
        Err(DbusError::Job("connection closed".into()))
    };
    let timeout = async {
        async_io::Timer::after(JOB_TIMEOUT).await;
        Err(DbusError::Timeout)
    };
    futures_lite::future::or(wait, timeout).await
}

/// StartTransientUnit in "replace" mode. A failed leftover of the same name (a
/// container that was not deleted) is reset and the start tried once more; an
/// existing unit is used as it is when `reuse` (slices: kubelet-made parents).
fn start_unit(
    user: Option<&UserBus>,
    name: &str,
    props: &[(String, Prop)],
    reuse: bool,
) -> Result<(), DbusError> {
    zbus::block_on(async {
        let conn = connect(user).await?;
        let props = values(props);
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let body = (name, "replace", &props, &aux);
        match run_job(&conn, "StartTransientUnit", &body).await {
            Err(DbusError::Call { source, .. })
                if error_name(&source) == Some("org.freedesktop.systemd1.UnitExists") =>
            {
                if reuse {
                    return Ok(());
                }
                let m = manager(&conn).await?;
                // Only a unit that is not running may be reset; a running one is a
                // container of the same name: report the original error.
                let reset: Result<(), zbus::Error> = m.call("ResetFailedUnit", &(name,)).await;
                if reset.is_err() {
                    return Err(DbusError::Call {
                        method: "StartTransientUnit",
                        source,
                    });
                }
                run_job(&conn, "StartTransientUnit", &body).await
            }
            other => other,
        }
    })
}

/// SetUnitProperties with runtime=true (the change does not survive a reboot, like
/// the unit itself).
fn set_properties(
    user: Option<&UserBus>,
    name: &str,
    props: &[(String, Prop)],
) -> Result<(), DbusError> {
    zbus::block_on(async {
        let conn = connect(user).await?;
        let m = manager(&conn).await?;
        let props = values(props);
        m.call::<_, _, ()>("SetUnitProperties", &(name, true, &props))
            .await
            .map_err(call_err("SetUnitProperties"))
    })
}

/// StopUnit and wait for it; a unit that does not exist (any more) is fine. A failed
/// unit is reset so that nothing of it is left in systemd's list.
fn stop_unit(user: Option<&UserBus>, name: &str) -> Result<(), DbusError> {
    zbus::block_on(async {
        let conn = connect(user).await?;
        let res = match run_job(&conn, "StopUnit", &(name, "replace")).await {
            Err(DbusError::Call { source, .. })
                if error_name(&source) == Some("org.freedesktop.systemd1.NoSuchUnit") =>
            {
                Ok(())
            }
            other => other,
        };
        if let Ok(m) = manager(&conn).await {
            let _: Result<(), zbus::Error> = m.call("ResetFailedUnit", &(name,)).await;
        }
        res
    })
}
