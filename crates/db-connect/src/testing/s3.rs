//! An S3 API server of one test's own: `moto_server` (PyPI `moto[server]`) on a free port,
//! killed when the test ends, with a uniquely named bucket per test.
//!
//! moto keeps everything in memory and does not check signatures (any access key works), so
//! tests run in parallel without sharing anything, and [`S3Bucket`]'s raw object access (to
//! damage an object, or plant one) needs no AWS client.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use super::{free_port, service_unavailable};

/// The access key tests give the code under test (moto accepts any).
pub const TEST_ACCESS_KEY_ID: &str = "hotel-test";
/// The secret key tests give the code under test.
pub const TEST_SECRET_ACCESS_KEY: &str = "hotel-test-secret";
/// The region of test buckets.
pub const TEST_REGION: &str = "us-east-1";

/// A running `moto_server`, killed (by its pid) and reaped when dropped.
///
/// ```no_run
/// # use db_connect::testing::MotoServer;
/// let Some(moto) = MotoServer::start() else { return }; // SKIP line, or a panic in CI
/// let bucket = moto.bucket("backups");
/// let url = bucket.url("prod"); // s3://backups-…/prod?endpoint=http://127.0.0.1:…&region=us-east-1
/// # let _ = url;
/// ```
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

impl MotoServer {
    /// Starts `moto_server` on a free port and waits until it answers. `None` (after a loud
    /// `SKIP` line) when it is not installed, unless `HOTEL_REQUIRE_SERVICES=1`.
    ///
    /// # Panics
    ///
    /// When services are required and moto_server is missing, or when it starts but never
    /// answers.
    pub fn start() -> Option<Self> {
        Self::start_on(free_port())
    }

    /// Starts `moto_server` on `port` (a restart on the port a test's clients already use).
    ///
    /// # Panics
    ///
    /// As [`MotoServer::start`].
    pub fn start_on(port: u16) -> Option<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                service_unavailable("moto_server (pip install 'moto[server]')", &e.to_string());
                return None;
            }
        };
        let mut server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited at start ({status}); is port {port} taken?");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {addr} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Answering TCP is not answering HTTP yet.
        while request(addr, "GET", "/", &[]).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer HTTP on {addr} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's process id (to stop it with a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new bucket named `<label>-<pid>-<n>`.
    ///
    /// # Panics
    ///
    /// When the server refuses to create it.
    pub fn bucket(&self, label: &str) -> S3Bucket {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{}-{}-{}",
            label.to_lowercase().replace('_', "-"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let bucket = S3Bucket {
            addr: self.addr,
            name,
        };
        let (status, body) = request(self.addr, "PUT", &format!("/{}", bucket.name), &[])
            .unwrap_or_else(|e| panic!("create bucket {}: {e}", bucket.name));
        assert_eq!(
            status,
            200,
            "create bucket {}: {}",
            bucket.name,
            String::from_utf8_lossy(&body)
        );
        bucket
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bucket of a [`MotoServer`], with raw access to its objects.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    addr: SocketAddr,
    name: String,
}

impl S3Bucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `s3://<bucket>/<prefix>?endpoint=…&region=us-east-1`, the repository URL for the code
    /// under test (give it [`TEST_ACCESS_KEY_ID`] and [`TEST_SECRET_ACCESS_KEY`]).
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{}?endpoint=http://{}&region={TEST_REGION}",
            self.name,
            prefix.trim_matches('/'),
            self.addr
        )
    }

    /// Every key in the bucket, sorted.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{}?list-type=2&max-keys=1000", self.name);
            if let Some(t) = &token {
                path.push_str("&continuation-token=");
                path.push_str(&percent_encode(t));
            }
            let (status, body) = request(self.addr, "GET", &path, &[]).expect("list the bucket");
            assert_eq!(status, 200, "list: {}", String::from_utf8_lossy(&body));
            let text = String::from_utf8_lossy(&body);
            keys.extend(xml_values(&text, "Key"));
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The object's bytes, or `None` when there is none.
    ///
    /// # Panics
    ///
    /// When the server does not answer.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let (status, body) =
            request(self.addr, "GET", &self.object_path(key), &[]).expect("get an object");
        match status {
            200 => Some(body),
            404 => None,
            other => panic!("get {key}: {other} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Writes (or replaces) an object, as something other than the code under test would.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        let (status, body) =
            request(self.addr, "PUT", &self.object_path(key), bytes).expect("put an object");
        assert_eq!(status, 200, "put {key}: {}", String::from_utf8_lossy(&body));
    }

    /// Deletes an object.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub fn delete_object(&self, key: &str) {
        let (status, body) =
            request(self.addr, "DELETE", &self.object_path(key), &[]).expect("delete an object");
        assert!(
            status == 204 || status == 200,
            "delete {key}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    fn object_path(&self, key: &str) -> String {
        let key: Vec<String> = key.split('/').map(percent_encode).collect();
        format!("/{}/{}", self.name, key.join("/"))
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body. moto takes
/// any `Authorization` header as authenticated (anonymous requests get S3's ACL checks).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/20260101/{TEST_REGION}/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\
         x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let headers = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let status: u16 = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let mut payload = response[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    Ok((status, payload))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

fn xml_values(text: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    text.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(|v| {
            v.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
        })
        .collect()
}

fn percent_encode(part: &str) -> String {
    part.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
