//! A socket with a read buffer and an output queue: what every call-home driver needs.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::Instant;

use bytes::BytesMut;
use dynrt_core::wire::OutBuf;
use futures_io::AsyncWrite;
use futures_lite::future;

use crate::runtime::{self, Runtime};

/// Most slices handed to one vectored write.
const MAX_IOV: usize = 64;

pub(crate) struct Sock<R: Runtime> {
    pub(crate) tcp: R::Tcp,
    pub(crate) rbuf: BytesMut,
    pub(crate) out: OutBuf,
}

impl<R: Runtime> Sock<R> {
    pub(crate) fn new(tcp: R::Tcp, rbuf: BytesMut) -> Self {
        Self {
            tcp,
            rbuf,
            out: OutBuf::new(),
        }
    }

    /// Reads what the socket has; `Ok(0)` is the peer's end of stream.
    pub(crate) async fn read(&mut self) -> io::Result<usize> {
        let Self { tcp, rbuf, .. } = self;
        future::poll_fn(|cx| R::poll_read_buf(tcp, cx, rbuf)).await
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let Self { tcp, out, .. } = self;
        while !out.is_empty() {
            let written = future::poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let n = out.io_slices(&mut slices);
                Pin::new(&mut *tcp).poll_write_vectored(cx, &slices[..n])
            })
            .await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            out.advance(written);
        }
        future::poll_fn(|cx| Pin::new(&mut *tcp).poll_flush(cx)).await
    }

    /// Closes the write side (FIN).
    pub(crate) async fn close(&mut self) {
        let tcp = &mut self.tcp;
        let _ = future::poll_fn(|cx| Pin::new(&mut *tcp).poll_close(cx)).await;
    }
}

/// Runs `fut` until `deadline` (if any); `None` if the deadline came first.
pub(crate) async fn until<R: Runtime, T>(
    rt: &R,
    deadline: Option<Instant>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        None => Some(fut.await),
        Some(deadline) => {
            future::or(async { Some(fut.await) }, async {
                runtime::sleep_until(rt, deadline).await;
                None
            })
            .await
        }
    }
}
