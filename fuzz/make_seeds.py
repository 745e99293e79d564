#!/usr/bin/env python3
"""Writes the seed corpus for the fuzz targets.

Each seed is a valid FastCGI byte stream, as nginx (or another peer) would
send it to nene, named after what it exercises. The same seeds serve both
targets: `decode_records` cuts them into records and name-value pairs,
`connection` plays them as the peer's side of a connection.

Run from anywhere: python3 fuzz/make_seeds.py
"""

import struct
from pathlib import Path

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, PARAMS, STDIN, GET_VALUES = 1, 2, 4, 5, 9
RESPONDER, AUTHORIZER = 1, 2
KEEP_CONN = 1


def record(rtype, request_id, content=b"", padding=0):
    header = struct.pack(">BBHHBB", VERSION, rtype, request_id, len(content), padding, 0)
    return header + content + b"\0" * padding


def begin(request_id, flags=0, role=RESPONDER):
    return record(BEGIN_REQUEST, request_id, struct.pack(">HB5x", role, flags))


def length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x8000_0000)


def pairs(items):
    return b"".join(length(len(n)) + length(len(v)) + n + v for n, v in items)


def nginx_params(method, uri, extra=()):
    path, _, query = uri.partition("?")
    base = [
        (b"QUERY_STRING", query.encode()),
        (b"REQUEST_METHOD", method.encode()),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"SCRIPT_NAME", path.encode()),
        (b"REQUEST_URI", uri.encode()),
        (b"DOCUMENT_URI", path.encode()),
        (b"DOCUMENT_ROOT", b"/srv/www"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"nginx/1.26.3"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_ADDR", b"127.0.0.1"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"),
        (b"HTTP_USER_AGENT", b"curl/8.5.0"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
    return pairs(base + list(extra))


def request(request_id, method, uri, body=b"", flags=0, extra=()):
    """A whole request the way nginx sends it: params in one record, then an
    empty PARAMS, the body, an empty STDIN."""
    out = begin(request_id, flags)
    out += record(PARAMS, request_id, nginx_params(method, uri, extra))
    out += record(PARAMS, request_id)
    if body:
        out += record(STDIN, request_id, body)
    out += record(STDIN, request_id)
    return out


def post_extra(body, content_type=b"application/x-www-form-urlencoded"):
    return [
        (b"CONTENT_TYPE", content_type),
        (b"CONTENT_LENGTH", str(len(body)).encode()),
    ]


def seeds():
    form = b"name=nene&greeting=hello"
    yield "nginx_get_health", request(1, "GET", "/health")
    yield "nginx_get_query_keepalive", request(1, "GET", "/home/index?x=1&y=two", flags=KEEP_CONN)
    yield "nginx_post_form", request(1, "POST", "/home/echo", form, extra=post_extra(form))
    # Sent back to back, so the second request must use another id: an id is
    # free again only once its END_REQUEST has reached the peer.
    yield "keepalive_two_requests", (
        request(1, "GET", "/health", flags=KEEP_CONN) + request(2, "GET", "/home/index")
    )
    yield "duplicate_request_id", (
        request(1, "GET", "/health", flags=KEEP_CONN) + request(1, "GET", "/home/index")
    )
    yield "get_values", record(
        GET_VALUES, 0, pairs([(b"FCGI_MAX_CONNS", b""), (b"FCGI_MAX_REQS", b""), (b"FCGI_MPXS_CONNS", b"")])
    )
    yield "unknown_management_type", record(42, 0, b"\0" * 8)
    yield "unknown_role", begin(1, role=AUTHORIZER) + record(PARAMS, 1) + record(STDIN, 1)
    yield "abort", (
        begin(1, KEEP_CONN)
        + record(PARAMS, 1, nginx_params("GET", "/slow"))
        + record(ABORT_REQUEST, 1)
    )
    # Two requests multiplexed on one connection, their records interleaved.
    p1, p2 = nginx_params("GET", "/health"), nginx_params("POST", "/home/echo", post_extra(form))
    yield "interleaved", (
        begin(1, KEEP_CONN)
        + begin(2, KEEP_CONN)
        + record(PARAMS, 2, p2[:40])
        + record(PARAMS, 1, p1)
        + record(PARAMS, 2, p2[40:])
        + record(PARAMS, 1)
        + record(PARAMS, 2)
        + record(STDIN, 2, form[:5])
        + record(STDIN, 1)
        + record(STDIN, 2, form[5:])
        + record(STDIN, 2)
    )
    # A name-value pair cut across two PARAMS records, padding on every record.
    p = nginx_params("GET", "/health")
    yield "params_split_and_padded", (
        record(BEGIN_REQUEST, 1, struct.pack(">HB5x", RESPONDER, 0), padding=0)
        + record(PARAMS, 1, p[:7], padding=1)
        + record(PARAMS, 1, p[7:], padding=7)
        + record(PARAMS, 1, padding=3)
        + record(STDIN, 1, padding=255)
    )
    cookie = b"; ".join(b"c%d=%s" % (i, b"v" * 20) for i in range(12))
    yield "long_header_four_byte_lengths", request(
        1, "GET", "/health", extra=[(b"HTTP_COOKIE", cookie), (b"X" * 130, b"long name")]
    )
    yield "content_length_mismatch", request(
        1, "POST", "/home/echo", b"short", extra=post_extra(b"much longer than sent")
    )
    yield "params_too_large", request(1, "GET", "/health", extra=[(b"HTTP_X_BIG", b"b" * 5000)])
    yield "body_too_large", request(
        1, "POST", "/home/echo", b"x" * 5000, extra=post_extra(b"x" * 5000)
    )


def main():
    root = Path(__file__).resolve().parent / "corpus"
    for target in ("decode_records", "connection"):
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
