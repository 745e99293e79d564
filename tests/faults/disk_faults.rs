//! File sessions on a disk that fills up or turns read-only: the request
//! that needed to write gets a clear 503 and a log line, the stored session
//! is never left truncated or corrupt, reading still works where the disk
//! allows it, and everything recovers when space comes back. As root (CI)
//! the tests mount a tiny tmpfs; otherwise a file-size limit on the nene
//! process (writes fail with EFBIG, as on a full disk) and a 0555 directory
//! stand in.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nene_test_support::browser::Browser;
use nene_test_support::{Nene, Nginx, nene_behind_nginx};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ],
            &path,
        );
        Tmpfs { path, _dir: dir }
    }

    fn remount(&self, options: &str) {
        run("mount", &["-o", &format!("remount,{options}")], &self.path);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(program: &str, args: &[&str], path: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(path)
        .status()
        .unwrap_or_else(|error| panic!("{program}: {error} (install util-linux's mount)"));
    assert!(
        status.success(),
        "{program} {args:?} {} failed",
        path.display()
    );
}

/// Writes a file until the file system refuses more; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

fn session_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("sess_") || name.ends_with(".tmp"))
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_gives_503_keeps_the_stored_session_whole_and_recovers() {
    if is_root() {
        full_tmpfs().await;
    } else {
        eprintln!("not root: a file-size limit on nene stands in for a full disk");
        file_size_limit().await;
    }
}

async fn full_tmpfs() {
    let disk = Tmpfs::mount("256k");
    let save_path = disk.path.display().to_string();
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION__SAVE_PATH", &save_path)]);
    let mut browser = nginx.browser();
    browser.post_form("/session/login", "user=ann").await;
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let id = browser.session_id().unwrap();
    let file = disk.path.join(format!("sess_{id}"));
    let stored = std::fs::read(&file).unwrap();

    let filler = fill(&disk.path);
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(page.headers["retry-after"], "1");
    // A new visitor cannot get a session either, and says so.
    assert_eq!(
        Browser::new(&nginx.url(""))
            .get("/session/counter")
            .await
            .status,
        503
    );
    // The stored session is the one before, whole; no temp file is left.
    assert_eq!(std::fs::read(&file).unwrap(), stored);
    assert_eq!(session_files(&disk.path), vec![format!("sess_{id}")]);
    // Reading the session needs no space: whoami still answers.
    let page = browser.get("/session/whoami").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.json()["user"], "ann");
    assert_eq!(browser.get("/health").await.status, 200);
    nene.assert_logged("session unavailable");
    nene.assert_logged("No space left on device");

    std::fs::remove_file(filler).unwrap();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    assert!(!nene.log_text().contains("panic"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_past_the_file_size_limit_gives_503_and_keeps_the_stored_session() {
    file_size_limit().await;
}

/// Session data over nene's file-size limit fails to write with EFBIG, as
/// a write to a full disk fails with ENOSPC.
async fn file_size_limit() {
    const LIMIT: u64 = 512 * 1024;
    // The form (over LIMIT) stays in memory, so that what fails is the
    // session's write, not the spill of the body to upload_tmp_dir.
    let env = [
        ("NENE_ACCESS__LOG", "off"),
        ("NENE_SERVER__CLIENT_BODY_BUFFER_SIZE", "1M"),
    ];
    let nene = Nene::start_adjusted(&env, |command| {
        // SAFETY: between fork and exec only async-signal-safe calls:
        // signal(2) and setrlimit(2).
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    let page = browser.post_form("/session/login", "user=ann").await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, nene.log_text());
    let id = browser.session_id().unwrap();
    let sessions = nene.dir().join("sessions");
    let file = sessions.join(format!("sess_{id}"));
    let stored = std::fs::read(&file).unwrap();

    let huge = "a".repeat(LIMIT as usize + 1);
    let page = browser
        .post_form("/session/login", &format!("user={huge}"))
        .await;
    assert_eq!(page.status, 503, "{}", page.body);
    // Login regenerates the id: the old session stays until its successor
    // is stored, so the failed write loses nothing.
    assert_eq!(std::fs::read(&file).unwrap(), stored);
    assert_eq!(session_files(&sessions), vec![format!("sess_{id}")]);
    let page = browser.get("/session/whoami").await;
    assert_eq!(page.json()["user"], "ann");
    nene.assert_logged("session unavailable");
    nene.assert_logged("File too large");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_session_directory_gives_503_and_the_stored_session_is_unchanged() {
    // As root, chmod does not stop writes: a tmpfs remounted read-only does.
    let disk = is_root().then(|| Tmpfs::mount("1m"));
    let plain = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        plain.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let dir = disk
        .as_ref()
        .map_or(plain.path(), |disk| disk.path.as_path());
    let save_path = dir.display().to_string();
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION__SAVE_PATH", &save_path)]);
    let mut browser = nginx.browser();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 1);
    let id = browser.session_id().unwrap();
    let file = dir.join(format!("sess_{id}"));
    let stored = std::fs::read(&file).unwrap();

    let make_writable = match &disk {
        Some(disk) => {
            disk.remount("ro");
            Box::new(|| disk.remount("rw")) as Box<dyn Fn()>
        }
        None => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            Box::new(|| {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap()
            })
        }
    };
    let page = browser.get("/session/counter").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(browser.get("/health").await.status, 200);
    assert_eq!(std::fs::read(&file).unwrap(), stored);
    let log = nene.log_text();
    assert!(log.contains("session unavailable"), "{log}");
    assert!(
        log.contains("Read-only file system") || log.contains("Permission denied"),
        "{log}"
    );

    make_writable();
    assert_eq!(browser.get("/session/counter").await.json()["count"], 2);
    assert!(!nene.log_text().contains("panic"));
}
