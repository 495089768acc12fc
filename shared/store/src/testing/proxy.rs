//! A TCP proxy between the service and PostgreSQL that a test can pause (bytes stop flowing,
//! connections hang like a stalled server) or cut (every connection is closed and new ones are
//! refused, like a dead server). Tests never stop a shared server; they break this instead.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the proxy forwards to.
#[derive(Debug, Clone)]
pub enum Upstream {
    Tcp(String),
    Unix(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Paused,
    Cut,
}

/// A running proxy; dropping it stops accepting.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept_loop: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port.
    pub async fn start(upstream: Upstream) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Open);
        let modes = mode.clone();
        let accept_loop = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *modes.borrow() == Mode::Cut {
                    drop(client);
                    continue;
                }
                // Without it, Nagle's algorithm against the peer's delayed ACKs holds each
                // small protocol message for up to 40 ms: a transaction of a few round trips
                // would take a tenth of a second through the proxy.
                let _ = client.set_nodelay(true);
                tokio::spawn(relay(client, upstream.clone(), modes.subscribe()));
            }
        });
        Self {
            addr,
            mode,
            accept_loop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds every byte in both directions until [`FaultProxy::resume`].
    pub fn pause(&self) {
        self.mode.send_replace(Mode::Paused);
    }

    /// Closes every open connection and refuses new ones until [`FaultProxy::resume`].
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    pub fn resume(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.accept_loop.abort();
    }
}

async fn relay(client: TcpStream, upstream: Upstream, modes: watch::Receiver<Mode>) {
    let server: Box<dyn Stream> = match upstream {
        Upstream::Tcp(addr) => match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            Err(_) => return,
        },
        Upstream::Unix(path) => match UnixStream::connect(path).await {
            Ok(s) => Box::new(s),
            Err(_) => return,
        },
    };
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
    tokio::select! {
        () = pump(client_read, server_write, modes.clone()) => {}
        () = pump(server_read, client_write, modes) => {}
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut modes: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = modes.wait_for(|m| *m == Mode::Cut) => return,
        };
        match modes.wait_for(|m| *m != Mode::Paused).await {
            Ok(mode) if *mode == Mode::Open => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
