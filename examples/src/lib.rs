//! delayed_job's feed reader, in dj: a `FetchFeed` job fetches an RSS feed over HTTP and stores
//! the titles it read. To run offline, [`serve_feeds`] starts a small HTTP server on
//! 127.0.0.1 that serves sample feeds.

pub mod report;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use dj::{Context, Job, Perform};
use serde::{Deserialize, Serialize};

/// Where fetched entries are stored: a SQLite file of the application's own.
#[derive(Debug, Clone)]
pub struct EntriesDb(pub PathBuf);

impl EntriesDb {
    /// Opens the file, creating the `feed_entries` table.
    pub fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(&self.0)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS feed_entries (feed TEXT NOT NULL, title TEXT NOT NULL, \
             UNIQUE (feed, title))",
        )?;
        Ok(conn)
    }
}

/// What can go wrong fetching a feed.
#[derive(Debug)]
pub enum FeedError {
    Http(String),
    Io(std::io::Error),
    Store(rusqlite::Error),
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedError::Http(status) => write!(f, "the feed server answered {status}"),
            FeedError::Io(e) => write!(f, "could not fetch the feed: {e}"),
            FeedError::Store(e) => write!(f, "could not store entries: {e}"),
        }
    }
}

impl std::error::Error for FeedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FeedError::Http(_) => None,
            FeedError::Io(e) => Some(e),
            FeedError::Store(e) => Some(e),
        }
    }
}

/// Fetches one feed and stores the titles of its items.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
#[job(queue = "feeds", max_attempts = 5, max_run_time = "30s")]
pub struct FetchFeed {
    pub url: String,
}

impl Perform for FetchFeed {
    type Error = FeedError;

    fn perform(&self, ctx: &Context) -> Result<(), FeedError> {
        let body = http_get(&self.url)?;
        let titles = item_titles(&body);
        let entries = ctx.state::<EntriesDb>();
        let conn = entries.open().map_err(FeedError::Store)?;
        for title in &titles {
            conn.execute(
                "INSERT OR IGNORE INTO feed_entries (feed, title) VALUES (?1, ?2)",
                (&self.url, title),
            )
            .map_err(FeedError::Store)?;
        }
        Ok(())
    }

    fn display_name(&self) -> Option<String> {
        Some(format!("FetchFeed({})", self.url))
    }
}

/// A minimal HTTP/1.0 GET for `http://host:port/path`.
pub fn http_get(url: &str) -> Result<String, FeedError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| FeedError::Http(format!("unsupported url {url}")))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = TcpStream::connect(host).map_err(FeedError::Io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(FeedError::Io)?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(FeedError::Io)?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(FeedError::Io)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(FeedError::Http(status.to_owned()));
    }
    Ok(body.to_owned())
}

/// The `<title>`s inside `<item>`s of an RSS document.
pub fn item_titles(xml: &str) -> Vec<String> {
    xml.split("<item>")
        .skip(1)
        .filter_map(|item| {
            let start = item.find("<title>")? + "<title>".len();
            let end = item[start..].find("</title>")? + start;
            Some(item[start..end].trim().to_owned())
        })
        .collect()
}

/// Serves `/feeds/N.xml` (N = 0..count) with three items each on 127.0.0.1; returns the
/// base URL. `/feeds/broken.xml` answers 500. The server runs until the process exits.
pub fn serve_feeds(count: usize) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, count);
        }
    });
    Ok(base)
}

fn answer(mut stream: TcpStream, count: usize) -> std::io::Result<()> {
    // Read the whole request head: closing a socket with unread request bytes makes the
    // kernel reset the connection, and the client could lose the response.
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && header.trim_end() != "" {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let feed = path
        .strip_prefix("/feeds/")
        .and_then(|p| p.strip_suffix(".xml"))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < count);
    let (status, body) = match feed {
        Some(n) => {
            let items: String = (1..=3)
                .map(|i| format!("<item><title>Feed {n}, story {i}</title></item>"))
                .collect();
            (
                "200 OK",
                format!("<rss><channel><title>Feed {n}</title>{items}</channel></rss>"),
            )
        }
        None => ("500 Internal Server Error", "no such feed".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: application/rss+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    stream.shutdown(std::net::Shutdown::Write)
}
