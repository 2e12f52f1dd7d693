//! Task events to containerd, in the order they happen (DESIGN.md "Events"): one
//! forwarder task owns the ttrpc connection and sends each envelope only after the
//! previous one was accepted, reconnecting when containerd restarts. `flush` lets the
//! shim exit without losing queued events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_shim_protos::api::ForwardRequest;
use containerd_shim_protos::events::task;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::Message;
#[cfg(test)]
use containerd_shim_protos::protobuf::MessageFull;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::ttrpc;
use tokio::sync::{mpsc, oneshot};

enum Cmd {
    Publish(Box<Envelope>),
    Flush(oneshot::Sender<()>),
}

/// Sender side of the event queue.
#[derive(Clone)]
pub struct Events {
    sink: Sink,
    namespace: String,
}

#[derive(Clone)]
enum Sink {
    /// To the forwarder task.
    Forward(mpsc::UnboundedSender<Cmd>),
    /// Into a test's log.
    #[cfg(test)]
    Record(Recording),
}

/// Every event queued through an [`Events`] made by [`Events::recording`]: topic and
/// encoded message, in order, next to whatever else a test logs there.
#[cfg(test)]
pub type Recording = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A protobuf timestamp for `t`.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

/// A message with its protobuf full name, the bare type URL containerd's typeurl
/// expects. Spelled out rather than read from `MessageFull::descriptor()`: building the
/// descriptors parses every file of the proto crate into the heap (≈520 KiB per shim,
/// measured), for one string.
pub trait TypeUrl: Message {
    const TYPE_URL: &'static str;
}

macro_rules! type_urls {
    ($($t:ty => $name:literal,)*) => {
        $(impl TypeUrl for $t {
            const TYPE_URL: &'static str = $name;
        })*
        /// Every message with a spelled-out name (checked against the descriptors).
        #[cfg(test)]
        fn spelled_out() -> Vec<(&'static str, String)> {
            vec![$(($name, <$t as MessageFull>::descriptor().full_name().to_string()),)*]
        }
    };
}

type_urls! {
    task::TaskCreate => "containerd.events.TaskCreate",
    task::TaskStart => "containerd.events.TaskStart",
    task::TaskDelete => "containerd.events.TaskDelete",
    task::TaskIO => "containerd.events.TaskIO",
    task::TaskExit => "containerd.events.TaskExit",
    task::TaskOOM => "containerd.events.TaskOOM",
    task::TaskExecAdded => "containerd.events.TaskExecAdded",
    task::TaskExecStarted => "containerd.events.TaskExecStarted",
    task::TaskPaused => "containerd.events.TaskPaused",
    task::TaskResumed => "containerd.events.TaskResumed",
    task::TaskCheckpointed => "containerd.events.TaskCheckpointed",
    containerd_shim_protos::shim::oci::ProcessDetails => "containerd.runc.v1.ProcessDetails",
    containerd_shim_protos::cgroups::metrics::Metrics => "io.containerd.cgroups.v1.Metrics",
    containerd_shim_protos::cgroups_v2::metrics::Metrics => "io.containerd.cgroups.v2.Metrics",
}

/// An Any with the bare type name containerd's typeurl expects.
pub fn to_any<M: TypeUrl>(m: &M) -> Any {
    Any {
        type_url: M::TYPE_URL.to_string(),
        value: m.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

impl Events {
    /// Start the forwarder for containerd's ttrpc socket `address`.
    pub fn start(address: String, namespace: String) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward(address, rx));
        Events {
            sink: Sink::Forward(tx),
            namespace,
        }
    }

    /// Events that are recorded into `log`, synchronously, instead of being sent (tests).
    #[cfg(test)]
    pub fn recording(log: Recording) -> Events {
        Events {
            sink: Sink::Record(log),
            namespace: "test".into(),
        }
    }

    /// Queue an event.
    pub fn publish<M: TypeUrl>(&self, topic: &str, event: &M) {
        tracing::debug!(topic, "event");
        let env = Envelope {
            timestamp: Some(timestamp(SystemTime::now())).into(),
            namespace: self.namespace.clone(),
            topic: topic.to_string(),
            event: Some(to_any(event)).into(),
            ..Default::default()
        };
        match &self.sink {
            Sink::Forward(tx) => {
                let _ = tx.send(Cmd::Publish(Box::new(env)));
            }
            #[cfg(test)]
            Sink::Record(log) => log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((env.topic.clone(), env.event.value.clone())),
        }
    }

    /// Wait (bounded) until every event queued so far was sent.
    pub async fn flush(&self, limit: Duration) {
        #[cfg_attr(not(test), allow(clippy::infallible_destructuring_match))]
        let sink = match &self.sink {
            Sink::Forward(tx) => tx,
            #[cfg(test)]
            Sink::Record(_) => return,
        };
        let (tx, rx) = oneshot::channel();
        if sink.send(Cmd::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }
}

async fn connect(address: &str) -> Option<EventsClient> {
    let addr = if address.contains("://") {
        address.to_string()
    } else {
        format!("unix://{address}")
    };
    match Client::connect(&addr).await {
        Ok(c) => Some(EventsClient::new(c)),
        Err(e) => {
            tracing::warn!("connect to containerd at {addr}: {e:?}");
            None
        }
    }
}

async fn forward(address: String, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut client: Option<EventsClient> = None;
    while let Some(cmd) = rx.recv().await {
        let env = match cmd {
            Cmd::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            Cmd::Publish(env) => env,
        };
        let req = ForwardRequest {
            envelope: Some(*env).into(),
            ..Default::default()
        };
        for attempt in 0..5u64 {
            if client.is_none() {
                client = connect(&address).await;
            }
            if let Some(c) = &client {
                match c
                    .forward(ttrpc::context::with_timeout(5_000_000_000), &req)
                    .await
                {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("forward event {}: {e:?}", req.envelope.topic);
                        client = None;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_out_type_urls_are_the_descriptor_names() {
        for (spelled, real) in spelled_out() {
            assert_eq!(spelled, real);
        }
    }

    #[test]
    fn any_carries_the_name_and_the_encoded_message() {
        let e = task::TaskPaused {
            container_id: "c1".into(),
            ..Default::default()
        };
        let any = to_any(&e);
        assert_eq!(any.type_url, "containerd.events.TaskPaused");
        assert_eq!(
            task::TaskPaused::parse_from_bytes(&any.value).expect("parse"),
            e
        );
    }
}
