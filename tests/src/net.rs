//! Loopback stand-ins for a database server that misbehaves: one that accepts connections and
//! never answers, and a proxy to the real server that can be frozen (it stops forwarding in
//! both directions, keeping every connection open) and thawed. Both listen on 127.0.0.1 only
//! and stop when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A server that completes the TCP handshake and then says nothing, ever.
#[derive(Debug)]
pub struct SilentServer {
    addr: SocketAddr,
    done: Arc<AtomicBool>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("its address");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentServer { addr, done }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// A TCP proxy to `target` that can stop forwarding without closing anything.
#[derive(Debug)]
pub struct FreezingProxy {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl FreezingProxy {
    pub fn start(target: SocketAddr) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("its address");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let frozen = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (frozen2, done2, sockets2) = (frozen.clone(), done.clone(), sockets.clone());
        thread::spawn(move || {
            while !done2.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).expect("blocking socket");
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut all = sockets2.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    &frozen2,
                );
                pump(server, client, &frozen2);
            }
        });
        FreezingProxy {
            addr,
            frozen,
            done,
            sockets,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops forwarding: bytes already sent wait in the proxy until [`FreezingProxy::thaw`].
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        self.frozen.store(false, Ordering::SeqCst);
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread of its own, holding each chunk while the proxy is frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &Arc<AtomicBool>) {
    let frozen = frozen.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while frozen.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
