//! File uploads through nginx to the example application's `POST /upload`
//! (an `UploadForm` handler that answers each field, and each file's name,
//! type, size and SHA-1 as read back from disk): what a browser sends
//! arrives intact, hostile file names are neutralised, PHP's bounds refuse
//! with their documented status and reason, and no file is left in
//! `upload_tmp_dir` afterwards.

use nene_test_support::{Nene, Nginx, http_client, wait_for_log};
use serde_json::Value;

const BOUNDARY: &str = "----nene-test-boundary-7MA4YWxkTrZu0gW";

/// One part of a form: a text field, or a file with a name and type.
enum Part<'a> {
    Field(&'a str, &'a str),
    File {
        field: &'a str,
        name: &'a str,
        content_type: &'a str,
        content: &'a [u8],
    },
}

/// The parts as a `multipart/form-data` body, written out by hand so that
/// a test can send what a browser would never (raw control characters,
/// Windows paths).
fn multipart(parts: &[Part<'_>], closed: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Field(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}")
                        .as_bytes(),
                );
            }
            Part::File {
                field,
                name,
                content_type,
                content,
            } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(content);
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    if closed {
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    }
    body
}

struct Servers {
    nginx: Nginx,
    _nene: Nene,
    tmp_dir: tempfile::TempDir,
}

/// nginx in front of nene with its upload bounds set by `env`.
fn servers(env: &[(&str, &str)]) -> Servers {
    let tmp_dir = tempfile::tempdir().unwrap();
    let tmp = tmp_dir.path().display().to_string();
    let mut env = env.to_vec();
    env.push(("NENE_SERVER__UPLOAD_TMP_DIR", &tmp));
    env.push(("NENE_ACCESS__LOG", "off"));
    let nene = Nene::start(&env);
    let nginx = Nginx::start(&nene.upstream, true);
    Servers {
        nginx,
        _nene: nene,
        tmp_dir,
    }
}

impl Servers {
    /// POST /upload with `body` as `content_type`: the status and body.
    async fn post(&self, content_type: &str, body: Vec<u8>) -> (u16, String) {
        let response = http_client()
            .post(self.nginx.url("/upload"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn post_form(&self, parts: &[Part<'_>], closed: bool) -> (u16, String) {
        self.post(
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(parts, closed),
        )
        .await
    }

    /// Entries left in upload_tmp_dir (uploaded files have names there).
    fn files_left(&self) -> usize {
        std::fs::read_dir(self.tmp_dir.path()).unwrap().count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_and_files_arrive_intact_with_hostile_names_neutralised() {
    let servers = servers(&[]);
    // Every byte value, and large enough that nene spills the body to disk
    // before the form is parsed.
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
    let pdf = b"%PDF-1.4 a small second file".to_vec();
    let (status, body) = servers
        .post_form(
            &[
                Part::Field("title", "Résumé ✓"),
                Part::File {
                    field: "attachment",
                    name: "../../etc/passwd",
                    content_type: "application/octet-stream",
                    content: &binary,
                },
                Part::File {
                    field: "attachment",
                    name: "C:\\Users\\me\\cv.pdf",
                    content_type: "application/pdf",
                    content: &pdf,
                },
                Part::File {
                    field: "empty",
                    name: "empty.txt",
                    content_type: "text/plain",
                    content: b"",
                },
                Part::File {
                    field: "tabbed",
                    // A raw tab gets through multipart's header parsing (CR
                    // and LF cannot: they end the header, see below).
                    name: "evil\tname.txt",
                    content_type: "text/plain",
                    content: b"x",
                },
                Part::Field("note", ""),
            ],
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["fields"]["title"], "Résumé ✓");
    assert_eq!(answer["fields"]["note"], "");
    let files = answer["files"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str, u64, &str)> = files
        .iter()
        .map(|file| {
            (
                file["field"].as_str().unwrap(),
                file["name"].as_str().unwrap(),
                file["type"].as_str().unwrap(),
                file["size"].as_u64().unwrap(),
                file["sha1"].as_str().unwrap(),
            )
        })
        .collect();
    let binary_sha = crate::sha1_hex(&binary);
    let pdf_sha = crate::sha1_hex(&pdf);
    let empty_sha = crate::sha1_hex(b"");
    let x_sha = crate::sha1_hex(b"x");
    assert_eq!(
        summary,
        vec![
            (
                "attachment",
                "passwd",
                "application/octet-stream",
                300_000,
                binary_sha.as_str()
            ),
            (
                "attachment",
                "cv.pdf",
                "application/pdf",
                pdf.len() as u64,
                pdf_sha.as_str()
            ),
            ("empty", "empty.txt", "text/plain", 0, empty_sha.as_str()),
            ("tabbed", "evilname.txt", "text/plain", 1, x_sha.as_str()),
        ]
    );
    assert_eq!(
        servers.files_left(),
        0,
        "uploaded files outlived the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_bounds_refuse_with_413_and_malformed_forms_with_400() {
    let servers = servers(&[
        ("NENE_SERVER__UPLOAD_MAX_FILESIZE", "1K"),
        ("NENE_SERVER__MAX_FILE_UPLOADS", "2"),
        ("NENE_SERVER__MAX_INPUT_VARS", "3"),
        ("NENE_SERVER__MAX_BODY_BYTES", "1M"),
    ]);
    let file = |content: &'static [u8]| Part::File {
        field: "f",
        name: "a.bin",
        content_type: "application/octet-stream",
        content,
    };
    let at_bound = [7u8; 1024];
    let over_bound = [7u8; 1025];

    // At every bound: served.
    let (status, body) = servers
        .post_form(
            &[
                Part::Field("a", "1"),
                Part::Field("b", "2"),
                Part::Field("c", "3"),
                file(Box::leak(Box::new(at_bound))),
                file(b"second"),
            ],
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // One over each.
    let over_each = [
        (
            "upload_max_filesize",
            vec![file(Box::leak(Box::new(over_bound)))],
        ),
        ("max_file_uploads", vec![file(b"1"), file(b"2"), file(b"3")]),
        (
            "max_input_vars",
            vec![
                Part::Field("a", "1"),
                Part::Field("b", "2"),
                Part::Field("c", "3"),
                Part::Field("d", "4"),
            ],
        ),
    ];
    for (bound, parts) in over_each {
        let (status, body) = servers.post_form(&parts, true).await;
        assert_eq!(
            (status, body.contains(bound)),
            (413, true),
            "{bound}: {body}"
        );
    }
    // post_max_size is server.max_body_bytes: refused before the form is read.
    let big = vec![0u8; 1024 * 1024 + 1];
    let (status, _) = servers
        .post_form(
            &[Part::File {
                field: "f",
                name: "big.bin",
                content_type: "application/octet-stream",
                content: &big,
            }],
            true,
        )
        .await;
    assert_eq!(status, 413);

    // Malformed: not multipart, no boundary, cut short.
    let (status, body) = servers.post("application/json", b"{}".to_vec()).await;
    assert_eq!(
        (status, body.contains("multipart/form-data")),
        (400, true),
        "{body}"
    );
    let (status, _) = servers
        .post(
            "multipart/form-data",
            multipart(&[Part::Field("a", "1")], true),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = servers.post_form(&[file(b"cut")], false).await;
    assert_eq!((status, body.contains("malformed")), (400, true), "{body}");
    // CR LF inside a file name ends its header line early (the rest is a
    // header of its own): the unterminated name is no file name at all, so
    // the part arrives as a text field, never as a file named with a line
    // break. (neutralise_file_name's unit test covers CR and LF as well.)
    let (status, body) = servers
        .post_form(
            &[Part::File {
                field: "f",
                name: "a\r\nSet-Cookie: x=1.txt",
                content_type: "text/plain",
                content: b"x",
            }],
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["files"].as_array().map(Vec::len), Some(0), "{body}");

    assert_eq!(servers.files_left(), 0, "a refused upload left a file");
}

/// When this test process started, as `/proc/self/stat` says (field 22).
fn own_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_files_a_stopped_process_left_are_removed_at_start_up() {
    let tmp_dir = tempfile::tempdir().unwrap();
    // As a nene killed mid-upload leaves them: named for their owner.
    let dead = tmp_dir.path().join("nene-upload.4194304.777.a1b2c3");
    std::fs::write(&dead, vec![0u8; 150_000]).unwrap();
    // A process that is running (this test) owns this one: another
    // instance sharing the directory, whose upload is in progress.
    let live = tmp_dir.path().join(format!(
        "nene-upload.{}.{}.d4e5f6",
        std::process::id(),
        own_start_time()
    ));
    std::fs::write(&live, b"in progress").unwrap();
    let unrelated = tmp_dir.path().join("keep-me.txt");
    std::fs::write(&unrelated, b"not nene's").unwrap();

    let tmp = tmp_dir.path().display().to_string();
    let nene = Nene::start(&[("NENE_SERVER__UPLOAD_TMP_DIR", tmp.as_str())]);
    let log = wait_for_log(&nene.log, "removed 1 upload files (150000 bytes)");
    assert!(log.contains(&tmp), "{log}");
    assert!(!dead.exists(), "the dead process's upload is gone");
    assert!(live.exists(), "a running process's upload is kept");
    assert!(unrelated.exists());
}
