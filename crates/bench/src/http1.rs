//! The batched phase's load generator: one keep-alive HTTP/1.1 connection
//! per client, requests written as ready-made bytes and answers read by
//! their Content-Length. A general client (reqwest) took about 0.7 µs of
//! CPU per event sent, on the two cores the gateway under test shares with
//! it and with the broker; this takes what the socket takes and little
//! more, so that the figure is the gateway's rather than the client's. It
//! reads only what the gateway answers (a status line, headers, a body of
//! known length) and fails on anything else.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to the gateway.
pub(crate) struct Connection {
    stream: TcpStream,
    /// The request line and headers but Content-Length, the same for every request.
    head: String,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn open(addr: std::net::SocketAddr, path: &str, token: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n"
        );
        Ok(Connection { stream, head, buf: Vec::with_capacity(4096) })
    }

    /// Posts `body`; the answer's status and body.
    pub async fn post(&mut self, body: &Bytes) -> Result<(u16, Vec<u8>), String> {
        let head = format!("{}content-length: {}\r\n\r\n", self.head, body.len());
        self.stream.write_all(head.as_bytes()).await.map_err(|e| format!("sending a request: {e}"))?;
        self.stream.write_all(body).await.map_err(|e| format!("sending a request: {e}"))?;
        // The head of the answer.
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|_| "an answer's head is not UTF-8".to_string())?;
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("no status in {:?}", text.lines().next()))?;
        let length = text
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or_else(|| format!("an answer without a Content-Length: {text:?}"))?;
        while self.buf.len() < end + length {
            self.fill().await?;
        }
        let answer = self.buf[end..end + length].to_vec();
        self.buf.drain(..end + length);
        Ok((status, answer))
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.map_err(|e| format!("reading an answer: {e}"))?;
        if n == 0 {
            return Err("the gateway closed the connection".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}
