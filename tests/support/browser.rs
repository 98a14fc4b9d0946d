//! Headless Chromium for the tests that look at rendered pages: Debian's
//! `chromium` (scripts/setup.sh installs it) started with a throwaway
//! profile, driven over the DevTools protocol through a WebSocket.
//!
//! A [`Browser`] is one Chromium process; [`Browser::open`] gives a
//! [`Page`] (a tab with its own DevTools connection) loaded from an
//! http:// or file:// URL, with cookies and headers set first when given.
//! A page collects what went wrong while it loaded and after — console
//! errors, uncaught exceptions, the browser's own error log (a resource
//! that could not be fetched) — evaluates JavaScript expressions, and saves
//! PNG screenshots under the target directory's test-artifacts/.
//!
//! Chromium is looked for as ROLLCALL_CHROMIUM, else `chromium` or
//! `chromium-browser` on PATH; without it a test fails saying to run
//! scripts/setup.sh (it is never skipped unseen).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// How long one DevTools command or a page load may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The Chromium binary, or why there is none.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ROLLCALL_CHROMIUM").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no chromium on PATH (nor ROLLCALL_CHROMIUM): run scripts/setup.sh, which installs Debian's chromium".into())
}

/// Where screenshots and other test artifacts go: $CARGO_TARGET_DIR/test-artifacts,
/// else the target directory the test binary was built in.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()).map(PathBuf::from).or_else(|| {
        // target/<profile>/deps/<test binary>
        std::env::current_exe().ok().and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
    });
    target.unwrap_or_else(|| super::repo().join("target")).join("test-artifacts")
}

/// A cookie set before a page is opened, for the URL's host.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub name: String,
    pub value: String,
}

/// What to set before navigating.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub cookies: Vec<Cookie>,
    /// Extra HTTP headers sent with every request of the page (for example
    /// `Authorization: Bearer …`).
    pub headers: Vec<(String, String)>,
}

/// One headless Chromium with a throwaway profile, killed on drop.
pub struct Browser {
    child: Child,
    port: u16,
    browser_path: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and waits for its DevTools endpoint (the port it
    /// chose, read from DevToolsActivePort in the profile).
    pub fn start() -> Result<Browser, String> {
        let bin = chromium()?;
        let profile = tempfile::tempdir().map_err(|e| format!("a profile directory: {e}"))?;
        let log = std::fs::File::create(profile.path().join("chromium.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args([
                "--headless=new",
                // Tests run as root in CI, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--disable-component-update",
                "--hide-scrollbars",
                "--mute-audio",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e} (run scripts/setup.sh to install chromium)", bin.display()))?;
        let mut b = Browser { child, port: 0, browser_path: String::new(), _profile: profile };
        let active = b._profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&active) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(port) = port.trim().parse::<u16>() {
                        b.port = port;
                        b.browser_path = path.trim().to_string();
                        return Ok(b);
                    }
                }
            }
            if let Ok(Some(status)) = b.child.try_wait() {
                let said = std::fs::read_to_string(b._profile.path().join("chromium.log")).unwrap_or_default();
                return Err(format!("chromium exited with {status} before it listened: {said}"));
            }
            if started.elapsed() > TIMEOUT {
                return Err(format!("chromium wrote no {} within {} s", active.display(), TIMEOUT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new tab loaded from `url`, with the cookies and headers set first;
    /// returns once the page's load event fired.
    pub fn open(&self, url: &str, opts: &OpenOptions) -> Result<Page, String> {
        let mut browser = Connection::open(self.port, &self.browser_path)?;
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].as_str().ok_or_else(|| format!("Target.createTarget gave {target}"))?.to_string();
        let conn = Connection::open(self.port, &format!("/devtools/page/{target_id}"))?;
        let mut page = Page { conn, target_id, browser };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            page.conn.call(domain, json!({}))?;
        }
        if !opts.headers.is_empty() {
            let headers: serde_json::Map<String, Value> =
                opts.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            page.conn.call("Network.setExtraHTTPHeaders", json!({ "headers": headers }))?;
        }
        for c in &opts.cookies {
            let set = page.conn.call("Network.setCookie", json!({ "name": c.name, "value": c.value, "url": url }))?;
            if set["success"] == Value::Bool(false) {
                return Err(format!("the cookie {} was refused for {url}", c.name));
            }
        }
        page.navigate(url)?;
        Ok(page)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One DevTools WebSocket: commands with ids, and the events that arrive
/// between their replies.
struct Connection {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: Vec<Value>,
}

impl Connection {
    fn open(port: u16, path: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("DevTools port {port}: {e}"))?;
        // The handshake waits as long as a command may; afterwards reads
        // come back every 200 ms, so that waits can check their deadlines.
        stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = tungstenite::client(url.as_str(), stream).map_err(|e| format!("WebSocket {url}: {e}"))?;
        ws.get_ref().set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
        Ok(Connection { ws, next_id: 1, events: Vec::new() })
    }

    /// The next message, or None when none came within the read timeout.
    fn read(&mut self) -> Result<Option<Value>, String> {
        match self.ws.read() {
            Ok(Message::Text(t)) => serde_json::from_str(t.as_str()).map(Some).map_err(|e| format!("DevTools sent {t}: {e}")),
            Ok(_) => Ok(None),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("DevTools connection: {e}")),
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).map_err(|e| format!("{method}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(v) = self.read()? {
                if v["id"].as_u64() == Some(id) {
                    if let Some(err) = v.get("error") {
                        return Err(format!("{method}: {err}"));
                    }
                    return Ok(v["result"].clone());
                }
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
            if started.elapsed() > TIMEOUT {
                return Err(format!("{method}: no reply within {} s", TIMEOUT.as_secs()));
            }
        }
    }

    /// Reads events until one named `method` arrives (kept with the others).
    fn wait_for(&mut self, method: &str, since: usize) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if self.events[since..].iter().any(|e| e["method"] == method) {
                return Ok(());
            }
            if let Some(v) = self.read()? {
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
            if started.elapsed() > TIMEOUT {
                return Err(format!("no {method} within {} s", TIMEOUT.as_secs()));
            }
        }
    }
}

/// A tab of the browser; closed on drop.
pub struct Page {
    conn: Connection,
    target_id: String,
    browser: Connection,
}

impl Page {
    /// Loads `url` in this tab and waits for its load event.
    pub fn navigate(&mut self, url: &str) -> Result<(), String> {
        let since = self.conn.events.len();
        let nav = self.conn.call("Page.navigate", json!({ "url": url }))?;
        if let Some(err) = nav.get("errorText").and_then(Value::as_str) {
            return Err(format!("loading {url}: {err}"));
        }
        self.conn.wait_for("Page.loadEventFired", since)
    }

    /// Evaluates a JavaScript expression (promises awaited) to its JSON value.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self
            .conn
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }))?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("{expression} threw: {}", describe_exception(ex)));
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// The expression's value as a string (numbers and booleans as written).
    pub fn eval_string(&mut self, expression: &str) -> Result<String, String> {
        match self.eval(expression)? {
            Value::String(s) => Ok(s),
            Value::Null => Err(format!("{expression} gave null or undefined")),
            v => Ok(v.to_string()),
        }
    }

    /// The expression's value as a number (a numeric string is parsed).
    pub fn eval_number(&mut self, expression: &str) -> Result<f64, String> {
        match self.eval(expression)? {
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("{expression} gave {n}")),
            Value::String(s) => s.trim().parse().map_err(|_| format!("{expression} gave {s:?}, not a number")),
            v => Err(format!("{expression} gave {v}, not a number")),
        }
    }

    /// Everything that went wrong on the page so far: console errors,
    /// uncaught exceptions, and the browser's error log entries (a
    /// resource that failed to load, a blocked request).
    pub fn errors(&mut self) -> Result<Vec<String>, String> {
        // Drain what arrived since the last command.
        while let Some(v) = self.conn.read()? {
            if v.get("method").is_some() {
                self.conn.events.push(v);
            }
        }
        let mut out = Vec::new();
        for e in &self.conn.events {
            let p = &e["params"];
            match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") if p["type"] == "error" || p["type"] == "assert" => {
                    let args: Vec<String> = p["args"]
                        .as_array()
                        .map(|a| a.iter().map(|x| x.get("value").unwrap_or(&x["description"]).to_string()).collect())
                        .unwrap_or_default();
                    out.push(format!("console.{}: {}", p["type"].as_str().unwrap_or(""), args.join(" ")));
                }
                Some("Runtime.exceptionThrown") => out.push(format!("exception: {}", describe_exception(&p["exceptionDetails"]))),
                Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                    out.push(format!("log: {} {}", p["entry"]["text"], p["entry"]["url"].as_str().unwrap_or("")))
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The URLs the page requested (its own document included).
    pub fn requests(&self) -> Vec<String> {
        self.conn
            .events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_string))
            .collect()
    }

    /// A PNG of the whole page (beyond the window too) saved as
    /// `artifacts_dir()/NAME.png`; returns its path.
    pub fn screenshot(&mut self, name: &str) -> Result<PathBuf, String> {
        use base64::Engine;
        let metrics = self.conn.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let (w, h) = (size["width"].as_f64().unwrap_or(1280.0), size["height"].as_f64().unwrap_or(900.0));
        let shot = self.conn.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": w.max(1.0), "height": h.max(1.0), "scale": 1 } }),
        )?;
        let data = shot["data"].as_str().ok_or("Page.captureScreenshot gave no data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| format!("screenshot: {e}"))?;
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.browser.call("Target.closeTarget", json!({ "targetId": self.target_id }));
    }
}

fn describe_exception(ex: &Value) -> String {
    let text = ex["text"].as_str().unwrap_or("");
    let detail = ex["exception"]["description"].as_str().unwrap_or("");
    format!("{text} {detail} (line {}, column {})", ex["lineNumber"], ex["columnNumber"]).trim().to_string()
}
