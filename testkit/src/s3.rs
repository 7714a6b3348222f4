//! A real S3-protocol server (s3s-fs: S3 over HTTP, objects as files) on loopback, for tests
//! and for the local stack (`s3-dev-server`, started by `scripts/stack`).

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "callscript";
pub const SECRET_KEY: &str = "callscript-secret";

/// Serves S3 for `root` on `listener` until the task is dropped or aborted.
pub async fn serve(
    listener: TcpListener,
    root: &Path,
    access_key: &str,
    secret_key: &str,
) -> std::io::Result<()> {
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|e| std::io::Error::other(format!("s3s-fs at {}: {e:?}", root.display())))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// A server for one test, with its own temporary root; stops when dropped.
pub struct TestS3Server {
    pub endpoint: String,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _root: tempfile::TempDir,
}

impl TestS3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("temporary S3 root");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let path = root.path().to_owned();
        let task =
            tokio::spawn(async move { serve(listener, &path, ACCESS_KEY, SECRET_KEY).await });
        Self {
            endpoint: format!("http://{addr}"),
            addr,
            task,
            _root: root,
        }
    }

    /// A store on this server's bucket `recordings`, created.
    pub async fn store(&self) -> std::sync::Arc<dyn callscript_core::storage::ObjectStore> {
        let store = callscript_core::storage::open("s3://recordings", self.settings())
            .expect("a store for the test S3 server");
        store.prepare().await.expect("create the test bucket");
        store
    }

    /// Settings that reach this server with its credentials.
    pub fn settings(&self) -> callscript_core::storage::S3Settings {
        callscript_core::storage::S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            session_token: None,
        }
    }
}

impl Drop for TestS3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
