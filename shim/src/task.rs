//! containerd's Task API, as a ttrpc service: each request is decoded
//! (crate::translate), handed to the shim's verbs (crate::service) inside a span naming
//! the container and exec id, and the result encoded.

use async_trait::async_trait;
use containerd_shim_protos::api;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::ttrpc::{self, r#async::TtrpcContext};
use tracing::Instrument;

use crate::error::Result;
use crate::service::Service;
use crate::translate;

fn rpc<T>(r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        tracing::info!("request failed: {}", runtime_core::chain(&e));
        ttrpc::Error::from(e)
    })
}

/// The span of a request about container `id`, process `exec` ("" for the init).
fn span(rpc: &'static str, id: &str, exec: &str) -> tracing::Span {
    tracing::info_span!("task", rpc, id, exec)
}

fn empty(r: Result<()>) -> ttrpc::Result<api::Empty> {
    rpc(r.map(|()| api::Empty::default()))
}

#[async_trait]
impl Task for Service {
    async fn state(
        &self,
        _: &TtrpcContext,
        req: api::StateRequest,
    ) -> ttrpc::Result<api::StateResponse> {
        rpc(async {
            let (c, p) = self.process(&req.id, &req.exec_id).await?;
            let paused = self.paused(&c).await;
            Ok(translate::state(&c.bundle, &p, paused, req.exec_id.clone()))
        }
        .instrument(span("state", &req.id, &req.exec_id))
        .await)
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> ttrpc::Result<api::CreateTaskResponse> {
        let span = span("create", &req.id, "");
        rpc(async {
            let pid = self.create(translate::create(req)?).await?;
            Ok(api::CreateTaskResponse {
                pid: pid as u32,
                ..Default::default()
            })
        }
        .instrument(span)
        .await)
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        req: api::StartRequest,
    ) -> ttrpc::Result<api::StartResponse> {
        rpc(self
            .start(&req.id, &req.exec_id)
            .instrument(span("start", &req.id, &req.exec_id))
            .await
            .map(translate::started))
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> ttrpc::Result<api::DeleteResponse> {
        rpc(self
            .delete(&req.id, &req.exec_id)
            .instrument(span("delete", &req.id, &req.exec_id))
            .await
            .map(|(pid, exit)| translate::deleted(pid, exit)))
    }

    async fn pids(
        &self,
        _: &TtrpcContext,
        req: api::PidsRequest,
    ) -> ttrpc::Result<api::PidsResponse> {
        rpc(self
            .pids(&req.id)
            .instrument(span("pids", &req.id, ""))
            .await
            .map(|(pids, execs)| translate::pids(pids, &execs)))
    }

    async fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> ttrpc::Result<api::Empty> {
        empty(
            self.freeze(&req.id, true)
                .instrument(span("pause", &req.id, ""))
                .await,
        )
    }

    async fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> ttrpc::Result<api::Empty> {
        empty(
            self.freeze(&req.id, false)
                .instrument(span("resume", &req.id, ""))
                .await,
        )
    }

    async fn checkpoint(
        &self,
        _: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> ttrpc::Result<api::Empty> {
        empty(
            async { self.checkpoint(&req.id, translate::checkpoint(&req)?).await }
                .instrument(span("checkpoint", &req.id, ""))
                .await,
        )
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> ttrpc::Result<api::Empty> {
        empty(
            self.kill(&req.id, &req.exec_id, req.signal as i32, req.all)
                .instrument(span("kill", &req.id, &req.exec_id))
                .await,
        )
    }

    async fn exec(
        &self,
        _: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> ttrpc::Result<api::Empty> {
        empty(
            async { self.exec(&req.id, translate::exec(&req)?).await }
                .instrument(span("exec", &req.id, &req.exec_id))
                .await,
        )
    }

    async fn resize_pty(
        &self,
        _: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> ttrpc::Result<api::Empty> {
        empty(
            async {
                let (_, p) = self.process(&req.id, &req.exec_id).await?;
                let r = p.io.lock().await.resize(req.width, req.height);
                r
            }
            .instrument(span("resize_pty", &req.id, &req.exec_id))
            .await,
        )
    }

    async fn close_io(
        &self,
        _: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> ttrpc::Result<api::Empty> {
        empty(
            async {
                let (_, p) = self.process(&req.id, &req.exec_id).await?;
                p.io.lock().await.close_stdin();
                Ok(())
            }
            .instrument(span("close_io", &req.id, &req.exec_id))
            .await,
        )
    }

    async fn update(
        &self,
        _: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> ttrpc::Result<api::Empty> {
        empty(
            async { self.update(&req.id, translate::resources(&req)?).await }
                .instrument(span("update", &req.id, ""))
                .await,
        )
    }

    async fn wait(
        &self,
        _: &TtrpcContext,
        req: api::WaitRequest,
    ) -> ttrpc::Result<api::WaitResponse> {
        rpc(async {
            let (_, p) = self.process(&req.id, &req.exec_id).await?;
            Ok(translate::waited(p.wait().await))
        }
        .instrument(span("wait", &req.id, &req.exec_id))
        .await)
    }

    async fn stats(
        &self,
        _: &TtrpcContext,
        req: api::StatsRequest,
    ) -> ttrpc::Result<api::StatsResponse> {
        rpc(self
            .stats(&req.id)
            .instrument(span("stats", &req.id, ""))
            .await
            .map(|s| api::StatsResponse {
                stats: Some(crate::stats::to_metrics(&s)).into(),
                ..Default::default()
            }))
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> ttrpc::Result<api::ConnectResponse> {
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: self.task_pid(&req.id).await as u32,
            version: "2".into(),
            ..Default::default()
        })
    }

    async fn shutdown(
        &self,
        _: &TtrpcContext,
        _: api::ShutdownRequest,
    ) -> ttrpc::Result<api::Empty> {
        self.shutdown().await;
        Ok(api::Empty::default())
    }
}
