//! A blocking CRI client: tonic's generated `RuntimeServiceClient` and
//! `ImageServiceClient` (crate runrs-cri-proto) over containerd's unix socket, driven by
//! a private single-threaded tokio runtime so the tests stay synchronous.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hyper_util::rt::TokioIo;
use runrs_cri_proto::v1::image_service_client::ImageServiceClient;
use runrs_cri_proto::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long one CRI call may take before the test gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one CRI endpoint.
pub struct Cri {
    tokio: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    socket: PathBuf,
}

impl Cri {
    /// Connects to the gRPC server on unix socket `socket` (a lazy channel: the first
    /// call connects, and a restarted server is reconnected to).
    pub fn connect(socket: &Path) -> Result<Self> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime for the CRI client")?;
        let path = socket.to_path_buf();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel = {
            let _guard = tokio.enter();
            Endpoint::try_from("http://cri.invalid")
                .context("CRI endpoint")?
                .connect_timeout(Duration::from_secs(10))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let s = tokio::net::UnixStream::connect(&path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(s))
                    }
                }))
        };
        Ok(Self {
            tokio,
            runtime: RuntimeServiceClient::new(channel.clone()),
            image: ImageServiceClient::new(channel),
            socket: socket.to_path_buf(),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs one RuntimeService call; the error is the gRPC status as is (boxed) (tests that
    /// expect a failure look at its code and message).
    pub fn rt_status<T, F, Fut>(&self, what: &str, f: F) -> Result<Result<T, Box<tonic::Status>>>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let c = self.runtime.clone();
        self.tokio
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, f(c)).await })
            .map_err(|_| anyhow!("CRI {what}: no answer in {CALL_TIMEOUT:?}"))
            .map(|r| r.map(tonic::Response::into_inner).map_err(Box::new))
    }

    /// Runs one RuntimeService call that must succeed.
    pub fn rt<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt_status(what, f)?
            .map_err(|s| anyhow!("CRI {what}: {:?}: {}", s.code(), s.message()))
    }

    /// Runs one ImageService call that must succeed.
    pub fn img<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(ImageServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let c = self.image.clone();
        self.tokio
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, f(c)).await })
            .map_err(|_| anyhow!("CRI {what}: no answer in {CALL_TIMEOUT:?}"))?
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow!("CRI {what}: {:?}: {}", s.code(), s.message()))
    }
}
