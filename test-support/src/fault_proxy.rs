//! A TCP proxy that misbehaves on demand, put between nene and a real
//! backend (redis-server, memcached) to play the faults of a network, a
//! load balancer or a broken peer: connections cut, replies lost after the
//! command ran, replies cut in half, replies delayed, and a hostile reply
//! that declares gigabytes and streams them. Written here (plain threads,
//! blocking sockets) so that the tests need no service this machine lacks.
//!
//! By hand: `FaultProxy::start("127.0.0.1:6379")` in a scratch test, point
//! `NENE_SESSION_DSN` at `proxy.url("redis")`, and turn faults on and off
//! while traffic runs (benches/README.md, "Fault harness").

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::browser::Browser;
use crate::{Nene, rss_kib};

/// Faults applied to what the backend sends back; each in thousandths of
/// the chunks read from it (a chunk is what one `read` returned: a reply,
/// or several when they came together).
#[derive(Default)]
struct Faults {
    /// The chunk is not delivered and the connection is closed: the
    /// command ran, its caller never learns it.
    drop_reply: AtomicU32,
    /// Half the chunk is delivered, then the connection is closed.
    cut_reply: AtomicU32,
    /// The chunk and everything after it vanish while the connection stays
    /// open: a path that stopped delivering packets.
    blackhole: AtomicU32,
    /// Every chunk waits this long (ms) before it is delivered.
    delay_ms: AtomicU64,
    /// The next command from a client is answered by the proxy itself
    /// with a reply that declares this many bytes and streams them (0 = off).
    hostile_length: AtomicU64,
    /// The hostile reply speaks memcached's meta protocol (`VA <n>`), not
    /// Redis' (`$<n>`).
    hostile_memcached: AtomicBool,
}

/// What the proxy has done, for the test to check that a fault happened.
#[derive(Default, Debug)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub dropped_replies: AtomicU64,
    pub cut_replies: AtomicU64,
    pub blackholed: AtomicU64,
    pub hostile_bytes_sent: AtomicU64,
}

/// A running proxy; stops (and closes every connection) when dropped.
pub struct FaultProxy {
    pub port: u16,
    faults: Arc<Faults>,
    pub counts: Arc<FaultCounts>,
    /// Both sockets of every live connection, to cut them all at once.
    live: Arc<Mutex<Vec<(TcpStream, TcpStream)>>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy on a free loopback port to `backend` (`host:port`).
    pub fn start(backend: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        let proxy = FaultProxy {
            port,
            faults: Arc::new(Faults::default()),
            counts: Arc::new(FaultCounts::default()),
            live: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (faults, counts, live, stop) = (
            proxy.faults.clone(),
            proxy.counts.clone(),
            proxy.live.clone(),
            proxy.stop.clone(),
        );
        let backend = backend.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&backend) else {
                    // The backend is down: so is the proxy's connection.
                    continue;
                };
                counts.connections.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    let mut live = live.lock().unwrap();
                    live.retain(|(c, _)| c.peer_addr().is_ok());
                    live.push((c, s));
                }
                spawn_pair(client, server, faults.clone(), counts.clone());
            }
        });
        proxy
    }

    /// `redis://127.0.0.1:PORT` (or another scheme) for a DSN.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Lose this many thousandths of replies, closing their connection.
    pub fn drop_replies(&self, per_mille: u32) {
        self.faults.drop_reply.store(per_mille, Ordering::Relaxed);
    }

    /// Deliver half of this many thousandths of replies, then close.
    pub fn cut_replies(&self, per_mille: u32) {
        self.faults.cut_reply.store(per_mille, Ordering::Relaxed);
    }

    /// Stop delivering anything on this many thousandths of connections
    /// (decided per reply), leaving them open.
    pub fn blackhole(&self, per_mille: u32) {
        self.faults.blackhole.store(per_mille, Ordering::Relaxed);
    }

    /// Hold every reply this long.
    pub fn delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.faults.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Answer every command, until turned off (`0`), with a Redis bulk
    /// reply declaring `length` bytes, streamed as fast as the client reads.
    pub fn hostile_replies(&self, length: u64) {
        self.faults
            .hostile_memcached
            .store(false, Ordering::Relaxed);
        self.faults.hostile_length.store(length, Ordering::Relaxed);
    }

    /// The same as a memcached meta reply (`VA <length>`).
    pub fn hostile_memcached_values(&self, length: u64) {
        self.faults.hostile_memcached.store(true, Ordering::Relaxed);
        self.faults.hostile_length.store(length, Ordering::Relaxed);
    }

    /// Cut every connection open now (both sides), as a restart of a load
    /// balancer would.
    pub fn cut_all(&self) {
        for (client, server) in self.live.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut_all();
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// True with a chance of `per_mille` thousandths.
fn chance(per_mille: u32) -> bool {
    per_mille > 0 && rand_below(1000) < per_mille
}

/// A cheap random number below `bound` (xorshift seeded per thread): the
/// proxy needs no cryptography and no extra dependency for its dice.
fn rand_below(bound: u32) -> u32 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            u64::from(nanos) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        u32::try_from(x % u64::from(bound)).unwrap()
    })
}

/// Two threads: commands to the backend as they come (unless a hostile
/// reply is due), replies back with the faults applied.
fn spawn_pair(client: TcpStream, server: TcpStream, faults: Arc<Faults>, counts: Arc<FaultCounts>) {
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (hostile_faults, hostile_counts) = (faults.clone(), counts.clone());
    let mut client_for_hostile = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        while let Ok(n) = client_in.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let length = hostile_faults.hostile_length.load(Ordering::Relaxed);
            if length > 0 {
                let header = if hostile_faults.hostile_memcached.load(Ordering::Relaxed) {
                    format!("VA {length} s{length}\r\n")
                } else {
                    format!("${length}\r\n")
                };
                send_hostile(&mut client_for_hostile, &header, length, &hostile_counts);
                break;
            }
            if server_out.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = client_in.shutdown(Shutdown::Both);
        let _ = server_out.shutdown(Shutdown::Both);
    });
    let (mut server_in, mut client_out) = (server, client);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 64 * 1024];
        let mut blackholed = false;
        while let Ok(n) = server_in.read(&mut buffer) {
            if n == 0 {
                break;
            }
            if blackholed {
                continue;
            }
            let delay = faults.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            if chance(faults.drop_reply.load(Ordering::Relaxed)) {
                counts.dropped_replies.fetch_add(1, Ordering::Relaxed);
                break;
            }
            if chance(faults.cut_reply.load(Ordering::Relaxed)) {
                counts.cut_replies.fetch_add(1, Ordering::Relaxed);
                let _ = client_out.write_all(&buffer[..n / 2]);
                break;
            }
            if chance(faults.blackhole.load(Ordering::Relaxed)) {
                counts.blackholed.fetch_add(1, Ordering::Relaxed);
                blackholed = true;
                continue;
            }
            if client_out.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = server_in.shutdown(Shutdown::Both);
        let _ = client_out.shutdown(Shutdown::Both);
    });
}

/// `header` and then bytes as fast as the client takes them, until it
/// closes the connection or `length` bytes went out.
fn send_hostile(client: &mut TcpStream, header: &str, length: u64, counts: &FaultCounts) {
    if client.write_all(header.as_bytes()).is_err() {
        return;
    }
    let junk = [b'x'; 64 * 1024];
    let mut sent = 0u64;
    while sent < length {
        let n = usize::try_from((length - sent).min(junk.len() as u64)).unwrap();
        if client.write_all(&junk[..n]).is_err() {
            return;
        }
        sent += n as u64;
        counts
            .hostile_bytes_sent
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A reply that declares 10 GB and streams it at full speed, from a broken
/// proxy or a peer in the middle of a plain link, played against nene's
/// session reads through a proxy in front of the server on `server_port`
/// (nene's DSN is `dsn` of the proxy): the session answers 503, nene's
/// memory stays bounded (it read no more than the largest session plus a
/// margin), the log says `why`, and once the link behaves the session
/// goes on where it was.
pub async fn a_hostile_reply_costs_a_503_not_memory(
    server_port: u16,
    dsn: impl FnOnce(&FaultProxy) -> String,
    play: impl Fn(&FaultProxy, u64),
    why: &str,
) {
    let proxy = &FaultProxy::start(&format!("127.0.0.1:{server_port}"));
    let nene = Nene::start(&[("NENE_SESSION_DSN", &dsn(proxy))]);
    let nginx = crate::Nginx::start(&nene.upstream, true);
    let mut browser = Browser::new(&nginx.url(""));
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 200, "{}", nene.log_text());
    play(proxy, 10_000_000_000);
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", nene.log_text());
    let rss_mib = rss_kib(nene.pid()) / 1024;
    let streamed_mib = proxy.counts.hostile_bytes_sent.load(Ordering::Relaxed) >> 20;
    assert!(rss_mib < 100, "RSS {rss_mib} MiB after a hostile reply");
    assert!(
        streamed_mib < 64,
        "nene read {streamed_mib} MiB of a reply it could never keep before dropping it"
    );
    assert!(
        nene.log_text().contains(why),
        "the log says why\n{}",
        nene.log_text()
    );
    play(proxy, 0);
    // A connection opened in the background while the reply was hostile
    // (the release of the failed request's lock) may still be failing, and
    // a request queued behind it takes its answer: the next ones are served.
    let mut page = browser.get("/session/counter").await;
    for _ in 0..20 {
        if page.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = browser.get("/session/counter").await;
    }
    assert_eq!(page.status, 200, "{}", nene.log_text());
    assert_eq!(page.json()["count"], 2, "the session went on where it was");
}
