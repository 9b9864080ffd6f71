//! One Azurite table service per test binary, from `node_modules` (`npm ci` installs it), on a
//! free loopback port with in-memory persistence; or the service named by
//! `PATCHWAVE_TEST_AZURITE_TABLE` (a connection string). Each test isolates itself with its
//! own table-name prefix.
//!
//! Azurite runs under a small `sh` wrapper that holds the read end of a pipe whose write end
//! only this process has: when the test binary exits, however it exits, the pipe closes and the
//! wrapper stops Azurite. So `cargo test` never waits on, or leaves behind, an emulator.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The emulator this binary uses: its connection string, and the wrapper process (kept so
/// the pipe to it stays open until the process exits).
struct Emulator {
    connection_string: String,
    _wrapper: Option<Mutex<Child>>,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

/// Stops Azurite when our end of its stdin closes; exits when Azurite does.
const WRAPPER: &str = r#"exec 3<&0
"$@" 3<&- </dev/null &
pid=$!
{ read -r _ <&3; kill "$pid" 2>/dev/null; } &
wait "$pid""#;

/// The connection string of the table service to test against (started on first use).
pub fn connection_string() -> String {
    EMULATOR.get_or_init(start).connection_string.clone()
}

/// A table-name prefix no other test uses (a letter, then letters and digits).
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

fn start() -> Emulator {
    if let Ok(connection_string) = std::env::var("PATCHWAVE_TEST_AZURITE_TABLE") {
        if !connection_string.trim().is_empty() {
            return Emulator {
                connection_string,
                _wrapper: None,
            };
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let azurite = root.join("node_modules/.bin/azurite-table");
    assert!(
        azurite.exists(),
        "Azurite is not installed at {}: run `npm ci` in the repository root (the Table Storage \
         store tests need it), or set PATCHWAVE_TEST_AZURITE_TABLE to a connection string",
        azurite.display()
    );
    let port = free_port();
    // cargo's scratch dir for integration tests: Azurite's working dir, and its log (kept from
    // the last run only)
    let location = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&location).expect("azurite work dir");
    let log = location.join("azurite-table.log");
    let mut wrapper = Command::new("sh")
        .arg("-c")
        .arg(WRAPPER)
        .arg("azurite-wrapper")
        .arg(&azurite)
        .args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string()])
        // Azurite's default, strict checks: it refuses what a storage account refuses
        .args(["--inMemoryPersistence", "--disableTelemetry"])
        .current_dir(&location)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("azurite log"))
        .spawn()
        .expect("start azurite-table");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut waited = Duration::ZERO;
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = wrapper.try_wait() {
            let mut output = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut output));
            panic!("azurite-table exited ({status}) before listening:\n{output}");
        }
        assert!(
            waited < Duration::from_secs(60),
            "azurite-table did not listen on {address} within a minute (log: {})",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    Emulator {
        connection_string: format!(
            "DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};\
             TableEndpoint=http://127.0.0.1:{port}/{account};",
            account = patchwave::store::table::DEV_ACCOUNT,
            key = patchwave::store::table::DEV_KEY,
        ),
        _wrapper: Some(Mutex::new(wrapper)),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
