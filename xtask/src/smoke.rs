//! Starts a packaged executable the way the Functions host does (`FUNCTIONS_CUSTOMHANDLER_PORT`)
//! on a throwaway SQLite store and asks it `GET /`.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How often, and how far apart, to ask before giving up (20 s in all).
const ATTEMPTS: u32 = 200;
const PAUSE: Duration = Duration::from_millis(100);

/// Kills the child when dropped, whatever happened.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `executable serve` and returns the status line and body of its `GET /` answer;
/// an error unless it is `200`.
pub fn serves_root(executable: &Path) -> anyhow::Result<String> {
    let port = free_port()?;
    let scratch = std::env::temp_dir().join(format!("xtask-smoke-{port}"));
    std::fs::create_dir_all(&scratch)?;
    let child = Command::new(executable)
        .arg("serve")
        .current_dir(&scratch)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env(
            "PATCHWAVE_STORE",
            format!("sqlite:{}", scratch.join("smoke.db").display()),
        )
        .env("PATCHWAVE_CREDENTIAL", "none")
        .stdout(Stdio::null())
        .spawn()
        .context("spawning")?;
    let mut running = Running(child);
    for _ in 0..ATTEMPTS {
        if let Some(status) = running.0.try_wait()? {
            bail!("it exited ({status}) before answering");
        }
        if let Ok(answer) = get_root(port) {
            let _ = std::fs::remove_dir_all(&scratch);
            return match answer.starts_with("HTTP/1.1 200") {
                true => Ok(answer.lines().next().unwrap_or_default().to_string()),
                false => bail!("GET / answered {answer}"),
            };
        }
        std::thread::sleep(PAUSE);
    }
    bail!("no answer on port {port} within {:?}", PAUSE * ATTEMPTS)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn get_root(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
