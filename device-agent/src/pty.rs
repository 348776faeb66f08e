//! The master side of a pseudo-terminal as an async byte stream.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::{AsyncRead, AsyncWrite, Join, ReadBuf};
use tokio::net::unix::pipe;

/// A raw-mode pty. The slave end stays open here so that the master never
/// sees a hang-up while the agent closes and reopens the port.
pub struct Pty {
    io: Join<pipe::Receiver, pipe::Sender>,
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    pub fn open() -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None)?;
        let mut termios = tcgetattr(&pair.slave)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios)?;
        let path = nix::unistd::ttyname(&pair.slave)?;
        let flags = OFlag::from_bits_truncate(fcntl(pair.master.as_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            pair.master.as_fd(),
            FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
        )?;
        Ok(Pty {
            // Two registrations of one open file: a reader and a writer.
            io: tokio::io::join(
                pipe::Receiver::from_owned_fd_unchecked(pair.master.try_clone()?)?,
                pipe::Sender::from_owned_fd_unchecked(pair.master)?,
            ),
            _slave: pair.slave,
            path,
        })
    }

    /// The slave path a serial client opens.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
