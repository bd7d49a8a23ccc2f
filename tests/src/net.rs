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
        FreezingProxy::start_on("127.0.0.1:0".parse().expect("an address"), target)
    }

    /// The proxy listening on `listen` (an address of this machine: loopback, or the host
    /// side of a [`Hosts`] link).
    pub fn start_on(listen: SocketAddr, target: SocketAddr) -> FreezingProxy {
        let listener = TcpListener::bind(listen).expect("bind the proxy's address");
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

/// Simulated hosts on this machine: one network namespace per host, each joined to this
/// namespace by a veth pair of its own (`10.N.K.2` inside host K, `10.N.K.1` on this side),
/// with a proxy on this side's address forwarding to the real database. Processes run in a
/// host with `ip netns exec`. Its link can be cut (the host's end goes down: packets are
/// dropped, connections hang, as in a partition) and restored. Everything is removed on drop.
/// Needs root and `ip` (iproute2).
#[derive(Debug)]
pub struct Hosts {
    names: Vec<String>,
    proxies: Vec<FreezingProxy>,
    prefix: u8,
}

impl Hosts {
    /// Whether namespaces can be made here (root, `ip` present).
    pub fn available() -> Result<(), String> {
        static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PROBES.fetch_add(1, Ordering::SeqCst);
        let probe = format!("dj-probe-{}-{n}", std::process::id());
        let made = std::process::Command::new("ip")
            .args(["netns", "add", &probe])
            .output()
            .map_err(|e| format!("`ip` did not run: {e}"))?;
        if !made.status.success() {
            return Err(String::from_utf8_lossy(&made.stderr).trim().to_owned());
        }
        let _ = ip(&["netns", "del", &probe]);
        Ok(())
    }

    /// `count` hosts reaching `database` (an address on this machine) through their links.
    pub fn new(count: u8, database: SocketAddr) -> Hosts {
        // A prefix per set of hosts, so that parallel tests and runs do not share addresses
        // or names.
        static SETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let set = SETS.fetch_add(1, Ordering::SeqCst);
        let prefix = 100 + ((std::process::id() * 7 + set) % 150) as u8;
        let mut hosts = Hosts {
            names: Vec::new(),
            proxies: Vec::new(),
            prefix,
        };
        for k in 1..=count {
            let name = format!("dj{prefix}h{k}");
            let (outside, inside) = (format!("dj{prefix}o{k}"), format!("dj{prefix}i{k}"));
            let _ = ip(&["netns", "del", &name]);
            let _ = ip(&["link", "del", &outside]);
            ip(&["netns", "add", &name]).expect("add a namespace");
            hosts.names.push(name.clone());
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])
            .expect("add a veth pair");
            ip(&["link", "set", &inside, "netns", &name]).expect("move its end in");
            let here = format!("10.{prefix}.{k}.1");
            ip(&["addr", "add", &format!("{here}/24"), "dev", &outside]).expect("address");
            ip(&["link", "set", &outside, "up"]).expect("up");
            let there = format!("10.{prefix}.{k}.2/24");
            ip(&[
                "netns", "exec", &name, "ip", "addr", "add", &there, "dev", &inside,
            ])
            .expect("address inside");
            ip(&["netns", "exec", &name, "ip", "link", "set", &inside, "up"]).expect("up");
            ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]).expect("lo up");
            let listen: SocketAddr = format!("{here}:5432").parse().expect("an address");
            hosts
                .proxies
                .push(FreezingProxy::start_on(listen, database));
        }
        hosts
    }

    /// The address host `k` (from 1) reaches the database at.
    pub fn database_addr(&self, k: usize) -> String {
        format!("10.{}.{k}.1:5432", self.prefix)
    }

    /// A command that runs `program` inside host `k`.
    pub fn command(&self, k: usize, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new("ip");
        command.args(["netns", "exec", &self.names[k - 1], program]);
        command
    }

    /// Cuts host `k`'s link: its end goes down, and nothing it sends arrives.
    pub fn cut(&self, k: usize) {
        self.link(k, "down");
    }

    /// Restores host `k`'s link.
    pub fn restore(&self, k: usize) {
        self.link(k, "up");
    }

    fn link(&self, k: usize, state: &str) {
        let inside = format!("dj{}i{k}", self.prefix);
        let host = &self.names[k - 1];
        ip(&["netns", "exec", host, "ip", "link", "set", &inside, state]).expect("set the link");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.proxies.clear();
        for (k, name) in self.names.iter().enumerate() {
            let _ = ip(&["link", "del", &format!("dj{}o{}", self.prefix, k + 1)]);
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
